#!/usr/bin/env bash
# NATS ingest benchmark with the shared workload (../shared/bench/README.md), beside HTTP.
#
#   [FSYNC=off|never|batch|always] [ROUNDS=2] [WORKERS=N] scripts/bench-nats.sh [DATA_DIR]
#
# Builds strata and loadgen in release mode, generates the workload into DATA_DIR (default
# /tmp/strata-bench, 256 nodes × 360 ticks ≈ 31 M samples) if it is missing, starts a
# nats-server with JetStream on free loopback ports, and then, ROUNDS times, replays the whole
# workload three ways, each into a fresh Strata (so that no phase finds buffers another one
# allocated):
#   http — `loadgen http --format lp --batch 16 --conns 8` to /api/write (the reference);
#   core — `loadgen nats --batch 16 --conns 2` publishes to a core subscription;
#   js   — `loadgen nats --js --batch 16 --conns 2` publishes into a stream that Strata reads
#          with a durable pull consumer (acks after the WAL).
# Every figure is measured on Strata's side: samples/s = samples stored (strata_ingest_samples_total)
# / seconds from the first byte published until the last sample was stored, and server CPU per
# sample from /proc. The core subscription gets a pending limit large enough for the whole
# workload, so that the figure is Strata's capacity, not the publisher's; its drops (which must be
# 0) are printed beside it. Prints one JSON object per phase and round, then the ratios to HTTP
# of the same round. Compare figures only within one run: the machine is shared and noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-/tmp/strata-bench}
rounds=${ROUNDS:-2}
command -v nats-server >/dev/null || { echo "nats-server not found (apt-get install nats-server)" >&2; exit 1; }
source scripts/bench-lib.sh
build_release
generate "$data" 256 360
total=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["samples"])' "$data/meta.json")

workdir=$(mktemp -d)
server=""
nats_pid=""
cleanup() {
    for pid in $server $nats_pid; do
        { kill "$pid" && wait "$pid"; } 2>/dev/null || true
    done
    rm -rf "$workdir"
    return 0
}
trap cleanup EXIT

nats_port=$(free_port)
nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$workdir/js" -l "$workdir/nats.log" &
nats_pid=$!
for _ in $(seq 100); do
    python3 scripts/nats_js.py "127.0.0.1:$nats_port" ping 2>/dev/null && break
    sleep 0.1
done
# The stream holds up to the whole workload (~2.6 GB of line protocol, on disk in $workdir).
python3 scripts/nats_js.py "127.0.0.1:$nats_port" create BENCH bench.js

start_strata() { # PHASE ROUND
    port=$(free_port)
    cat > "$workdir/config-$1-$2.json" <<JSON
{"main": {"addr": "127.0.0.1:$port"},
 "metrics": {},
 "nats": {"address": "nats://127.0.0.1:$nats_port"},
 "metric-store": {"retention-in-memory": "48h", "memory-cap": 0, "checkpoint-interval": "12h",
                  "checkpoints": {"directory": "$workdir/data-$1-$2"},
                  "wal": {"fsync": "${FSYNC:-batch}"},
                  "limits": {"nats-pending-messages": 1048576, "nats-pending-bytes": "8GiB"},${WORKERS:+
                  \"num-workers\": $WORKERS,}
                  "nats-subscriptions": [
                      {"subscribe-to": "bench.core.$2"},
                      {"subscribe-to": "bench.js",
                       "jetstream": {"stream": "BENCH", "consumer": "strata-$2"}}]}}
JSON
    target/release/strata --log-level warn serve --config "$workdir/config-$1-$2.json" \
        2> "$workdir/strata-$1-$2.log" &
    server=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
        sleep 0.1
    done
}
stop_strata() {
    kill "$server"; wait "$server" 2>/dev/null || true; server=""
    rm -rf "$workdir/data-$1-$2"
}

# Runs the load in the background and waits until Strata stored all samples, or stored no new
# one for 5 s after the load ended; prints the phase's JSON line.
measure() { # PHASE ROUND LOADGEN_ARGS...
    local phase=$1 round=$2
    shift 2
    python3 - "$phase" "$round" "$port" "$server" "$total" "$workdir/loadgen-$phase-$round.json" \
        "$loadgen" "$@" <<'PY'
import json, subprocess, sys, time, urllib.request
phase, rnd, port, pid, total, out, loadgen = sys.argv[1:8]
args, total = sys.argv[8:], int(total)
def metrics():
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = values.get(name, 0) + float(value) if name.startswith("strata_nats_slow") else float(value)
    return values
def drops(m):
    return sum(v for k, v in m.items() if k.startswith("strata_nats_slow_consumer_drops_total"))
def cpu():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100
before, cpu0, t0 = metrics(), cpu(), time.monotonic()
load = subprocess.Popen([loadgen, *args], stdout=open(out, "w"), stderr=subprocess.DEVNULL)
stored, last_change, t_done = 0, t0, None
while True:
    time.sleep(0.1)
    now = metrics().get("strata_ingest_samples_total", 0) - before.get("strata_ingest_samples_total", 0)
    t = time.monotonic()
    if now != stored:
        stored, last_change = now, t
    if stored >= total or (load.poll() is not None and t - last_change > 5):
        t_done = last_change
        break
load.wait()
after, cpu1 = metrics(), cpu()
print(json.dumps({
    "phase": phase, "round": int(rnd),
    "samples_stored": int(stored), "samples_sent": total,
    "seconds": round(t_done - t0, 2),
    "samples_per_s": round(stored / (t_done - t0)),
    "server_cpu_seconds": round(cpu1 - cpu0, 2),
    "server_cpu_ns_per_sample": round((cpu1 - cpu0) * 1e9 / stored) if stored else None,
    "slow_consumer_drops": int(drops(after) - drops(before)),
    "publisher": json.load(open(out)),
}))
PY
}

results="$workdir/results.jsonl"
for round in $(seq "$rounds"); do
    start_strata http "$round"
    measure http "$round" http --url "http://127.0.0.1:$port/api/write" --data "$data" \
        --format lp --batch 16 --conns 8 | tee -a "$results"
    stop_strata http "$round"
    start_strata core "$round"
    measure core "$round" nats --url "nats://127.0.0.1:$nats_port/bench.core.$round" \
        --data "$data" --batch 16 --conns 2 | tee -a "$results"
    stop_strata core "$round"
    start_strata js "$round"
    measure js "$round" nats --js --url "nats://127.0.0.1:$nats_port/bench.js" \
        --data "$data" --batch 16 --conns 2 | tee -a "$results"
    stop_strata js "$round"
    python3 scripts/nats_js.py "127.0.0.1:$nats_port" purge BENCH
done
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for rnd in sorted({r["round"] for r in rows}):
    by = {r["phase"]: r for r in rows if r["round"] == rnd}
    http = by["http"]["samples_per_s"]
    print(json.dumps({"round": rnd,
        "core_vs_http": round(by["core"]["samples_per_s"] / http, 2),
        "js_vs_http": round(by["js"]["samples_per_s"] / http, 2),
        "cpu_ns_per_sample": {p: by[p]["server_cpu_ns_per_sample"] for p in ("http", "core", "js")}}))
PY
grep -hE "WARN|ERROR" "$workdir"/strata-*.log | grep -v "without authentication" | head -5 || true
exit 0
