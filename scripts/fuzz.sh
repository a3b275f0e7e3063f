#!/usr/bin/env bash
# Runs every cargo-fuzz target of the repository for SECONDS each (default 60).
# Installs cargo-fuzz if missing; uses a nightly toolchain when there is one, else
# RUSTC_BOOTSTRAP=1 on stable (cargo-fuzz needs -Z flags).
set -euo pipefail
seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

logs="$root/target/fuzz-logs"
mkdir -p "$logs"
status=0
for dir in "$root"/*/fuzz; do
    [ -f "$dir/Cargo.toml" ] || continue
    crate_dir="$(dirname "$dir")"
    for target in $(cd "$crate_dir" && "${fuzz[@]}" list); do
        log="$logs/$(basename "$crate_dir")-$target.log"
        echo "== $(basename "$crate_dir")/$target: ${seconds}s (log: $log)"
        if (cd "$crate_dir" && "${fuzz[@]}" run "$target" -- \
                -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=8192) >"$log" 2>&1; then
            # libFuzzer's last status line: runs, coverage, corpus size.
            grep -E '^#[0-9]+' "$log" | tail -n 1 || true
        else
            tail -n 40 "$log"
            echo "fuzz.sh: $target FAILED (see $dir/artifacts/$target)" >&2
            status=1
        fi
    done
done
exit "$status"
