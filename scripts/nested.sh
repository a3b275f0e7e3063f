#!/usr/bin/env bash
# The nested real-KVM harness: QEMU 10 (TCG, -cpu max) runs a Debian guest (L1) in which kvm_amd
# gives /dev/kvm; there `vgpu run` boots a Debian kernel + initramfs (L2) with our virtio-gpu, the
# inner virtio_gpu driver binds and draws colour bars, and the screenshot comes back to the host.
#
#   scripts/nested.sh [--suite display|venus|vhost-user|vfio|mdev|sriov] [--qemu [N]] [--test] [--ci] [--record] [--out DIR]
#                     [--timeout SECONDS] [--checks a+b+c]
#
# --suite venus (default: display): L2 runs on `--gpu virtio,backend=vulkan` (lavapipe in L1) with
# Mesa's venus ICD; the guest lists its Vulkan devices, sends hostile venus streams, runs
# vk-conformance (all checks, or --checks) and keeps the colour bars on screen. Results go to
# target/nested-venus/ unless --out; --test then runs the nested_venus test.
#
# --suite vhost-user: L2 boots with its root on virtio-fs (virtiofsd) and two vhost-user-blk
# disks (qemu-storage-daemon): file and disk contents checked both ways, one disk's backend killed
# mid-run (the guest gets I/O errors, the VM goes on), then L2 draws colour bars on a virtio-gpu
# served by our vhost-user GPU backend and by QEMU's (DIR/l2-gpu-ours.png, l2-gpu-qemu.png);
# with --qemu N, N rounds of the storage
# benchmark on our VMM and on QEMU -enable-kvm with the same backends. Results go to
# target/nested-vhost-user/; --test then runs the nested_vhost_user test.
#
# --suite vfio: L1 is a q35 with an emulated IOMMU (intel-iommu) and a bochs-display and a
# virtio-gpu-pci on root ports of their own; `vgpu vfio bind` puts both on vfio-pci and `vgpu run
# --gpu vfio,host=...` passes both to L2 (guests/nested/l1-vfio, l2-vfio), twice. The host takes
# a QMP screendump of each device whenever L2 says so (scripts/qmp-shots.py): DIR/<round>-<when>-
# bochs.png and -virtio.png. Results go to target/nested-vfio/; --test then runs nested_vfio.
#
# --suite mdev: L1 loads Linux's mbochs sample (built on the host by guests/slices/build.sh),
# makes two instances with `vgpu mdev start` and runs two L2 VMs at once, each on one instance
# (`--gpu vfio,sysfsdev=...`, guests/nested/l1-mdev, l2-mdev); each VMM's screenshot of its
# mdev's display comes back as DIR/l2-gpu-mdev1.png (colour bars) and -mdev2.png (inverted).
# Results go to target/nested-mdev/; --test then runs nested_mdev.
#
# --suite sriov: L1 has an igb (SR-IOV) behind an emulated IOMMU; `vgpu sriov enable` makes two
# VFs on vfio-pci and one goes to L2 (guests/nested/l1-sriov, l2-sriov), where igbvf binds and
# its MSI-X vectors fire; disabling the VFs meanwhile is refused. Results go to
# target/nested-sriov/; --test then runs nested_sriov.
#
# Writes DIR/l1.log (the whole L1 console), DIR/l2.png (the inner scanout) and DIR/times.txt, and
# prints the timings. --qemu N (default 2) then boots the same L2 N more times each with QEMU
# -enable-kvm and with vgpu run (no GPU, alternating) inside L1, for the boot-to-init comparison. Exit status 0 when the screenshot came back; --test then runs the
# nested_kvm test on this run's results (it checks the pixels).
# It takes minutes (everything in L1 is emulated): `cargo test -p vgpu-tests --test nested_kvm`
# runs it only with VGPU_NESTED=1.
#
# CI runs each suite once per change to the paths it covers: --ci does nothing when the git tree
# hashes of those paths equal the ones in the suite's stamp file (written by --record after a
# passing run, and committed): display covers vmm/ (guests/nested/verified-vmm-tree); venus covers
# vmm/, virtio-gpu/, venus/, the vk-conformance program, the guest programs and image scripts and
# this script (.ci/verified-nested-venus).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=
suite=display
checks=
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
    --suite) suite=$2; shift 2 ;;
    --checks) checks=$2; shift 2 ;;
    *) echo "nested.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$suite" in
  display) covered=(vmm virtio-gpu guests/nested/l2-draw); l1_mem=2G; l1_cpu=max; stamp_file=guests/nested/verified-vmm-tree
           out=${out:-$root/target/nested} ;;
  # TCG's max CPU says AMD family 6, which LLVM (lavapipe's JIT in L1) takes for a 32-bit Athlon
  # ("64-bit code requested on a subtarget that doesn't support it"): say Zen instead.
  venus) covered=(vmm virtio-gpu venus tests/src/bin guests/programs guests/lib guests/build-image.sh
                  guests/nested/build.sh guests/nested/l1-run guests/nested/l2-venus scripts/nested.sh)
         l1_mem=3G; l1_cpu=max,family=23,model=1,stepping=2
         stamp_file=.ci/verified-nested-venus; out=${out:-$root/target/nested-venus} ;;
  vhost-user) covered=(vmm virtio-gpu guests/lib guests/programs guests/nested/build.sh
                       guests/nested/l1-run guests/nested/l1-vhost-user guests/nested/l2-vhost-user
                       guests/nested/l2-draw scripts/nested.sh)
              l1_mem=2G; l1_cpu=max; stamp_file=.ci/verified-nested-vhost-user
              out=${out:-$root/target/nested-vhost-user} ;;
  vfio) covered=(vmm vgpu-mdev guests/lib guests/programs guests/nested/build.sh guests/nested/l1-run
                 guests/nested/l1-vfio guests/nested/l2-vfio scripts/nested.sh scripts/qmp-shots.py)
        l1_mem=2G; l1_cpu=max; stamp_file=.ci/verified-nested-vfio
        out=${out:-$root/target/nested-vfio} ;;
  mdev) covered=(vmm vgpu-mdev guests/lib guests/programs guests/nested/build.sh guests/nested/l1-run
                 guests/nested/l1-mdev guests/nested/l2-mdev guests/slices/build.sh guests/slices/mdev-suite
                 scripts/nested.sh)
        l1_mem=2G; l1_cpu=max; stamp_file=.ci/verified-nested-mdev
        out=${out:-$root/target/nested-mdev} ;;
  sriov) covered=(vmm vgpu-mdev guests/lib guests/programs guests/nested/build.sh guests/nested/l1-run
                  guests/nested/l1-sriov guests/nested/l2-sriov scripts/nested.sh)
         l1_mem=2G; l1_cpu=max; stamp_file=.ci/verified-nested-sriov
         out=${out:-$root/target/nested-sriov} ;;
  *) echo "nested.sh: unknown suite $suite (display, venus, vhost-user, vfio, mdev, sriov)" >&2; exit 2 ;;
esac
mkdir -p "$out"
cd "$root"
# One path: its git tree hash; several: a hash of theirs.
covered_tree=$(for p in "${covered[@]}"; do git rev-parse "HEAD:$p" 2>/dev/null || echo unknown; done)
[ ${#covered[@]} -gt 1 ] && covered_tree=$(echo "$covered_tree" | sha1sum | cut -c1-40)
if [ $ci = 1 ] && [ -f $stamp_file ] && [ "$(cat $stamp_file)" = "$covered_tree" ]; then
  echo "nested $suite: ${covered[*]} unchanged since the last verified run ($covered_tree); skipped"
  exit 0
fi
t0=$(date +%s.%N)
if [ ! -x "${VGPU_BIN:-target/debug/vgpu}" ]; then cargo build -q -p vmm --bin vgpu; fi
build_args=()
[ $qemu_too = 1 ] && build_args+=(--qemu)
[ "$suite" = vhost-user ] && build_args+=(--vhost-user)
[ "$suite" = vfio ] && build_args+=(--vfio)
[ "$suite" = sriov ] && build_args+=(--sriov)
if [ "$suite" = mdev ]; then
  build_args+=(--mdev)
  ls guests/cache/mdev/*/modules/mbochs.ko >/dev/null 2>&1 || guests/slices/build.sh --quiet
fi
if [ "$suite" = venus ]; then
  build_args+=(--venus)
  [ -n "${VK_CONFORMANCE_BIN:-}" ] || cargo build -q --release -p vgpu-tests --bin vk-conformance
fi
[ -s guests/out/vmlinuz ] || guests/build-image.sh --quiet
guests/nested/build.sh "${build_args[@]}" >/dev/null
t1=$(date +%s.%N)

append="console=ttyS0 panic=-1 quiet vgpu_run=l1-run"
[ $qemu_too = 1 ] && append="$append vgpu_qemu=$rounds"
[ "$suite" = venus ] && append="$append vgpu_suite=venus${checks:+ vgpu_checks=$checks}"
if [ "$suite" = vhost-user ]; then
  append="$append vgpu_suite=vhost-user"
  [ $qemu_too = 1 ] && append="$append vgpu_vu_rounds=$rounds"
fi
l1_devices=()
if [ "$suite" = sriov ]; then
  # igb: an SR-IOV PF (8086:10c9, VFs 8086:10ca) on its own root port behind the IOMMU.
  append="$append vgpu_suite=sriov intel_iommu=on"
  l1_devices=(-device intel-iommu,intremap=on -device pcie-root-port,id=rp1,chassis=1
              -netdev user,id=n0 -device igb,bus=rp1,netdev=n0)
fi
if [ "$suite" = mdev ]; then
  # A whole bochs-display too (its own IOMMU group), for the mdev-against-whole numbers.
  append="$append vgpu_suite=mdev intel_iommu=on"
  l1_devices=(-vga none -device intel-iommu,intremap=on
              -device pcie-root-port,id=rp1,chassis=1 -device bochs-display,bus=rp1,id=bochs)
fi
if [ "$suite" = vfio ]; then
  append="$append vgpu_suite=vfio intel_iommu=on"
  rm -f "$out"/*-bochs.png "$out"/*-virtio.png
  # -vga none: q35's default VGA would be a second 1234:1111 function at 00:01.0. The bochs
  # display has an audio function beside it, as a GPU has: one IOMMU group of two, and no reset
  # of its own (no FLR, not alone on its bus), so the VMM must hot reset the bus.
  l1_devices=(-vga none -device intel-iommu,intremap=on
              -device pcie-root-port,id=rp1,chassis=1
              -device bochs-display,bus=rp1,addr=0.0,multifunction=on,id=bochs -device intel-hda,bus=rp1,addr=0.1
              -device pcie-root-port,id=rp2,chassis=2 -device virtio-gpu-pci,bus=rp2,id=vgpu0,iommu_platform=on,disable-legacy=on
              -qmp "unix:$out/qmp.sock,server=on,wait=off")
fi
rm -f "$out/l2.png" "$out/l1.log" "$out/qmp.sock"
: > "$out/l1.log"
set +e
shots_pid=
if [ "$suite" = vfio ]; then
  python3 scripts/qmp-shots.py "$out/qmp.sock" "$out/l1.log" "$out" bochs=bochs vgpu0=virtio \
    > "$out/shots.log" 2>&1 &
  shots_pid=$!
fi
timeout "$timeout_s" qemu-system-x86_64 -accel tcg -M q35 -cpu $l1_cpu -smp 1 -m $l1_mem \
  -nographic -no-reboot -kernel guests/out/vmlinuz -initrd guests/out/nested-l1.cpio.gz \
  "${l1_devices[@]}" -append "$append" > "$out/l1.log" 2>&1 < /dev/null
rc=$?
if [ -n "$shots_pid" ]; then
  rm -f "$out/qmp.sock"
  wait "$shots_pid"
  cat "$out/shots.log"
fi
set -e
t2=$(date +%s.%N)
tr -d '\r' < "$out/l1.log" | sed -n '/^VGPU-PNG-BEGIN/,/^VGPU-PNG-END/p' | sed '1d;$d' | base64 -d > "$out/l2.png" 2>/dev/null || true
[ -s "$out/l2.png" ] || rm -f "$out/l2.png"
# The vhost-user suite's display runs: one PNG per GPU backend.
for label in ours qemu mdev1 mdev2; do
  png="$out/l2-gpu-$label.png"
  tr -d '\r' < "$out/l1.log" | sed -n "/^VGPU-PNG-$label-BEGIN/,/^VGPU-PNG-$label-END/p" | sed '1d;$d' \
    | base64 -d > "$png" 2>/dev/null || true
  [ -s "$png" ] || rm -f "$png"
done

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
grep -a "VGPU-RESULT\|VGPU-L2 .* vgpu VGPU-\|VGPU-EXIT" "$out/l1.log" | tr -d '\r' | head -80 || true
if [ "$suite" = vhost-user ]; then
  # The storage benchmark (with --qemu): per metric, the mean over rounds on each VMM and ours
  # against QEMU's (higher is better for both metrics). Also in DIR/bench.txt.
  tr -d '\r' < "$out/l1.log" | awk '
    $1 == "VGPU-L2" && $4 == "VGPU-BENCH" && $7 ~ /^[0-9.]+$/ {
      split($5, who, "-"); key = who[2] " " $6
      sum[who[1], key] += $7; n[who[1], key]++; keys[key] = 1
      all[who[1], key] = all[who[1], key] sprintf("%s%g", (all[who[1], key] == "" ? "" : "/"), $7)
    }
    END {
      printf "%-16s %-22s %-22s %s\n", "metric", "vgpu (mean; rounds)", "qemu -enable-kvm", "vgpu/qemu"
      for (k in keys) {
        v = n["vgpu", k] ? sum["vgpu", k] / n["vgpu", k] : 0
        q = n["qemu", k] ? sum["qemu", k] / n["qemu", k] : 0
        printf "%-16s %-22s %-22s %s\n", k, sprintf("%.1f; %s", v, all["vgpu", k]),
          sprintf("%.1f; %s", q, all["qemu", k]), (q > 0 ? sprintf("%.2fx", v / q) : "-")
      }
    }' | tee "$out/bench.txt"
  if ! grep -aq "VGPU-RESULT vu-suite DONE" "$out/l1.log"; then
    echo "nested: the vhost-user suite did not finish; see $out/l1.log" >&2
    exit 1
  fi
elif [ "$suite" = vfio ]; then
  grep -a "VGPU-VFIO" "$out/l1.log" | tr -d '\r' | grep -v "VGPU-VFIO-L1 list" | head -60 || true
  # Side by side (with --qemu): boot to the first frame on both passed displays (START to the
  # first VGPU-VFIO-SHOT, L1 uptime), display updates per second through the passed virtio-gpu,
  # VM exits (all, and those to the VMM for MMIO) per 1000 32-bit writes on the bochs BAR0 from
  # L1's KVM statistics, the time per write, and how many BAR accesses reached our VMM. Ratios
  # are ours against QEMU's, above 1 better. Also in DIR/bench.txt.
  tr -d '\r' < "$out/l1.log" | awk '
    $1 == "VGPU-L2" && $4 == "START" { who = $3; start = $2 }
    $1 == "VGPU-L2" && $4 == "VGPU-VFIO-SHOT" && $5 ~ /-first$/ && start != "" {
      boot[who] += $2 - start; nboot[who]++; start = "" }
    # Exit counters at L2s marks: idle (a quiet second starts), fill (the writes start),
    # done N (N writes done); the quiet seconds rate is taken off the fill window.
    $1 == "VGPU-VFIO-L1" && $2 == "exits" {
      who = $3; t[$7] = $4; e[1, $7] = $5; e[2, $7] = $6
      if ($7 == "done" && $8 > 0 && t["fill"] > t["idle"]) {
        for (k = 1; k <= 2; k++) {
          rate = (e[k, "fill"] - e[k, "idle"]) / (t["fill"] - t["idle"])
          per[k, who] += ((e[k, "done"] - e[k, "fill"]) - rate * (t["done"] - t["fill"])) / $8 * 1000
        }
        nper[who]++
      }
    }
    $1 == "VGPU-L2" && $4 == "VGPU-TEST" && $5 == "bar-fill" && $6 == "PASS" {
      for (i = 7; i <= NF; i++) if ($i ~ /^ns_per_write=/) { w = substr($i, 14) }
      if (index($0, "writes=4194304")) { wr[$3] += w; nwr[$3]++ } }
    $1 == "VGPU-L2" && $4 == "VGPU-TEST" && $5 == "kms-frames" {
      for (i = 6; i <= NF; i++) if ($i ~ /^fps=/) { fps[$3] += substr($i, 5); nfps[$3]++ } }
    END {
      vb = nboot["vfio"] ? boot["vfio"] / nboot["vfio"] : 0; qb = nboot["qemu"] ? boot["qemu"] / nboot["qemu"] : 0
      vf = nfps["vfio"] ? fps["vfio"] / nfps["vfio"] : 0; qf = nfps["qemu"] ? fps["qemu"] / nfps["qemu"] : 0
      printf "%-26s %-14s %-14s %s\n", "metric", "vgpu (mean)", "qemu -enable-kvm", "vgpu vs qemu"
      printf "%-26s %-14.2f %-14.2f %s\n", "boot_to_first_frame_s", vb, qb, (vb > 0 && qb > 0 ? sprintf("%.2fx", qb / vb) : "-")
      printf "%-26s %-14.1f %-14.1f %s\n", "virtio_gpu_updates_per_s", vf, qf, (vf > 0 && qf > 0 ? sprintf("%.2fx", vf / qf) : "-")
      for (k = 1; k <= 2; k++) {
        name = k == 1 ? "vm_exits_per_1000_fb_writes" : "mmio_exits_per_1000_fb_writes"
        v = nper["vfio"] ? per[k, "vfio"] / nper["vfio"] : -1; q = nper["qemu"] ? per[k, "qemu"] / nper["qemu"] : -1
        # Lower is better; a VMM that maps the BAR costs none, so the ratio is only shown
        # where both cost some.
        printf "%-26s %-14.3f %-14.3f %s\n", name, v, q, (v > 0.05 && q > 0.05 ? sprintf("%.2fx", q / v) : "-")
      }
      wv = nwr["vfio"] ? wr["vfio"] / nwr["vfio"] : 0; wq = nwr["qemu"] ? wr["qemu"] / nwr["qemu"] : 0
      printf "%-26s %-14.2f %-14.2f %s\n", "fb_write_ns", wv, wq, (wv > 0 && wq > 0 ? sprintf("%.2fx", wq / wv) : "-")
    }' | tee "$out/bench.txt"
  grep -a "vfio: released" "$out/l1.log" | tr -d '\r' | sed 's/.*device="\([^"]*\)" trapped=\(\[[^]]*\]\).*/trapped BAR accesses (BAR0..5, ROM) \1: \2/' \
    | tee -a "$out/bench.txt"
  if ! grep -aq "VGPU-RESULT vfio-suite DONE" "$out/l1.log"; then
    echo "nested: the vfio suite did not finish; see $out/l1.log" >&2
    exit 1
  fi
elif [ "$suite" = sriov ]; then
  grep -a "VGPU-SRIOV\|vfio:" "$out/l1.log" | tr -d '\r' | head -60 || true
  if ! grep -aq "VGPU-RESULT sriov-suite DONE" "$out/l1.log"; then
    echo "nested: the sriov suite did not finish; see $out/l1.log" >&2
    exit 1
  fi
elif [ "$suite" = mdev ]; then
  grep -a "VGPU-MDEV\|vfio:" "$out/l1.log" | tr -d '\r' | head -60 || true
  # Side by side: the same L2 on an mbochs instance and on the whole bochs-display, each passed
  # by our VMM: page flips per second (higher is better) and time per framebuffer write (lower
  # is better). Ratios: the mdev's against the whole device's, above 1 better. Also in
  # DIR/bench.txt.
  tr -d '\r' < "$out/l1.log" | awk '
    $1 == "VGPU-L2" && $4 == "VGPU-TEST" && $5 == "kms-flips" && $6 == "PASS" {
      for (i = 7; i <= NF; i++) if ($i ~ /^fps=/) { flips[$3] += substr($i, 5); nflips[$3]++ } }
    $1 == "VGPU-L2" && $4 == "VGPU-TEST" && $5 == "bar-fill" && $6 == "PASS" {
      for (i = 7; i <= NF; i++) if ($i ~ /^ns_per_write=/) { ns[$3] += substr($i, 14); nns[$3]++ } }
    END {
      m = nflips["mdev-bench"] ? flips["mdev-bench"] / nflips["mdev-bench"] : 0
      w = nflips["whole-bench"] ? flips["whole-bench"] / nflips["whole-bench"] : 0
      mw = nns["mdev-bench"] ? ns["mdev-bench"] / nns["mdev-bench"] : 0
      ww = nns["whole-bench"] ? ns["whole-bench"] / nns["whole-bench"] : 0
      printf "%-24s %-14s %-14s %s\n", "metric", "mbochs slice", "whole bochs", "slice vs whole"
      printf "%-24s %-14.1f %-14.1f %s\n", "page_flips_per_s", m, w, (m > 0 && w > 0 ? sprintf("%.2fx", m / w) : "-")
      printf "%-24s %-14.2f %-14.2f %s\n", "fb_write_ns", mw, ww, (mw > 0 && ww > 0 ? sprintf("%.2fx", ww / mw) : "-")
    }' | tee "$out/bench.txt"
  if ! grep -aq "VGPU-RESULT mdev-suite DONE" "$out/l1.log"; then
    echo "nested: the mdev suite did not finish; see $out/l1.log" >&2
    exit 1
  fi
elif [ -f "$out/l2.png" ]; then
  echo "nested: screenshot $out/l2.png"
else
  echo "nested: no screenshot came back; see $out/l1.log" >&2
  exit 1
fi
if [ $run_test = 1 ]; then
  test_name=nested_kvm
  [ "$suite" = venus ] && test_name=nested_venus
  [ "$suite" = vhost-user ] && test_name=nested_vhost_user
  [ "$suite" = vfio ] && test_name=nested_vfio
  [ "$suite" = mdev ] && test_name=nested_mdev
  [ "$suite" = sriov ] && test_name=nested_sriov
  VGPU_NESTED=1 VGPU_NESTED_REUSE=1 VGPU_NESTED_OUT="$out" cargo test -q -p vgpu-tests --test $test_name
fi
# Recorded only after the test passed (with --test, a failing test exits above).
if [ $record = 1 ]; then
  echo "$covered_tree" > $stamp_file
  echo "nested $suite: recorded tree $covered_tree of ${covered[*]} in $stamp_file (commit it)"
fi
