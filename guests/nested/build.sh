#!/usr/bin/env bash
# Builds the nested harness's two images with guests/build-image.sh (the Debian 6.12 kernel of
# issue #3's builder serves both levels):
#   guests/out/nested-l2.cpio.gz  inner guest: virtio_gpu + KMS test programs + l2-draw
#   guests/out/nested-l1.cpio.gz  outer guest: kvm_amd, the vgpu binary (stripped, with its shared
#                                 libraries), the inner kernel and initramfs, l1-run;
#                                 with --qemu also qemu-system-x86_64 and its firmware.
# Usage: guests/nested/build.sh [--vgpu PATH] [--qemu]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/guests/out
vgpu=${VGPU_BIN:-$root/target/debug/vgpu}
with_qemu=0
while [ $# -gt 0 ]; do
  case "$1" in
    --vgpu) vgpu=$2; shift 2 ;;
    --qemu) with_qemu=1; shift ;;
    *) echo "nested/build.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$vgpu" ] || { echo "nested/build.sh: $vgpu missing (cargo build -p vmm)" >&2; exit 1; }

"$root/guests/build-image.sh" --quiet --name nested-l2 --file "$here/l2-draw:/bin/l2-draw"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
strip -o "$stage/vgpu" "$vgpu"
files=(--file "$stage/vgpu:/bin/vgpu" --file "$here/l1-run:/bin/l1-run"
       --file "$out/vmlinuz:/l2/vmlinuz" --file "$out/nested-l2.cpio.gz:/l2/nested-l2.cpio.gz")
# Shared libraries of every binary we bring, at the paths the dynamic loader looks them up.
libs() { ldd "$1" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'; }
bins=("$vgpu")
if [ $with_qemu = 1 ]; then
  qemu=$(command -v qemu-system-x86_64)
  bins+=("$qemu")
  files+=(--file "$qemu:/bin/qemu-system-x86_64")
  # Firmware for -M pc -nodefaults -kernel: SeaBIOS (Debian keeps it in /usr/share/seabios),
  # the option ROMs that load the kernel, and kvmvapic.
  for f in /usr/share/seabios/bios-256k.bin /usr/share/qemu/kvmvapic.bin \
           /usr/share/qemu/linuxboot_dma.bin /usr/share/qemu/linuxboot.bin; do
    if [ -e "$f" ]; then files+=(--file "$(readlink -f "$f"):/usr/share/qemu/$(basename "$f")"); fi
  done
fi
for lib in $(for b in "${bins[@]}"; do libs "$b"; done | sort -u); do
  files+=(--file "$(readlink -f "$lib"):$lib")
done
"$root/guests/build-image.sh" --quiet --name nested-l1 --module kvm_amd "${files[@]}"
ls -la "$out/nested-l1.cpio.gz" "$out/nested-l2.cpio.gz"
