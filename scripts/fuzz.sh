#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ (or the ones named) for SECONDS each (default 60),
# prints the executions of each, and fails on any crash, leak, timeout or out-of-memory.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# FUZZ_RUNS=N stops a target after N executions instead (SECONDS still bounds it); FUZZ_JOBS=2
# runs two targets at a time. Each target starts from its committed seeds (fuzz/corpus/<target>)
# and what earlier runs found (fuzz/corpus-work/<target>, not committed); a failing input is
# saved in fuzz/artifacts/<target>/ and its log in fuzz/artifacts/<target>.log. Replay one with
# `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>`.
# Installs what it needs when it is missing: the nightly toolchain, cargo-fuzz, a C++ compiler.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_EACH="${1:-60}"
shift || true
RUNS="${FUZZ_RUNS:--1}"
JOBS="${FUZZ_JOBS:-1}"
# Per input: a decoder that takes longer than this on one input is a hang.
TIMEOUT_S=10
# Per process (libFuzzer's RSS limit, and the largest single allocation it allows): a
# decoder must not let a length in its input allocate far beyond the input.
RSS_LIMIT_MB=2048
MALLOC_LIMIT_MB=1024

if ! command -v rustup >/dev/null 2>&1; then
    echo "rustup is required (https://rustup.rs)" >&2
    exit 1
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v c++ >/dev/null 2>&1; then
    # libfuzzer-sys compiles libFuzzer (C++).
    sudo_if_needed=""
    [ "$(id -u)" -ne 0 ] && sudo_if_needed="sudo"
    $sudo_if_needed apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -qq --no-install-recommends g++
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# One build of every target (release, debug assertions and overflow checks on, AddressSanitizer
# with leak detection: cargo-fuzz's defaults), then the binaries are run directly.
build_start=$(date +%s)
cargo +nightly fuzz build
echo "fuzz: build took $(($(date +%s) - build_start)) s"
triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
bin_dir="target/$triple/release"

run_one() {
    local target="$1"
    local log="artifacts/$target.log"
    mkdir -p "corpus-work/$target" "artifacts/$target"
    local status=0
    "$bin_dir/$target" "corpus-work/$target" "corpus/$target" \
        -max_total_time="$SECONDS_EACH" -runs="$RUNS" \
        -timeout="$TIMEOUT_S" -rss_limit_mb="$RSS_LIMIT_MB" -malloc_limit_mb="$MALLOC_LIMIT_MB" \
        -detect_leaks=1 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" >"$log" 2>&1 || status=$?
    local executions
    executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $target FAILED (exit $status) after ${executions:-?} executions; log: fuzz/$log"
        grep -E "^(==[0-9]+==|SUMMARY|thread '|panicked|.*Test unit written)" "$log" | head -n 20 || true
        return 1
    fi
    echo "fuzz: $target ok, ${executions:-?} executions"
}

failed=0
pids=()
for target in "${targets[@]}"; do
    run_one "$target" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$JOBS" ]; then
        wait "${pids[0]}" || failed=1
        pids=("${pids[@]:1}")
    fi
done
for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
done
if [ "$failed" -ne 0 ]; then
    echo "fuzz: failures above" >&2
    exit 1
fi
