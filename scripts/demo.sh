#!/usr/bin/env bash
# The main job end to end: a stock Debian Linux guest under QEMU 10 (TCG) drives our virtio-gpu
# device through `vgpu vhost-user-gpu`; the guest's KMS program draws colour bars; the backend
# saves what the guest shows as a PNG, and QEMU's own screendump is saved next to it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash guests/build-image.sh --quiet
cargo build -q -p vmm --bin vgpu

out="${VGPU_DEMO_DIR:-$PWD/target/demo}"
rm -rf "$out"; mkdir -p "$out"
sock="$out/gpu.sock"
backend="${VGPU_DEMO_BACKEND:-}"  # empty: the default (Vulkan on lavapipe, else software)
target/debug/vgpu vhost-user-gpu ${backend:+--backend "$backend"} --socket-path "$sock" \
  --screenshot-dir "$out" --max-connections 1 2> "$out/backend.log" &
backend_pid=$!
qemu_pid=
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null || true
  kill "$backend_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.05; done

echo "demo: booting the guest (QEMU TCG, vhost-user-gpu-pci -> vgpu vhost-user-gpu ${backend:+--backend $backend})"
qemu-system-x86_64 -M pc -cpu max -m 512M -nodefaults -no-reboot -display none \
  -kernel guests/out/vmlinuz -initrd guests/out/vgpu.cpio.gz \
  -append "console=ttyS0 quiet vgpu_run=vgpu-kms+--hold,vgpu-ioctl vgpu_hold" \
  -object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem \
  -chardev socket,id=gpu,path="$sock" -device vhost-user-gpu-pci,chardev=gpu,xres=1024,yres=768 \
  -serial "file:$out/serial.log" -monitor none -qmp "unix:$out/qmp.sock,server=on,wait=off" &
qemu_pid=$!
for _ in $(seq 1 240); do grep -q 'VGPU-INIT done' "$out/serial.log" 2>/dev/null && break; sleep 0.25; done
grep -a '^VGPU-TEST\|features:' "$out/serial.log" || true
grep -q 'VGPU-INIT done' "$out/serial.log" || { echo "demo: the guest did not finish; see $out/serial.log" >&2; exit 1; }

# Our scanout export (SIGUSR1), then QEMU's view of the same display through QMP.
kill -USR1 "$backend_pid"
for _ in $(seq 1 100); do [ -f "$out/scanout0.png" ] && break; sleep 0.05; done
python3 - "$out" <<'PY' || true
import json, socket, sys
out = sys.argv[1]
s = socket.socket(socket.AF_UNIX); s.connect(f"{out}/qmp.sock"); f = s.makefile("rw")
f.readline()
for cmd in ({"execute": "qmp_capabilities"},
            {"execute": "screendump", "arguments": {"filename": f"{out}/qemu-screendump.png", "format": "png"}},
            {"execute": "quit"}):
    f.write(json.dumps(cmd) + "\n"); f.flush(); f.readline()
PY
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
echo "demo: guest display saved by our backend: $out/scanout0.png"
[ -f "$out/qemu-screendump.png" ] && echo "demo: QEMU's screendump of the same display: $out/qemu-screendump.png"
