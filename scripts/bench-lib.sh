# Shared by the bench-*.sh scripts (sourced from the repository root): release builds of strata
# and of the shared load generator, the shared workload (../shared/bench/README.md), and the
# helpers every script that starts servers needs.
shared=../shared/bench
loadgen=target/loadgen/release/loadgen

build_release() {
    cargo build --release -p strata >&2
    cargo build --release --manifest-path "$shared/loadgen/Cargo.toml" --target-dir target/loadgen >&2
}

# Generates NODES × TICKS of the workload into DIR unless it is there; the ticks end at START +
# TICKS minutes (default: now, so that the data is inside the default 48 h retention). A DIR
# that holds another shape, or (without START) ticks older than the retention, is refused
# rather than silently measured: the scripts share default directories.
generate() { # DIR NODES TICKS [START]
    if [ -f "$1/lp.bin" ]; then
        python3 - "$1/meta.json" "$2" "$3" "${4:-}" <<'PY' || exit 1
import json, sys, time
meta, nodes, ticks, start = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
problem = None
if (meta["nodes"], meta["ticks"]) != (nodes, ticks):
    problem = f"holds {meta['nodes']} nodes x {meta['ticks']} ticks, not {nodes} x {ticks}"
elif start and meta["start"] != int(start):
    problem = f"starts at {meta['start']}, not {start}"
elif not start and meta["start"] < time.time() - 47 * 3600:
    problem = "starts more than 47 h ago: part of it is outside the 48 h retention"
if problem:
    sys.exit(f"{sys.argv[1].rsplit('/', 1)[0]} {problem}; remove it or pass another directory")
PY
        return
    fi
    python3 -c 'import numpy' 2>/dev/null || pip install numpy cramjam >&2
    python3 "$shared/gen.py" --out "$1" --nodes "$2" --ticks "$3" --no-prw \
        --start "${4:-$(( $(date +%s) / 60 * 60 - $3 * 60 ))}" >&2
}

# A free loopback TCP port.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Installs the Debian packages of the COMMANDs that are missing (as scripts/test.sh does) and
# stops the system services they start: the scripts start their own instances on free ports.
install_missing() { # COMMAND...
    local missing=() sudo_if_needed=""
    for command in "$@"; do command -v "$command" >/dev/null 2>&1 || missing+=("$command"); done
    [ ${#missing[@]} -gt 0 ] || return 0
    [ "$(id -u)" -ne 0 ] && sudo_if_needed="sudo"
    $sudo_if_needed apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
    for service in "${missing[@]}"; do
        $sudo_if_needed systemctl stop "$service" >/dev/null 2>&1 || true
    done
}

# Sets workdir, a scratch directory removed at exit once every process in the pids array (the
# servers a script starts: start_vm adds its own) has ended.
scratch_workdir() {
    workdir=$(mktemp -d)
    pids=()
    trap remove_workdir EXIT
}
remove_workdir() {
    for pid in ${pids[@]+"${pids[@]}"}; do kill "$pid" 2>/dev/null || true; done
    for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$workdir"
}

wait_for() { # URL
    for _ in $(seq 300); do curl -sf "$1" >/dev/null && return; sleep 0.1; done
    echo "no answer from $1" >&2
    exit 1
}

now() { date +%s.%N; }
cpu_seconds() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; } # PID
rss_bytes() { awk '/VmRSS/ { print $2 * 1024 }' "/proc/$1/status"; } # PID

# metric PORT NAME: the sum of every series of NAME (all labels) on the server's /metrics.
metric() {
    curl -s "http://127.0.0.1:$1/metrics" |
        awk -v m="$2" '{ n = $1; sub(/\{.*/, "", n) } n == m { s += $2 } END { printf "%d\n", s }'
}

# stop PID: ends a server this script started and forgets it (a reaped pid can be reused by
# another process, which the exit's cleanup must not signal).
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local kept=() pid
    for pid in ${pids[@]+"${pids[@]}"}; do [ "$pid" = "$1" ] || kept+=("$pid"); done
    pids=(${kept[@]+"${kept[@]}"})
}

# start_vm NAME PORT: a fresh VictoriaMetrics with its data in $workdir/NAME, its log in
# $workdir/NAME.log; appends its pid to the caller's pids array and sets vm_pid.
start_vm() {
    victoria-metrics -httpListenAddr="127.0.0.1:$2" -storageDataPath="$workdir/$1" \
        -retentionPeriod=100y -search.latencyOffset=0s -loggerLevel=ERROR \
        > "$workdir/$1.log" 2>&1 &
    vm_pid=$!
    pids+=("$vm_pid")
    wait_for "http://127.0.0.1:$2/health"
}

# start_strata NAME ENDPOINT_URL...: a fresh strata (WAL fsync policy $fsync, default batch)
# with its data in $workdir/NAME, its log in $workdir/NAME.log and a remote-write endpoint per
# URL (none, no remote-write); appends its pid to pids, sets port and server.
start_strata() {
    local name=$1 endpoints="" i=0
    shift
    for url in "$@"; do
        endpoints+="${endpoints:+,}{\"name\": \"vm$i\", \"url\": \"$url\"}"
        i=$((i + 1))
    done
    port=$(free_port)
    cat > "$workdir/$name.json" <<JSON
{"main": {"addr": "127.0.0.1:$port"},
 "metrics": {},
 "metric-store": {"retention-in-memory": "48h", "memory-cap": 0, "checkpoint-interval": "12h",
                  "checkpoints": {"directory": "$workdir/$name"},
                  "wal": {"fsync": "${fsync:-batch}"},
                  "remote-write": [$endpoints]}}
JSON
    target/release/strata --log-level warn serve --config "$workdir/$name.json" \
        2> "$workdir/$name.log" &
    server=$!
    pids+=("$server")
    wait_for "http://127.0.0.1:$port/healthz"
}

# vm_rows PORT TYPE: the rows VictoriaMetrics has taken in through TYPE (influx, promremotewrite).
vm_rows() {
    curl -s "http://127.0.0.1:$1/metrics" |
        awk -v m="vm_rows_inserted_total{type=\"$2\"}" '$1 == m { print $2 }'
}
