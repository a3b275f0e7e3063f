#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian 12 machine. Idempotent: packages already
# present are skipped, so reruns take a second.
set -euo pipefail

need_root() { if [ "$(id -u)" -ne 0 ]; then echo "sudo"; fi; }
SUDO=$(need_root)

BASE_PKGS=(mesa-vulkan-drivers libvulkan1 libvulkan-dev vulkan-tools pkg-config
           busybox-static cpio kmod zstd xz-utils
           gcc libc6-dev libdrm-dev python3-venv curl
           libseccomp-dev libcap-ng-dev)
# QEMU 10 (vhost-user without KVM) and the 6.12 kernel come from bookworm-backports, with its
# qemu-storage-daemon (qemu-utils: the vhost-user-blk backend `vgpu run --disk` uses), and so does
# libvirt 11.3, the one nearest QEMU 10, for the libvirt test and bench row (it brings
# backports' systemd along, which nothing here runs: the test starts its own libvirtd).
BACKPORT_PKGS=(qemu-system-x86 qemu-system-gui qemu-utils libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)

missing=()
for p in "${BASE_PKGS[@]}" "${BACKPORT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
qemu_ok=0
if command -v qemu-system-x86_64 >/dev/null 2>&1; then
  qemu-system-x86_64 --version | grep -qE 'version (1[0-9]|[2-9][0-9])\.' && qemu_ok=1
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
# Mesa 25's venus driver (guest-side Vulkan over the Venus protocol), extracted from
# bookworm-backports' mesa-vulkan-drivers and never installed: installing it would replace the
# host's lavapipe. Tests and benchmarks point VK_DRIVER_FILES at this ICD.
venus_dir="$root/.cache/venus-icd"
venus_icd="$venus_dir/virtio_icd.json"
install_venus_icd() {
  [ -f "$venus_icd" ] && return 0
  local tmp
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download -q mesa-vulkan-drivers/bookworm-backports >/dev/null 2>&1)
  mkdir -p "$venus_dir"
  dpkg-deb -x "$tmp"/mesa-vulkan-drivers_*.deb "$tmp/x"
  cp "$tmp/x/usr/lib/x86_64-linux-gnu/libvulkan_virtio.so" "$venus_dir/"
  printf '{ "ICD": { "api_version": "1.3.305", "library_path": "%s/libvulkan_virtio.so" }, "file_format_version": "1.0.0" }\n' \
    "$venus_dir" > "$venus_icd"
  rm -rf "$tmp"
  echo "setup: venus ICD in $venus_icd"
}

# mdevctl 1.2 (bookworm), the reference `vgpu mdev` is tested against on fake sysfs trees:
# extracted, not installed (its package wants bookworm's udev, which conflicts with the
# backports systemd that libvirt brings).
mdevctl_dir="$root/.cache/mdevctl"
install_mdevctl() {
  [ -x "$mdevctl_dir/usr/bin/mdevctl" ] && return 0
  local tmp
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download -q mdevctl >/dev/null 2>&1)
  mkdir -p "$mdevctl_dir"
  dpkg-deb -x "$tmp"/mdevctl_*.deb "$mdevctl_dir"
  rm -rf "$tmp"
  echo "setup: mdevctl in $mdevctl_dir"
}

# virtiofsd, the virtio-fs backend of `vgpu run --fs`: not packaged for bookworm, so built from
# crates.io (it links libseccomp and libcap-ng) into .cache, where vgpu looks for it.
virtiofsd_dir="$root/.cache/virtiofsd"
install_virtiofsd() {
  [ -x "$virtiofsd_dir/bin/virtiofsd" ] && return 0
  echo "setup: building virtiofsd 1.14 from crates.io (a few minutes, once)"
  cargo install -q --locked virtiofsd@1.14.0 --root "$virtiofsd_dir"
  echo "setup: virtiofsd in $virtiofsd_dir"
}

# ncnn and wgpu-py, Vulkan clients nobody here wrote, for the venus tests and benchmark: PyPI
# wheels in a virtual environment, pinned by tests/clients/requirements.txt.
pyvenv="$root/.cache/pyvenv"
requirements="$root/tests/clients/requirements.txt"
pyvenv_ok() { cmp -s "$requirements" "$pyvenv/requirements.installed"; }
install_pyvenv() {
  pyvenv_ok && return 0
  rm -rf "$pyvenv"
  python3 -m venv "$pyvenv"
  "$pyvenv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$pyvenv/requirements.installed"
  echo "setup: ncnn and wgpu in $pyvenv"
}

# Debian trixie's virglrenderer vtest server, the side-by-side baseline of `vgpu bench venus`:
# extracted, never installed (it needs glibc 2.38+, so it runs under trixie's own loader from the
# extracted tree). Optional: without it the bench prints no virglrenderer column.
virgl_dir="$root/.cache/virgl-trixie"
install_virgl_trixie() {
  [ -x "$virgl_dir/virgl-server.sh" ] && return 0
  local tmp mirror=https://deb.debian.org/debian
  tmp="$(mktemp -d)"
  if ! curl -sfL "$mirror/dists/trixie/main/binary-amd64/Packages.xz" -o "$tmp/Packages.xz"; then
    echo "setup: trixie's archive unreachable; bench venus will have no virglrenderer column"
    rm -rf "$tmp"; return 0
  fi
  xz -d "$tmp/Packages.xz"
  mkdir -p "$virgl_dir/root"
  for pkg in virgl-server libvirglrenderer1 libc6; do
    local file
    file=$(awk -v p="$pkg" '$1=="Package:"{hit=($2==p)} hit && $1=="Filename:"{print $2; exit}' "$tmp/Packages")
    curl -sfL "$mirror/$file" -o "$tmp/$pkg.deb" && dpkg-deb -x "$tmp/$pkg.deb" "$virgl_dir/root"
  done
  rm -rf "$tmp"
  local ld="$virgl_dir/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
  local libs="$virgl_dir/root/usr/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu"
  printf '#!/bin/sh\nexec %s --library-path %s %s "$@"\n' \
    "$ld" "$libs" "$virgl_dir/root/usr/libexec/virgl_render_server" > "$virgl_dir/render-server.sh"
  printf '#!/bin/sh\nexport RENDER_SERVER_EXEC_PATH=%s\nexec %s --library-path %s %s --venus --no-virgl "$@"\n' \
    "$virgl_dir/render-server.sh" "$ld" "$libs" "$virgl_dir/root/usr/bin/virgl_test_server" > "$virgl_dir/virgl-server.sh"
  chmod +x "$virgl_dir/render-server.sh" "$virgl_dir/virgl-server.sh"
  echo "setup: trixie's virglrenderer in $virgl_dir"
}

if [ ${#missing[@]} -ne 0 ] || [ $qemu_ok -ne 1 ] || [ ! -f "$venus_icd" ]; then
  if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${BASE_PKGS[@]}"
  $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports "${BACKPORT_PKGS[@]}"
else
  echo "setup: all packages present"
fi
install_venus_icd
install_mdevctl
install_virtiofsd
install_pyvenv
install_virgl_trixie
