#!/usr/bin/env bash
# `vgpu bench mdev` where there is an mdev parent to time: Linux's mbochs sample in a QEMU (TCG)
# guest booted from the slices image (guests/slices/build.sh, with the release vgpu). Prints the
# bench's table: time to create and to remove N instances with `vgpu mdev` and with mdevctl.
#
#   scripts/bench-slices.sh [--count N] [--rounds R]
set -euo pipefail
cd "$(dirname "$0")/.."
count=16
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --count) count=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "bench-slices: unknown option $1" >&2; exit 2 ;;
  esac
done
cargo build --release -q -p vmm --bin vgpu
bash guests/slices/build.sh --quiet --vgpu target/release/vgpu
run="insmod+/lib/mdev/mbochs.ko"
run="$run,mkdir+-p+/etc/mdevctl.d/scripts.d/callouts+/etc/mdevctl.d/scripts.d/notifiers"
run="$run,vgpu+bench+mdev+--parent+mbochs+--type+mbochs-small+--count+$count+--rounds+$rounds"
timeout 600 qemu-system-x86_64 -M pc -cpu max -m 512M -nodefaults -no-reboot -display none \
  -kernel guests/out/vmlinuz -initrd guests/out/slices.cpio.gz \
  -append "console=ttyS0 quiet panic=-1 vgpu_run=$run" -serial stdio -monitor none |
  sed -n '/^VGPU-RUN vgpu bench/,/^VGPU-EXIT/p' | grep -v '^VGPU-'
