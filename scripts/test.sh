#!/usr/bin/env bash
# Runs Strata's whole test suite: formatting, lints, unit, property and black-box tests.
# Installs what it needs when it is missing, so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is required (https://rustup.rs)" >&2
    exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The poisoned-WAL test sets a file size limit on a running server with prlimit (util-linux).
if ! command -v prlimit >/dev/null 2>&1; then
    sudo_if_needed=""
    [ "$(id -u)" -ne 0 ] && sudo_if_needed="sudo"
    $sudo_if_needed apt-get update -qq && $sudo_if_needed apt-get install -y -qq util-linux
fi

# The forwarder's tests send to real receivers from Debian's packages (Prometheus 2.42,
# VictoriaMetrics 1.79); they fail, never skip, when a binary is missing.
if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/victoria-metrics ]; then
    sudo_if_needed=""
    [ "$(id -u)" -ne 0 ] && sudo_if_needed="sudo"
    $sudo_if_needed apt-get update -qq
    $sudo_if_needed apt-get install -y -qq --no-install-recommends prometheus victoria-metrics
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
