#!/usr/bin/env bash
# The nested real-KVM harness: QEMU 10 (TCG, -cpu max) runs a Debian guest (L1) in which kvm_amd
# gives /dev/kvm; there `vgpu run` boots a Debian kernel + initramfs (L2) with our virtio-gpu, the
# inner virtio_gpu driver binds and draws colour bars, and the screenshot comes back to the host.
#
#   scripts/nested.sh [--qemu [N]] [--test] [--ci] [--record] [--out DIR] [--timeout SECONDS]
#
# Writes DIR/l1.log (the whole L1 console), DIR/l2.png (the inner scanout) and DIR/times.txt, and
# prints the timings. --qemu N (default 2) then boots the same L2 N more times each with QEMU
# -enable-kvm and with vgpu run (no GPU, alternating) inside L1, for the boot-to-init comparison. Exit status 0 when the screenshot came back; --test then runs the
# nested_kvm test on this run's results (it checks the pixels).
# It takes minutes (everything in L1 is emulated): `cargo test -p vgpu-tests --test nested_kvm`
# runs it only with VGPU_NESTED=1.
#
# CI runs it once per change to vmm/: --ci does nothing when the git tree hash of vmm/ equals the
# one in guests/nested/verified-vmm-tree (written by --record after a passing run, and committed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/target/nested
timeout_s=1500
qemu_too=0
rounds=2
run_test=0
ci=0
record=0
while [ $# -gt 0 ]; do
  case "$1" in
    --qemu)
      qemu_too=1
      if [[ "${2:-}" =~ ^[0-9]+$ ]]; then rounds=$2; shift; fi
      shift ;;
    --test) run_test=1; shift ;;
    --ci) ci=1; shift ;;
    --record) record=1; shift ;;
    --out) out=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    *) echo "nested.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
cd "$root"
stamp_file=guests/nested/verified-vmm-tree
vmm_tree=$(git rev-parse HEAD:vmm 2>/dev/null || echo unknown)
if [ $ci = 1 ] && [ -f $stamp_file ] && [ "$(cat $stamp_file)" = "$vmm_tree" ]; then
  echo "nested: vmm/ unchanged since the last verified nested run ($vmm_tree); skipped"
  exit 0
fi
t0=$(date +%s.%N)
if [ ! -x "${VGPU_BIN:-target/debug/vgpu}" ]; then cargo build -q -p vmm --bin vgpu; fi
build_args=()
[ $qemu_too = 1 ] && build_args+=(--qemu)
[ -s guests/out/vmlinuz ] || guests/build-image.sh --quiet
guests/nested/build.sh "${build_args[@]}" >/dev/null
t1=$(date +%s.%N)

append="console=ttyS0 panic=-1 quiet vgpu_run=l1-run"
[ $qemu_too = 1 ] && append="$append vgpu_qemu=$rounds"
rm -f "$out/l2.png" "$out/l1.log"
set +e
timeout "$timeout_s" qemu-system-x86_64 -accel tcg -M q35 -cpu max -smp 1 -m 2G \
  -nographic -no-reboot -kernel guests/out/vmlinuz -initrd guests/out/nested-l1.cpio.gz \
  -append "$append" > "$out/l1.log" 2>&1 < /dev/null
rc=$?
set -e
t2=$(date +%s.%N)
tr -d '\r' < "$out/l1.log" | sed -n '/^VGPU-PNG-BEGIN/,/^VGPU-PNG-END/p' | sed '1d;$d' | base64 -d > "$out/l2.png" 2>/dev/null || true
[ -s "$out/l2.png" ] || rm -f "$out/l2.png"

# L1 uptime stamps: boot-to-init = "VGPU-INIT start" of an inner guest minus its START line.
# Prints: first boot (the GPU run), mean of the later boots, and each later boot.
span() { # $1 = vgpu|qemu
  tr -d '\r' < "$out/l1.log" | awk -v who="$1" '
    $1 == "VGPU-L2" && $3 == who && $4 == "START" { s = $2; n++ }
    $1 == "VGPU-L2" && $3 == who && index($0, "VGPU-INIT start") && s != "" {
      t = $2 - s; s = ""
      if (n == 1 && who == "vgpu") first = t; else { sum += t; k++; all = all sprintf("%.1f/", t) }
    }
    END {
      printf "%s %s %s\n", (first == "" ? "-" : sprintf("%.2f", first)),
        (k ? sprintf("%.2f", sum / k) : "-"), (all == "" ? "-" : all)
    }'
}
read -r vgpu_first vgpu_mean vgpu_all < <(span vgpu)
read -r _ qemu_mean qemu_all < <(span qemu)
{
  echo "build_s $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')"
  echo "qemu_l1_wall_s $(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.1f", b-a}')"
  echo "l1_qemu_rc $rc"
  echo "l2_vgpu_gpu_run_boot_to_init_s $vgpu_first"
  echo "l2_vgpu_boot_to_init_mean_s $vgpu_mean ($vgpu_all)"
  echo "l2_qemu_kvm_boot_to_init_mean_s $qemu_mean ($qemu_all)"
} > "$out/times.txt"
cat "$out/times.txt"
grep -a "VGPU-RESULT\|VGPU-L2 .* vgpu VGPU-\|VGPU-EXIT" "$out/l1.log" | tr -d '\r' | head -40 || true
if [ -f "$out/l2.png" ]; then
  echo "nested: screenshot $out/l2.png"
else
  echo "nested: no screenshot came back; see $out/l1.log" >&2
  exit 1
fi
if [ $record = 1 ]; then
  echo "$vmm_tree" > $stamp_file
  echo "nested: recorded vmm/ tree $vmm_tree in $stamp_file (commit it)"
fi
if [ $run_test = 1 ]; then
  VGPU_NESTED=1 VGPU_NESTED_REUSE=1 VGPU_NESTED_OUT="$out" cargo test -q -p vgpu-tests --test nested_kvm
fi
