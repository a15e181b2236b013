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
# cargo-deny builds from source (crates.io is the one source reachable here). Its release
# profile (fat LTO, one codegen unit) took 27.6 min on a 2-core machine shared with two other
# builds; a checker needs no such speed: without LTO at opt-level 1 it took 3 min 31 s of CPU
# (8.6 min on the same shared machine). CI should still cache ~/.cargo/bin.
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version >/dev/null 2>&1; then
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
        cargo install --locked "cargo-deny@$CARGO_DENY_VERSION"
fi
# Debian packages the tests need: prlimit (util-linux) for the poisoned-WAL test, and the real
# remote-write receivers the forwarding tests send to (Prometheus 2.42, VictoriaMetrics 1.79),
# and nats-server (2.9, with JetStream) for NATS ingest.
missing=()
command -v prlimit >/dev/null 2>&1 || missing+=(util-linux)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
    sudo_if_needed=""
    [ "$(id -u)" -ne 0 ] && sudo_if_needed="sudo"
    $sudo_if_needed apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # The packages start system services; the tests start their own instances on free ports.
    for service in prometheus victoria-metrics nats-server; do
        $sudo_if_needed systemctl stop "$service" >/dev/null 2>&1 || true
    done
fi

# PyPI packages the tests need: pyarrow, the independent reader of Parquet archive files,
# moto's S3 server, the object store the archive is tested against, and the real InfluxDB
# clients (influxdb-client for the v2 API, influxdb for v1) the InfluxDB endpoints are tested with,
# and what checks the server against docs/openapi.yaml (PyYAML, jsonschema, openapi-spec-validator).
if ! python3 -c 'import pyarrow' 2>/dev/null || ! python3 -c 'import moto.server' 2>/dev/null \
    || ! python3 -c 'import influxdb_client, influxdb' 2>/dev/null \
    || ! python3 -c 'import yaml, jsonschema, openapi_spec_validator' 2>/dev/null; then
    # Debian's system Python refuses pip installs (PEP 668) unless told otherwise.
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check \
        -r scripts/test-requirements.txt
fi

cargo fmt --all -- --check
# Supply chain (deny.toml): licenses, duplicate versions and sources always; RustSec advisories
# when their database (a git repository on GitHub) can be fetched. cargo audit reads the same
# database, so it would add nothing.
if cargo deny fetch db >/dev/null 2>&1; then
    cargo deny --locked --offline check
else
    echo "cargo deny: advisories SKIPPED (the RustSec advisory database could not be fetched); licenses, bans and sources checked" >&2
    cargo deny --locked --offline check licenses bans sources
fi
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
# Every decoder under libFuzzer for 20 s each (fuzz/, scripts/fuzz.sh; nightly and cargo-fuzz
# are installed when missing). The first build of the fuzz targets is most of the cost.
scripts/fuzz.sh 20
