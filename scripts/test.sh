#!/usr/bin/env bash
# The project's test command: installs what is missing, builds guest images and `vgpu`, runs the
# nested real-KVM harness's suites (each once per change to what it covers), a bounded fuzz run,
# then every cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The e2e tests boot guests/out images under QEMU and run target/debug/vgpu: build both first.
bash guests/build-image.sh --quiet
cargo build -p vmm --bin vgpu
bash guests/slices/build.sh --quiet   # mbochs/mdpy/mtty built against the guest kernel, vgpu, mdevctl
bash scripts/nested.sh --ci --test  # nested real-KVM harness, once per change to vmm/ (minutes; see the script)
bash scripts/nested.sh --suite venus --ci --test  # Vulkan in a nested guest, once per change to its paths
bash scripts/nested.sh --suite vhost-user --ci --test  # virtio-fs root and disks from vhost-user backends
bash scripts/nested.sh --suite vfio --ci --test  # bochs-display + virtio-gpu-pci passed through (VFIO)
bash scripts/nested.sh --suite mdev --ci --test  # two L2 VMs on two mbochs instances, their displays
bash scripts/nested.sh --suite sriov --ci --test  # a VF of an igb passed to L2
bash scripts/fuzz.sh 60             # every fuzz target of the repo, a bounded run each
# In CI the e2e tests must run: a missing QEMU 10, image or binary fails them instead of skipping.
VGPU_E2E_REQUIRED=1 cargo test --workspace --all-targets 2>&1
