#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian 12 machine. Idempotent: packages already
# present are skipped, so reruns take a second.
set -euo pipefail

need_root() { if [ "$(id -u)" -ne 0 ]; then echo "sudo"; fi; }
SUDO=$(need_root)

BASE_PKGS=(mesa-vulkan-drivers libvulkan1 libvulkan-dev vulkan-tools pkg-config
           busybox-static cpio kmod zstd xz-utils
           gcc libc6-dev libdrm-dev)
# QEMU 10 (vhost-user without KVM) and the 6.12 kernel come from bookworm-backports.
BACKPORT_PKGS=(qemu-system-x86 qemu-system-gui)

missing=()
for p in "${BASE_PKGS[@]}" "${BACKPORT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
qemu_ok=0
if command -v qemu-system-x86_64 >/dev/null 2>&1; then
  qemu-system-x86_64 --version | grep -qE 'version (1[0-9]|[2-9][0-9])\.' && qemu_ok=1
fi

if [ ${#missing[@]} -eq 0 ] && [ $qemu_ok -eq 1 ]; then
  echo "setup: all packages present"
  exit 0
fi

if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${BASE_PKGS[@]}"
$SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports "${BACKPORT_PKGS[@]}"
echo "setup: done"
