"""wgpu-py (PyPI wheel, wgpu-native on Vulkan): a compute shader and an offscreen render to a
texture, read back and checked here; results printed as JSON for the e2e tests to compare the
host's own driver with venus.
"""

import json
import sys

import numpy as np
import wgpu

COMPUTE = """
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i < arrayLength(&dst)) {
        dst[i] = src[i] * 3u + i;
    }
}
"""

RENDER = """
struct Out { @builtin(position) pos: vec4<f32>, @location(0) color: vec4<f32> };
@vertex
fn vs(@builtin(vertex_index) i: u32) -> Out {
    var p = array<vec2<f32>, 3>(vec2(0.0, 0.8), vec2(-0.8, -0.8), vec2(0.8, -0.8));
    var c = array<vec4<f32>, 3>(vec4(1.0, 0.0, 0.0, 1.0), vec4(0.0, 1.0, 0.0, 1.0),
                                vec4(0.0, 0.0, 1.0, 1.0));
    return Out(vec4(p[i], 0.0, 1.0), c[i]);
}
@fragment
fn fs(v: Out) -> @location(0) vec4<f32> { return v.color; }
"""

SIZE = 64
CLEAR = (0.25, 0.5, 0.75, 1.0)


def adapter():
    adapters = [a for a in wgpu.gpu.enumerate_adapters_sync() if "Vulkan" in a.summary]
    if not adapters:
        sys.exit("wgpu sees no Vulkan adapter")
    return adapters[0]


def compute(device):
    n = 4096
    src = np.arange(n, dtype=np.uint32) * 7 + 1
    usage = wgpu.BufferUsage
    b_src = device.create_buffer_with_data(data=src, usage=usage.STORAGE)
    b_dst = device.create_buffer(size=n * 4, usage=usage.STORAGE | usage.COPY_SRC)
    pipeline = device.create_compute_pipeline(
        layout="auto",
        compute={"module": device.create_shader_module(code=COMPUTE), "entry_point": "main"},
    )
    group = device.create_bind_group(
        layout=pipeline.get_bind_group_layout(0),
        entries=[
            {"binding": 0, "resource": {"buffer": b_src}},
            {"binding": 1, "resource": {"buffer": b_dst}},
        ],
    )
    enc = device.create_command_encoder()
    cp = enc.begin_compute_pass()
    cp.set_pipeline(pipeline)
    cp.set_bind_group(0, group)
    cp.dispatch_workgroups(n // 64)
    cp.end()
    device.queue.submit([enc.finish()])
    out = np.frombuffer(device.queue.read_buffer(b_dst), dtype=np.uint32)
    want = src * 3 + np.arange(n, dtype=np.uint32)
    if not np.array_equal(out, want):
        bad = int(np.argmax(out != want))
        sys.exit(f"compute: dst[{bad}] = {out[bad]}, want {want[bad]}")
    return {"n": n, "sum": int(out.astype(np.uint64).sum())}


def render(device):
    fmt = wgpu.TextureFormat.rgba8unorm
    tex = device.create_texture(
        size=(SIZE, SIZE, 1),
        format=fmt,
        usage=wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC,
    )
    module = device.create_shader_module(code=RENDER)
    pipeline = device.create_render_pipeline(
        layout="auto",
        vertex={"module": module, "entry_point": "vs"},
        fragment={"module": module, "entry_point": "fs", "targets": [{"format": fmt}]},
        primitive={"topology": wgpu.PrimitiveTopology.triangle_list},
    )
    enc = device.create_command_encoder()
    rp = enc.begin_render_pass(color_attachments=[{
        "view": tex.create_view(),
        "clear_value": CLEAR,
        "load_op": wgpu.LoadOp.clear,
        "store_op": wgpu.StoreOp.store,
    }])
    rp.set_pipeline(pipeline)
    rp.draw(3)
    rp.end()
    device.queue.submit([enc.finish()])
    data = device.queue.read_texture(
        {"texture": tex},
        {"bytes_per_row": SIZE * 4, "rows_per_image": SIZE},
        (SIZE, SIZE, 1),
    )
    px = np.frombuffer(data, dtype=np.uint8).reshape(SIZE, SIZE, 4)
    clear = [round(c * 255) for c in CLEAR]
    if list(px[0, 0]) != clear or list(px[SIZE - 1, 0]) != clear:
        sys.exit(f"render: corners {px[0, 0]} {px[SIZE - 1, 0]}, want the clear colour {clear}")
    centre = px[SIZE * 3 // 5, SIZE // 2]
    if not (centre[3] == 255 and centre[:3].min() > 20 and tuple(centre) != tuple(clear)):
        sys.exit(f"render: centre {centre} is not the interpolated triangle")
    covered = int((px != np.array(clear, dtype=np.uint8)).any(axis=2).sum())
    # The triangle spans 80% of both axes: ~32% of the pixels.
    if not 0.25 * SIZE * SIZE < covered < 0.4 * SIZE * SIZE:
        sys.exit(f"render: triangle covers {covered} pixels")
    return {"covered": covered, "checksum": int(px.astype(np.uint64).sum()),
            "centre": [int(v) for v in centre]}


def main():
    a = adapter()
    device = a.request_device_sync()
    print(json.dumps({"adapter": a.summary, "compute": compute(device), "render": render(device)}))


if __name__ == "__main__":
    main()
