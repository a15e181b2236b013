# Shared by the bench-*.sh scripts (sourced from the repository root): release builds of strata
# and of the shared load generator, and the shared workload (../shared/bench/README.md).
shared=../shared/bench
loadgen=target/loadgen/release/loadgen

build_release() {
    cargo build --release -p strata >&2
    cargo build --release --manifest-path "$shared/loadgen/Cargo.toml" --target-dir target/loadgen >&2
}

# Generates NODES × TICKS of the workload into DIR unless it is there; the ticks end at START +
# TICKS minutes (default: now, so that the data is inside the default 48 h retention).
generate() { # DIR NODES TICKS [START]
    [ -f "$1/lp.bin" ] && return
    python3 -c 'import numpy' 2>/dev/null || pip install numpy cramjam >&2
    python3 "$shared/gen.py" --out "$1" --nodes "$2" --ticks "$3" --no-prw \
        --start "${4:-$(( $(date +%s) / 60 * 60 - $3 * 60 ))}" >&2
}

# A free loopback TCP port.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
