#!/usr/bin/env bash
# Durability benchmarks (issue 3), figures measured in one run so they compare as ratios:
#
# 1. ingest throughput with the WAL under each fsync policy, as a ratio to `off` (no WAL):
#    off, batch, never with `--batch 16 --conns 8`; always with 16 concurrent clients;
# 2. WAL bytes per sample on the shared workload;
# 3. restart time to a queryable store for the workload in RESTART_DATA (default
#    /tmp/strata-bench-100m, ~100 M samples: gen.py --nodes 256 --ticks 1150), held in
#    snapshots + WAL after a SIGKILL, and the peak memory of recovery against the memory of
#    the server that ingested it.
#
#   scripts/bench-durability.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-/tmp/strata-bench}
restart_data=${RESTART_DATA:-/tmp/strata-bench-100m}
results=$(mktemp)

for round in $(seq "${ROUNDS:-2}"); do
    for policy in off batch never; do
        FSYNC=$policy scripts/bench-ingest.sh "$data" --batch 16 --conns 8 | tail -1 >> "$results"
    done
    FSYNC=always scripts/bench-ingest.sh "$data" --batch 16 --conns 16 | tail -1 | sed 's/"fsync": "always"/"fsync": "always-16"/' >> "$results"
done
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
if not rows:
    sys.exit(0)
by = {}
for row in rows:
    by.setdefault(row["fsync"], []).append(row)
off = sum(r["samples_per_s"] for r in by["off"]) / len(by["off"])
off_cpu = sum(r["server_cpu_seconds"] / r["samples_written"] for r in by["off"]) / len(by["off"])
for policy, rows in by.items():
    rate = sum(r["samples_per_s"] for r in rows) / len(rows)
    cpu = sum(r["server_cpu_seconds"] / r["samples_written"] for r in rows) / len(rows)
    print(json.dumps({"fsync": policy, "runs": [r["samples_per_s"] for r in rows],
                      "mean_samples_per_s": round(rate), "ratio_to_off": round(rate / off, 3),
                      "server_cpu_ns_per_sample": round(cpu * 1e9),
                      "cpu_ratio_off_over_policy": round(off_cpu / cpu, 3),
                      "wal_bytes_per_sample": rows[0]["wal_bytes_per_sample"],
                      "failed_requests": sum(r["failed_requests"] for r in rows)}))
PY

# Restart: ingest the big workload with the default policy, SIGKILL, restart, time it.
keep=$(mktemp -d)
if [ -f "$restart_data/lp.bin" ]; then
    # Snapshots every 15 s during the ingest, then SIGKILL: the restart loads the newest
    # snapshot and replays the WAL written after it.
    KEEP_DATA="$keep/checkpoints" CHECKPOINT_INTERVAL=15s CRASH=1 FSYNC=batch \
        scripts/bench-ingest.sh "$restart_data" --batch 16 --conns 8 | tail -1 > "$keep/ingest.json"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$keep/config.json" <<JSON
{"main": {"addr": "127.0.0.1:$port"}, "metrics": {},
 "metric-store": {"retention-in-memory": "48h", "memory-cap": 0,
                  "checkpoints": {"directory": "$keep/checkpoints"}, "wal": {"fsync": "batch"}}}
JSON
    du -sb "$keep/checkpoints/snapshots" "$keep/checkpoints/wal"
    started=$(date +%s.%N)
    target/release/strata --log-level info serve --config "$keep/config.json" 2> "$keep/restart.log" &
    server=$!
    until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.02; done
    ready=$(date +%s.%N)
    hwm=$(awk '/VmHWM/ { print $2 * 1024 }' "/proc/$server/status")
    rss=$(awk '/VmRSS/ { print $2 * 1024 }' "/proc/$server/status")
    kill $server; wait $server || true
    grep -o 'recovered.*' "$keep/restart.log"
    python3 - "$started" "$ready" "$hwm" "$rss" "$keep/ingest.json" <<'PY'
import json, sys
started, ready, hwm, rss = map(float, sys.argv[1:5])
ingest = json.load(open(sys.argv[5]))
print(json.dumps({"restart_seconds_to_queryable": round(ready - started, 2),
                  "samples": ingest["samples_in_memory"],
                  "recovery_peak_rss_bytes": int(hwm), "rss_after_recovery_bytes": int(rss),
                  "steady_state_rss_bytes": ingest["rss_bytes_after"],
                  "peak_over_steady": round(hwm / ingest["rss_bytes_after"], 3)}))
PY
fi
rm -rf "$keep" "$results"
