#!/usr/bin/env bash
# Short coverage-guided fuzz run for CI: every target for SECONDS (default 20) starting from
# the committed corpus; fails on the first crash or broken invariant.
#
#   migrate-runtime/fuzz/run.sh [SECONDS]
#
# Works on the stable toolchain: `-s none` builds without a sanitizer, which is the only part
# of cargo-fuzz that needs nightly (Rust has no data races or out-of-bounds accesses to catch
# in this safe code; the targets assert the parser's invariants instead).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-20}"
cargo_fuzz_version="0.13.2"

if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

cargo fuzz build -s none

# New inputs go to a scratch directory, so a CI run leaves the committed corpus unchanged.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

for target in file_name migration_file sql; do
    dict=sql.dict
    [ "$target" = file_name ] && dict=file_name.dict
    mkdir -p "$scratch/$target"
    echo "fuzz: $target for ${seconds}s"
    log="$scratch/$target.log"
    status=0
    cargo fuzz run -s none "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -dict="dicts/$dict" -max_len=4096 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        # libFuzzer stops at the first crash and saves the input under artifacts/$target/.
        tail -n 60 "$log"
        echo "fuzz: $target failed (status $status)" >&2
        exit "$status"
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$log"
done
