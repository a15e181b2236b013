#!/usr/bin/env bash
# Parquet archive benchmark (issue 8 item 5) with the shared workload (../shared/bench):
#
#   scripts/bench-archive.sh [DAY_DATA] [WEEK_DATA]
#
# Builds strata and loadgen in release mode and generates, if missing,
#   DAY_DATA  (default /tmp/strata-bench-archive-day):  256 nodes × 1440 ticks (24 h, ~125 M samples),
#             starting at 00:00 UTC two days ago, so that the day is one archive period;
#   WEEK_DATA (default /tmp/strata-bench-week): 8 nodes × 10080 ticks (7 days, ~27 M samples),
#             starting at 00:00 UTC eight days ago (seven daily files).
# Then, for each: the workload into `strata serve` (retention 30 days, so nothing leaves
# memory), a clean stop (final snapshot), and `strata archive` with retention-in-memory 1h and
# cleanup.interval 24h, which archives everything: its summary gives the pass's samples/s,
# the Parquet bytes per sample and the peak resident memory above the recovered store's
# (`peak extra memory`, from the kernel's high-water mark reset at the pass's start).
# Query latency (one HTTP/1.1 keep-alive client, median and p90 of QUERY_ROUNDS, default 50,
# after 5 warm-up requests, i.e. over a warm footer cache): the same requests against the
# memory of the server that ingested the data and then against a server whose memory is empty
# after archiving, so the figures compare within the run:
#   host_metric_7d: one host, one node metric, 7 days at 60 s (WEEK_DATA, 7 files);
#   hwthreads_1d:   64 hwthreads of one host (cpu_user), one day (WEEK_DATA);
#   host_metric_1d_256: one host, one node metric, one day, from the 256-host file (DAY_DATA).
# Prints one JSON object.
set -euo pipefail
cd "$(dirname "$0")/.."
day_data=${1:-/tmp/strata-bench-archive-day}
week_data=${2:-/tmp/strata-bench-week}
rounds=${QUERY_ROUNDS:-50}
source scripts/bench-lib.sh
build_release
midnight=$(( $(date +%s) / 86400 * 86400 ))
generate "$day_data" 256 1440 $(( midnight - 2 * 86400 ))
generate "$week_data" 8 10080 $(( midnight - 8 * 86400 ))

workdir=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$workdir"
}
trap cleanup EXIT

# config NAME RETENTION: writes $workdir/NAME.json (archive mode, daily periods), sets port.
config() {
    port=$(free_port)
    cat > "$workdir/$1.json" <<JSON
{"main": {"addr": "127.0.0.1:$port"},
 "metrics": {},
 "metric-store": {"retention-in-memory": "$2", "memory-cap": 0, "checkpoint-interval": "12h",
                  "checkpoints": {"directory": "$workdir/$1-data"},
                  "wal": {"fsync": "never"},
                  "cleanup": {"mode": "archive", "directory": "$workdir/$1-archive",
                              "interval": "24h"}}}
JSON
}

serve() { # NAME
    target/release/strata --log-level warn serve --config "$workdir/$1.json" \
        2>> "$workdir/$1.log" &
    server=$!
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return
        sleep 0.1
    done
    echo "strata did not start: $(tail -5 "$workdir/$1.log")" >&2
    exit 1
}

stop() {
    kill "$server"
    wait "$server" || true
    server=""
}

# queries DATA NAME: latency of the requests (see the header) against the server on $port.
queries() {
    python3 - "$1" "$port" "$rounds" <<'PY'
import http.client, json, sys
sys.path.insert(0, "scripts")
from query_timing import time_requests
meta = json.load(open(sys.argv[1] + "/meta.json"))
port, rounds = int(sys.argv[2]), int(sys.argv[3])
host = "n0000"
start, end = meta["start"], meta["end"] + meta["interval"]
requests = {}
if meta["ticks"] >= 7 * 1440:
    requests["host_metric_7d"] = {"cluster": meta["cluster"], "from": start, "to": start + 7 * 86400,
        "queries": [{"metric": "cpu_load", "host": host}]}
    requests["hwthreads_1d"] = {"cluster": meta["cluster"], "from": start, "to": start + 86400,
        "queries": [{"metric": "cpu_user", "host": host, "type": "hwthread",
                     "type-ids": [str(i) for i in range(meta["cores"])]}]}
else:
    requests["host_metric_1d_256"] = {"cluster": meta["cluster"], "from": start, "to": end,
        "queries": [{"metric": "cpu_load", "host": host}]}
connection = http.client.HTTPConnection("127.0.0.1", port)
out = {}
for name, body in requests.items():
    figures, answer = time_requests(connection, name, "POST", "/api/query", json.dumps(body),
                                    {"Content-Type": "application/json"}, rounds)
    results = json.loads(answer)["results"][0]
    figures["points"] = sum(len(r.get("data") or []) for r in results)
    out[name] = figures
print(json.dumps(out))
PY
}

# run DATA NAME: ingest, query memory, stop, archive, query the archive. Prints one JSON line.
run() {
    local data=$1 name=$2
    config "$name" 720h
    serve "$name"
    "$loadgen" http --url "http://127.0.0.1:$port/api/write?cluster=hpc1" --data "$data" \
        --format lp --batch 16 --conns 8 > "$workdir/$name.loadgen.json" 2>> "$workdir/$name.log"
    local memory
    memory=$(queries "$data")
    stop
    # The same data directory and archive, now with a window of one hour: all of it leaves.
    sed -i 's/"retention-in-memory": "720h"/"retention-in-memory": "1h"/' "$workdir/$name.json"
    target/release/strata --log-level warn archive --config "$workdir/$name.json" \
        > "$workdir/$name.archive.txt" 2>> "$workdir/$name.log"
    serve "$name"
    local archived
    archived=$(queries "$data")
    stop
    python3 - "$workdir/$name.archive.txt" "$workdir/$name.loadgen.json" "$memory" "$archived" \
        "$workdir/$name-archive" "$name" <<'PY'
import json, os, sys
summary = {}
for line in open(sys.argv[1]):
    key, _, value = line.partition(":")
    if value.strip():
        summary[key.strip()] = value.strip()
loaded = json.load(open(sys.argv[2]))
files = [os.path.join(d, f) for d, _, fs in os.walk(sys.argv[5]) for f in fs]
samples = int(summary["samples"])
size = sum(os.path.getsize(f) for f in files)
print(json.dumps({
    "data": sys.argv[6],
    "samples_ingested": loaded.get("samples"),
    "archived_samples": samples,
    "files": len(files),
    "archive_bytes": size,
    "bytes_per_sample": round(size / samples, 3),
    "pass_seconds": float(summary["seconds"]),
    "pass_samples_per_s": int(float(summary["samples per second"])),
    "peak_extra_mib": float(summary["peak extra memory"].split()[0]),
    "query_memory": json.loads(sys.argv[3]),
    "query_archive": json.loads(sys.argv[4]),
}))
PY
}

week=$(run "$week_data" week)
day=$(run "$day_data" day)
python3 -c 'import json,sys; print(json.dumps({"week": json.loads(sys.argv[1]), "day": json.loads(sys.argv[2])}, indent=1))' "$week" "$day"
