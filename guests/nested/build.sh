#!/usr/bin/env bash
# Builds the nested harness's two images with guests/build-image.sh (the Debian 6.12 kernel of
# issue #3's builder serves both levels):
#   guests/out/nested-l2.cpio.gz  inner guest: virtio_gpu + KMS test programs + l2-draw
#   guests/out/nested-l1.cpio.gz  outer guest: kvm_amd, the vgpu binary (stripped, with its shared
#                                 libraries), the inner kernel and initramfs, l1-run;
#                                 with --qemu also qemu-system-x86_64 and its firmware.
#   with --venus also:
#   guests/out/nested-l2-venus.cpio.gz  inner guest for the venus suite: Mesa 25's venus ICD (from
#                                 scripts/setup.sh's .cache/venus-icd), the Vulkan loader,
#                                 vulkaninfo, vk-conformance, vgpu-venus-evil and l2-venus;
#                                 and L1 gets lavapipe (the host's Mesa) for `backend=vulkan`
#                                 and vk-conformance (the native baseline).
#   with --vfio also:
#   guests/out/nested-l2-vfio.cpio.gz   inner guest for the vfio suite: bochs (bochs-drm) and
#                                 virtio_gpu, l2-vfio; and L1 gets vfio-pci and l1-vfio.
#   with --mdev also:
#   guests/out/nested-l2-mdev.cpio.gz   inner guest for the mdev suite: bochs (bochs-drm), l2-mdev;
#                                 and L1 gets mdev, vfio, vfio-pci, mbochs.ko
#                                 (guests/slices/build.sh builds it) and l1-mdev.
#   with --sriov also:
#   guests/out/nested-l2-sriov.cpio.gz  inner guest for the sriov suite: igbvf, l2-sriov; and L1
#                                 gets igb, vfio-pci and l1-sriov.
#   with --vhost-user also:
#   guests/out/nested-l2-vu.cpio.gz     inner guest for the vhost-user suite: virtio_blk and virtiofs
#                                 (its root comes over virtio-fs; l2-vhost-user is its /sbin/init,
#                                 copied into that root by L1); and L1 gets qemu-storage-daemon,
#                                 virtiofsd (scripts/setup.sh builds it), QEMU's vhost-user-gpu
#                                 and l1-vhost-user; L2 also gets l2-draw for the display runs.
# Usage: guests/nested/build.sh [--vgpu PATH] [--qemu] [--venus] [--vhost-user] [--vfio] [--mdev] [--sriov]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/guests/out
vgpu=${VGPU_BIN:-$root/target/debug/vgpu}
with_qemu=0
with_venus=0
with_vu=0
with_vfio=0
with_mdev=0
with_sriov=0
while [ $# -gt 0 ]; do
  case "$1" in
    --vgpu) vgpu=$2; shift 2 ;;
    --qemu) with_qemu=1; shift ;;
    --venus) with_venus=1; shift ;;
    --vhost-user) with_vu=1; shift ;;
    --vfio) with_vfio=1; shift ;;
    --mdev) with_mdev=1; shift ;;
    --sriov) with_sriov=1; shift ;;
    *) echo "nested/build.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$vgpu" ] || { echo "nested/build.sh: $vgpu missing (cargo build -p vmm)" >&2; exit 1; }

"$root/guests/build-image.sh" --quiet --name nested-l2 --file "$here/l2-draw:/bin/l2-draw"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# Shared libraries of every binary we bring, at the paths the dynamic loader looks them up.
libs() { ldd "$1" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'; }
# --file arguments for the shared libraries of binaries "$@".
lib_files() {
  local lib
  for lib in $(for b in "$@"; do libs "$b"; done | sort -u); do
    echo "--file"
    echo "$(readlink -f "$lib"):$lib"
  done
}
multiarch=/usr/lib/x86_64-linux-gnu
vulkan_loader=$(readlink -f $multiarch/libvulkan.so.1)

if [ $with_venus = 1 ]; then
  icd_dir=$root/.cache/venus-icd
  conformance=${VK_CONFORMANCE_BIN:-$root/target/release/vk-conformance}
  [ -f "$icd_dir/libvulkan_virtio.so" ] || { echo "nested/build.sh: no venus ICD; run scripts/setup.sh" >&2; exit 1; }
  [ -x "$conformance" ] || { echo "nested/build.sh: $conformance missing (cargo build --release -p vgpu-tests --bin vk-conformance)" >&2; exit 1; }
  printf '{ "ICD": { "api_version": "1.3.305", "library_path": "%s/libvulkan_virtio.so" }, "file_format_version": "1.0.0" }\n' \
    "$multiarch" > "$stage/virtio_icd.json"
  strip -o "$stage/vk-conformance" "$conformance"
  mapfile -t l2_libs < <(lib_files "$icd_dir/libvulkan_virtio.so" "$vulkan_loader" \
    /usr/bin/vulkaninfo "$conformance")
  "$root/guests/build-image.sh" --quiet --name nested-l2-venus \
    --file "$here/l2-venus:/bin/l2-venus" \
    --file "$icd_dir/libvulkan_virtio.so:$multiarch/libvulkan_virtio.so" \
    --file "$stage/virtio_icd.json:/usr/share/vulkan/icd.d/virtio_icd.json" \
    --file "$vulkan_loader:$multiarch/libvulkan.so.1" \
    --file /usr/bin/vulkaninfo:/bin/vulkaninfo --file "$stage/vk-conformance:/bin/vk-conformance" \
    "${l2_libs[@]}"
fi

strip -o "$stage/vgpu" "$vgpu"
files=(--file "$stage/vgpu:/bin/vgpu" --file "$here/l1-run:/bin/l1-run"
       --file "$out/vmlinuz:/l2/vmlinuz" --file "$out/nested-l2.cpio.gz:/l2/nested-l2.cpio.gz")
bins=("$vgpu")
if [ $with_venus = 1 ]; then
  # L1's Vulkan for `backend=vulkan`: the loader and lavapipe (dlopened, so ldd of vgpu misses them).
  lvp=$multiarch/libvulkan_lvp.so
  bins+=("$vulkan_loader" "$lvp" "$conformance")
  # vk-conformance in L1 too: the native baseline, and the case list of `vgpu conformance`.
  files+=(--file "$stage/vk-conformance:/bin/vk-conformance"
          --file "$out/nested-l2-venus.cpio.gz:/l2/nested-l2-venus.cpio.gz"
          --file "$vulkan_loader:$multiarch/libvulkan.so.1" --file "$lvp:$lvp"
          --file /usr/share/vulkan/icd.d/lvp_icd.x86_64.json:/usr/share/vulkan/icd.d/lvp_icd.x86_64.json)
fi
if [ $with_vu = 1 ]; then
  virtiofsd=${VGPU_VIRTIOFSD:-$root/.cache/virtiofsd/bin/virtiofsd}
  [ -x "$virtiofsd" ] || { echo "nested/build.sh: $virtiofsd missing; run scripts/setup.sh" >&2; exit 1; }
  qsd=$(command -v qemu-storage-daemon)
  qemu_gpu=/usr/lib/qemu/vhost-user-gpu
  "$root/guests/build-image.sh" --quiet --name nested-l2-vu --module virtio_blk --module virtiofs \
    --file "$here/l2-draw:/bin/l2-draw"
  bins+=("$virtiofsd" "$qsd" "$qemu_gpu")
  files+=(--file "$virtiofsd:/bin/virtiofsd" --file "$qsd:/bin/qemu-storage-daemon"
          --file "$qemu_gpu:/bin/vhost-user-gpu"
          --file "$here/l1-vhost-user:/bin/l1-vhost-user" --file "$here/l2-vhost-user:/bin/l2-vhost-user"
          --file "$out/nested-l2-vu.cpio.gz:/l2/nested-l2-vu.cpio.gz")
fi
l1_modules=(--module kvm_amd)
if [ $with_vfio = 1 ]; then
  "$root/guests/build-image.sh" --quiet --name nested-l2-vfio --module bochs \
    --file "$here/l2-vfio:/bin/l2-vfio"
  files+=(--file "$here/l1-vfio:/bin/l1-vfio" --file "$out/nested-l2-vfio.cpio.gz:/l2/nested-l2-vfio.cpio.gz")
  l1_modules+=(--module vfio_pci --module vfio_iommu_type1)
fi
if [ $with_mdev = 1 ]; then
  # mbochs, built against the guest kernel by guests/slices/build.sh.
  mbochs=$(ls "$root"/guests/cache/mdev/*/modules/mbochs.ko 2>/dev/null | head -n1)
  [ -f "$mbochs" ] || { echo "nested/build.sh: no mbochs.ko; run guests/slices/build.sh" >&2; exit 1; }
  "$root/guests/build-image.sh" --quiet --name nested-l2-mdev --module bochs \
    --file "$here/l2-mdev:/bin/l2-mdev"
  # mdevctl 1.2 (scripts/setup.sh extracts it) and the slices image's management checks
  # (guests/slices/mdev-suite), run against the same L1 kernel first.
  mdevctl=$root/.cache/mdevctl/usr/bin/mdevctl
  [ -x "$mdevctl" ] || { echo "nested/build.sh: $mdevctl missing; run scripts/setup.sh" >&2; exit 1; }
  bins+=("$mdevctl")
  files+=(--file "$here/l1-mdev:/bin/l1-mdev" --file "$mbochs:/lib/mdev/mbochs.ko"
          --file "$mdevctl:/bin/mdevctl" --file "$root/guests/slices/mdev-suite:/bin/mdev-suite"
          --file "$out/nested-l2-mdev.cpio.gz:/l2/nested-l2-mdev.cpio.gz")
  l1_modules+=(--module mdev --module vfio --module vfio_iommu_type1 --module vfio_pci)
fi
if [ $with_sriov = 1 ]; then
  "$root/guests/build-image.sh" --quiet --name nested-l2-sriov --module igbvf \
    --file "$here/l2-sriov:/bin/l2-sriov"
  files+=(--file "$here/l1-sriov:/bin/l1-sriov" --file "$out/nested-l2-sriov.cpio.gz:/l2/nested-l2-sriov.cpio.gz")
  l1_modules+=(--module igb --module vfio_pci --module vfio_iommu_type1)
fi
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
mapfile -t l1_libs < <(lib_files "${bins[@]}")
files+=("${l1_libs[@]}")
"$root/guests/build-image.sh" --quiet --name nested-l1 "${l1_modules[@]}" "${files[@]}"
ls -la "$out"/nested-l*.cpio.gz
