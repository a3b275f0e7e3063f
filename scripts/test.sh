#!/usr/bin/env bash
# The project's test command: installs what is missing, then runs every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --all-targets 2>&1
bash scripts/nested.sh --ci --test  # nested real-KVM harness, once per change to vmm/ (minutes; see the script)
