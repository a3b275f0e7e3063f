#!/usr/bin/env bash
# Builds the slices guest image: the pinned guest kernel with Linux's sample mediated devices
# (mbochs, mdpy, mtty; Debian does not build them) compiled out of tree against that kernel's
# own headers, igb and vfio-pci for SR-IOV, plus `vgpu` and mdevctl with their shared libraries
# and the guest sides of the tests (mdev-suite, sriov-suite). Output: guests/out/slices.cpio.gz (kernel: guests/out/vmlinuz).
#
# The sample sources come from linux-source-6.12 and the headers from linux-headers/linux-kbuild
# of the pinned kernel's version, all from Debian and extracted under guests/cache/mdev, never
# installed (installing the headers would pull the kernel image onto the host).
#
# Usage: guests/slices/build.sh [--vgpu PATH] [--quiet]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
vgpu=${VGPU_BIN:-$root/target/debug/vgpu}
quiet=()
while [ $# -gt 0 ]; do
  case "$1" in
    --vgpu) vgpu=$2; shift 2 ;;
    --quiet) quiet=(--quiet); shift ;;
    *) echo "mdev/build.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$vgpu" ] || { echo "mdev/build.sh: $vgpu missing (cargo build -p vmm)" >&2; exit 1; }
mdevctl="$root/.cache/mdevctl/usr/bin/mdevctl"
[ -x "$mdevctl" ] || { echo "mdev/build.sh: $mdevctl missing (scripts/setup.sh)" >&2; exit 1; }

# The guest kernel's version, from the image builder's pin (build it first if there is none).
[ -s "$root/guests/cache/kernel.pin" ] || "$root/guests/build-image.sh" "${quiet[@]}"
kpkg=$(cat "$root/guests/cache/kernel.pin")           # linux-image-6.12.95+deb12-amd64
kver=${kpkg#linux-image-}                              # 6.12.95+deb12-amd64
flavour_less=${kver%-amd64}                            # 6.12.95+deb12
cache="$root/guests/cache/mdev/$kver"
modules="$cache/modules"
if [ ! -f "$modules/mbochs.ko" ]; then
  mkdir -p "$cache/debs" "$cache/x" "$modules"
  deb_version=$(apt-cache show "$kpkg" | awk '/^Version:/ {print $2; exit}')
  series=$(echo "$kver" | cut -d. -f1-2)                # 6.12
  (cd "$cache/debs" && apt-get download -q "linux-headers-$kver" \
     "linux-headers-$flavour_less-common" "linux-kbuild-$flavour_less" \
     "linux-source-$series=$deb_version" >/dev/null 2>&1)
  for deb in "$cache"/debs/linux-headers-*.deb "$cache"/debs/linux-kbuild-*.deb; do
    dpkg-deb -x "$deb" "$cache/x"
  done
  dpkg-deb --fsys-tarfile "$cache"/debs/linux-source-*.deb 2>/dev/null |
    tar -xO "./usr/src/linux-source-$series.tar.xz" 2>/dev/null |
    tar -xJ -C "$cache" "linux-source-$series/samples/vfio-mdev" 2>/dev/null || true
  src="$cache/linux-source-$series/samples/vfio-mdev"
  [ -f "$src/mbochs.c" ] || { echo "mdev/build.sh: no samples/vfio-mdev in linux-source-$series" >&2; exit 1; }
  headers="$cache/x/usr/src/linux-headers-$kver"
  # The arch headers include the common ones by absolute path: point it at the extracted copy.
  sed -i "s|include /usr/src/|include $cache/x/usr/src/|" "$headers/Makefile"
  cp "$src"/mbochs.c "$src"/mdpy.c "$src"/mdpy-defs.h "$src"/mtty.c "$modules/"
  printf 'obj-m := mbochs.o mdpy.o mtty.o\n' > "$modules/Kbuild"
  # No BTF: that needs pahole, and the kernel loads modules without it.
  make -s -C "$headers" M="$modules" CONFIG_DEBUG_INFO_BTF_MODULES= modules >&2
fi

stripped="$root/guests/cache/mdev/vgpu"
strip -o "$stripped" "$vgpu"
libs() { ldd "$1" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'; }
files=()
for lib in $(for b in "$stripped" "$mdevctl"; do libs "$b"; done | sort -u); do
  files+=(--file "$(readlink -f "$lib"):$lib")
done
"$root/guests/build-image.sh" "${quiet[@]}" --name slices --module mdev --module vfio \
  --module igb --module vfio_pci \
  --file "$modules/mbochs.ko:/lib/mdev/mbochs.ko" --file "$modules/mdpy.ko:/lib/mdev/mdpy.ko" \
  --file "$modules/mtty.ko:/lib/mdev/mtty.ko" \
  --file "$stripped:/bin/vgpu" --file "$mdevctl:/bin/mdevctl" \
  --file "$here/mdev-suite:/bin/mdev-suite" --file "$here/sriov-suite:/bin/sriov-suite" \
  "${files[@]}"
