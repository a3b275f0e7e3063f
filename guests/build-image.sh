#!/usr/bin/env bash
# Builds a guest image (kernel + initramfs) from Debian packages, for QEMU/TCG and nested harnesses.
#
#   guests/build-image.sh [--name NAME] [--module MOD]... [--file SRC:DST]... [--quiet]
#
# Output:  guests/out/vmlinuz, guests/out/NAME.cpio.gz (default NAME: vgpu), guests/out/NAME.modules
# Cache:   guests/cache/ (kernel .deb, its extracted modules, statically built guest programs).
#
# Kernel: Debian's bookworm-backports 6.12 (linux-image-6.12.*-amd64). Why 6.12 rather than 6.1:
# QEMU 10 also comes from backports, and the 6.12 virtio_gpu driver is the one current distributions
# ship (context init with capset masks, blob resources, host-visible memory), so the e2e tests
# exercise what real guests do today. The exact package is resolved once with apt-cache and pinned
# in guests/cache/kernel.pin, so later runs (and runs without network) reuse it. Delete that file,
# or set VGPU_KERNEL_PKG=linux-image-..., to change it.
#
# Modules: virtio_pci, virtio_gpu and whatever they depend on, resolved recursively with
# `modinfo -F depends` (no hand-kept list); --module adds more (e.g. kvm_amd, vfio_pci for nested
# work), with their dependencies resolved the same way. They are stored uncompressed and loaded in
# dependency order by the init (guests/lib/init).
#
# Guest programs: every guests/programs/*.c is compiled statically with the host gcc; they go to
# /bin in the guest. --file SRC:DST copies extra host files into the image.
#
# The init runs the commands named on the kernel command line as vgpu_run=CMD[,CMD...] ('+' stands
# for a space inside a command), prints "VGPU-INIT done" and powers off; see guests/lib/init.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="$here/cache"
out="$here/out"
name=vgpu
quiet=0
extra_modules=()
extra_files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --module) extra_modules+=("$2"); shift 2 ;;
    --file) extra_files+=("$2"); shift 2 ;;
    --quiet) quiet=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "build-image: unknown option $1" >&2; exit 2 ;;
  esac
done
log() { [ "$quiet" = 1 ] || echo "build-image: $*" >&2; }
mkdir -p "$cache/debs" "$cache/programs" "$out"

# --- kernel package: resolve once, then pinned --------------------------------------------------
pin="$cache/kernel.pin"
if [ -n "${VGPU_KERNEL_PKG:-}" ]; then
  echo "$VGPU_KERNEL_PKG" > "$pin"
elif [ ! -s "$pin" ]; then
  bpo_version=$(apt-cache madison linux-image-amd64 | awk -F'|' '/bookworm-backports/ {gsub(/ /,"",$2); print $2; exit}')
  if [ -z "$bpo_version" ]; then
    echo "build-image: bookworm-backports is not in apt's sources; run scripts/setup.sh" >&2
    exit 1
  fi
  pkg=$(apt-cache depends "linux-image-amd64=$bpo_version" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  echo "$pkg" > "$pin"
  log "pinned kernel package $pkg (linux-image-amd64 $bpo_version from bookworm-backports)"
fi
kpkg=$(cat "$pin")
deb=$(ls "$cache/debs/${kpkg}_"*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
  log "downloading $kpkg"
  (cd "$cache/debs" && apt-get download -q "$kpkg" >/dev/null)
  deb=$(ls "$cache/debs/${kpkg}_"*.deb | head -n1)
fi
kroot="$cache/root-$kpkg"
if [ ! -f "$kroot/.extracted" ]; then
  log "extracting $(basename "$deb")"
  rm -rf "$kroot"
  dpkg-deb -x "$deb" "$kroot"
  kver=$(ls "$kroot/lib/modules" | head -n1)
  depmod -b "$kroot" "$kver"
  touch "$kroot/.extracted"
fi
kver=$(ls "$kroot/lib/modules" | head -n1)
cp -u "$kroot/boot/vmlinuz-$kver" "$out/vmlinuz"

# --- modules in dependency order (post-order walk of modinfo's depends) ------------------------
declare -A seen=()
order=()
add_module() {
  local m="${1//-/_}" dep deps
  [ -n "${seen[$m]:-}" ] && return 0
  seen[$m]=1
  deps=$(modinfo -b "$kroot" -k "$kver" -F depends "$m" 2>/dev/null || true)
  for dep in ${deps//,/ }; do add_module "$dep"; done
  local file
  file=$(modinfo -b "$kroot" -k "$kver" -n "$m" 2>/dev/null || true)
  case "$file" in
    "") echo "build-image: module $m not found in $kpkg" >&2; exit 1 ;;
    *builtin*|"(builtin)") ;; # compiled into the kernel: nothing to load
    *) order+=("$m:$file") ;;
  esac
}
for m in virtio_pci virtio_gpu "${extra_modules[@]}"; do add_module "$m"; done

# --- guest programs, built statically ------------------------------------------------------------
for src in "$here"/programs/*.c; do
  [ -e "$src" ] || continue
  bin="$cache/programs/$(basename "$src" .c)"
  if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$here/programs/vgpu_test.h" -nt "$bin" ]; then
    log "compiling $(basename "$src")"
    gcc -static -O2 -Wall -Wextra -Werror -I/usr/include/libdrm -I"$here/programs" -o "$bin" "$src"
  fi
done

# --- initramfs -----------------------------------------------------------------------------------
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,tmp,etc,lib/modules,mnt}
cp /bin/busybox "$stage/bin/busybox"
for applet in $("$stage/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$stage/bin/$applet"
done
: > "$stage/etc/modules.order"
for entry in "${order[@]}"; do
  m="${entry%%:*}" file="${entry#*:}"
  case "$file" in
    *.ko.xz) xz -dc "$file" > "$stage/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$file" > "$stage/lib/modules/$m.ko" ;;
    *.ko.gz) gzip -dc "$file" > "$stage/lib/modules/$m.ko" ;;
    *) cp "$file" "$stage/lib/modules/$m.ko" ;;
  esac
  echo "$m" >> "$stage/etc/modules.order"
done
cp "$cache"/programs/* "$stage/bin/" 2>/dev/null || true
install -m 0755 "$here/lib/init" "$stage/init"
install -m 0755 "$here/lib/vgpu-rebind" "$stage/bin/vgpu-rebind"
for spec in "${extra_files[@]}"; do
  src="${spec%%:*}" dst="${spec#*:}"
  mkdir -p "$stage/$(dirname "$dst")"
  cp -a "$src" "$stage/$dst"
done
cp "$stage/etc/modules.order" "$out/$name.modules"
(cd "$stage" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$out/$name.cpio.gz.tmp"
mv "$out/$name.cpio.gz.tmp" "$out/$name.cpio.gz"
log "kernel $kver: $out/vmlinuz; initramfs: $out/$name.cpio.gz ($(wc -l < "$out/$name.modules") modules)"
