"""ncnn (PyPI wheel) on Vulkan: small nets built here, run on GPU 0, outputs printed as JSON.

The e2e tests run this once on the host's own driver and once through venus and compare the two;
each run also checks its GPU outputs against ncnn's CPU path, so a device that computed nothing
cannot pass. `--bench N` times N inferences of a compute-bound net instead.

Weights are written in ncnn's model format: per weight blob a zero u32 tag (raw float32) and the
floats; biases raw.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import ncnn
import numpy as np

RNG = np.random.default_rng(7)


def conv(name, bottom, top, cin, cout, k, stride=1, pad=None):
    pad = k // 2 if pad is None else pad
    w = RNG.standard_normal(cout * cin * k * k, dtype=np.float32) * (1.0 / (cin * k * k) ** 0.5)
    b = RNG.standard_normal(cout, dtype=np.float32) * 0.1
    line = (f"Convolution {name} 1 1 {bottom} {top} 0={cout} 1={k} 3={stride} 4={pad} "
            f"5=1 6={w.size}")
    return line, [w], [b]


def inner(name, bottom, top, cin, cout):
    w = RNG.standard_normal(cout * cin, dtype=np.float32) * (1.0 / cin ** 0.5)
    b = RNG.standard_normal(cout, dtype=np.float32) * 0.1
    return f"InnerProduct {name} 1 1 {bottom} {top} 0={cout} 1=1 2={w.size}", [w], [b]


def plain(line):
    return line, [], []


# name -> (input shape c,h,w; layers)
def nets():
    return {
        "convolution": ((3, 16, 16), [conv("conv", "data", "out", 3, 8, 3)]),
        "pooling_max": ((4, 16, 16), [plain("Pooling pool 1 1 data out 0=0 1=2 2=2")]),
        "pooling_avg": ((4, 16, 16), [plain("Pooling pool 1 1 data out 0=1 1=3 2=1 3=1")]),
        "innerproduct": ((8, 4, 4), [inner("fc", "data", "out", 8 * 4 * 4, 10)]),
        "relu": ((4, 8, 8), [plain("ReLU relu 1 1 data out")]),
        "softmax": ((1, 1, 32), [plain("Softmax softmax 1 1 data out 0=2 1=1")]),
        "small_cnn": ((3, 32, 32), [
            conv("conv1", "data", "c1", 3, 16, 3),
            plain("ReLU relu1 1 1 c1 r1"),
            plain("Pooling pool1 1 1 r1 p1 0=0 1=2 2=2"),
            conv("conv2", "p1", "c2", 16, 32, 3),
            plain("ReLU relu2 1 1 c2 r2"),
            plain("Pooling pool2 1 1 r2 p2 0=0 1=2 2=2"),
            inner("fc", "p2", "fc", 32 * 8 * 8, 10),
            plain("Softmax prob 1 1 fc out 0=0 1=1"),
        ]),
    }


def bench_net():
    """Compute-bound: three wide 3x3 convolutions on a 128x128 image."""
    return ((32, 128, 128), [
        conv("conv1", "data", "c1", 32, 64, 3),
        plain("ReLU relu1 1 1 c1 r1"),
        conv("conv2", "r1", "c2", 64, 64, 3),
        plain("ReLU relu2 1 1 c2 r2"),
        conv("conv3", "r2", "out", 64, 32, 3),
    ])


def write_model(layers, shape, directory, name):
    c, h, w = shape
    lines = [f"Input data 0 1 data 0={w} 1={h} 2={c}"] + [l for l, _, _ in layers]
    blobs = {"data"}
    for l in lines:
        blobs.update(l.split()[4:4 + int(l.split()[2]) + int(l.split()[3])])
    param = f"7767517\n{len(lines)} {len(blobs)}\n" + "\n".join(lines) + "\n"
    param_path = os.path.join(directory, f"{name}.param")
    bin_path = os.path.join(directory, f"{name}.bin")
    with open(param_path, "w") as f:
        f.write(param)
    with open(bin_path, "wb") as f:
        for _, weights, biases in layers:
            for wt in weights:
                f.write(np.uint32(0).tobytes())
                f.write(wt.astype(np.float32).tobytes())
            for bs in biases:
                f.write(bs.astype(np.float32).tobytes())
    return param_path, bin_path


def load(param_path, bin_path, vulkan):
    net = ncnn.Net()
    net.opt.use_vulkan_compute = vulkan
    if vulkan:
        net.set_vulkan_device(0)
    if net.load_param(param_path) != 0 or net.load_model(bin_path) != 0:
        sys.exit(f"ncnn could not load {param_path}")
    return net


def infer(net, x):
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(x).clone())
    ret, out = ex.extract("out")
    if ret != 0:
        sys.exit(f"ncnn extract failed: {ret}")
    return np.array(out).astype(np.float64).ravel()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", type=int, default=0, help="time this many inferences")
    ap.add_argument("--seconds", type=float, default=0, help="with --bench: run this long instead")
    args = ap.parse_args()
    if ncnn.get_gpu_count() < 1:
        sys.exit("ncnn sees no Vulkan device")
    device = ncnn.get_gpu_info(0).device_name()
    with tempfile.TemporaryDirectory() as d:
        if args.bench:
            shape, layers = bench_net()
            net = load(*write_model(layers, shape, d, "bench"), vulkan=True)
            x = RNG.standard_normal(shape, dtype=np.float32)
            infer(net, x)  # pipelines built, weights uploaded
            t0 = time.perf_counter()
            done = 0
            while done < args.bench or time.perf_counter() - t0 < args.seconds:
                infer(net, x)
                done += 1
            ms = (time.perf_counter() - t0) * 1000 / done
            print(json.dumps({"device": device, "ms_per_inference": ms, "inferences": done}))
            return
        results = {}
        for name, (shape, layers) in nets().items():
            paths = write_model(layers, shape, d, name)
            x = RNG.standard_normal(shape, dtype=np.float32)
            gpu = infer(load(*paths, vulkan=True), x)
            cpu = infer(load(*paths, vulkan=False), x)
            if gpu.shape != cpu.shape:
                sys.exit(f"{name}: GPU output shape {gpu.shape}, CPU {cpu.shape}")
            # ncnn's Vulkan path stores fp16 where the device has it.
            err = float(np.max(np.abs(gpu - cpu) / (np.abs(cpu) + 1.0)))
            if not err < 2e-2:
                sys.exit(f"{name}: GPU differs from CPU by {err}")
            results[name] = {"out": gpu.tolist(), "max_rel_err_vs_cpu": err}
    print(json.dumps({"device": device, "nets": results}))


if __name__ == "__main__":
    main()
