#!/usr/bin/env bash
# Builds vgpu (release) and installs it: bin/vgpu on the PATH, and our vhost-user GPU backend
# registered where libvirt looks (see `vgpu install --help`). As root: /usr/local and
# /etc/qemu/vhost-user (system libvirt); otherwise ~/.local and ~/.config/qemu/vhost-user
# (session libvirt). `scripts/install.sh --uninstall` removes both again.
set -euo pipefail
cd "$(dirname "$0")/.."
# Uninstalling needs no fresh build, only a vgpu that knows the paths.
if [[ " $* " != *" --uninstall "* || ! -x target/release/vgpu ]]; then
  cargo build --release -p vmm --bin vgpu
fi
exec target/release/vgpu install "$@"
