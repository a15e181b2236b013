#!/usr/bin/env bash
# Strata beside VictoriaMetrics on the shared workload (../shared/bench/README.md); issue 10
# item 7.
#
#   [DATA=/tmp/strata-bench-day] [NODES=64] [TICKS=1440] [QUERY_ROUNDS=200] [SETTLE=10] \
#       scripts/bench-vs-victoriametrics.sh [ROUNDS]
#
# Builds strata and loadgen in release mode, installs `victoria-metrics` from Debian when it
# is missing, generates NODES × TICKS (default 64 × 1440: one day, 31.3 M samples, ending now,
# so inside Strata's 48 h retention) into DATA unless it is there. Then ROUNDS (default 3)
# rounds; each runs a fresh Strata (WAL `fsync: batch`) and a fresh VictoriaMetrics one after
# the other, never both at once, Strata first in odd rounds and VictoriaMetrics first in even
# ones. Each server gets the whole workload from the same client, `loadgen http --format lp
# --batch 16 --conns 8` (Strata at /api/write, VictoriaMetrics at /write?precision=s, where a
# line `cpu_user,hostname=…,type-id=3 value=…` becomes `cpu_user_value{hostname=…,type-id="3"}`),
# and is measured:
#
#   samples            stored samples: Strata's strata_ingest_samples_total (with
#                      strata_ingest_samples_dropped_total 0; store_slots is
#                      strata_store_samples, the slots in memory with NaN-filled gaps),
#                      VictoriaMetrics' count of every sample in the range after
#                      /internal/force_flush (and its vm_rows_inserted_total{type="influx"});
#                      the script fails if any of them differs from the workload's sample
#                      count. The queries below check that every point comes back.
#   ingest_samples_per_s  loadgen's figure; server_samples_per_s = stored samples / loadgen's
#                      wall time.
#   cpu_ns_per_sample  the server's CPU (user + system) during the ingest per stored sample;
#                      cpu_ns_per_sample_settled adds the SETTLE seconds after it (flushes,
#                      background merges).
#   rss_bytes_per_sample_ingested / _settled  resident memory right after the ingest and
#                      SETTLE seconds later, per stored sample.
#   disk_bytes_per_sample_live  `du -sb` of the data directory after SETTLE: Strata's log and
#                      the snapshots it took on its own (every 48 MiB of log), as they are;
#                      VictoriaMetrics' parts after /internal/force_flush (its background
#                      merges go on: not its smallest size).
#   disk_bytes_per_sample_stopped  the same after a clean stop (SIGTERM): Strata's final
#                      snapshot and what is left of its log; VictoriaMetrics' parts plus the
#                      caches it saves at shutdown (cache/), so its live figure is the one to
#                      compare with.
#   query_1_series / query_64_series  client-side wall time of QUERY_ROUNDS sequential
#                      requests (after 5 warm-up ones) on one keep-alive HTTP/1.1 connection
#                      (python http.client, request sent until answer read, parsing not timed):
#                      median_ms and p90_ms. 1 series = cpu_user of hwthread 0 of n0000, the
#                      whole range at its native 60 s; 64 series = cpu_user of the 64 hwthreads
#                      of n0000, no aggregation. Strata: POST /api/query with "with-stats":
#                      false (the data only, as VictoriaMetrics returns); VictoriaMetrics:
#                      /api/v1/query_range with step 60 s and nocache=1 (its rollup result
#                      cache would answer repeated requests without reading the data). The
#                      script fails unless both return every point (TICKS and 64 × TICKS).
#
# Output (stdout): one JSON object per engine and round as it finishes ({"round", "engine",
# "position" (1 = ran first in its round), the figures above}), then one summary object:
# "strata" and "victoria-metrics" hold each figure's median over the rounds, "ratio_strata_to_vm"
# Strata's median / VictoriaMetrics' median. A ratio above 1 is better for Strata for the
# samples/s figures; below 1 is better for every other (CPU, bytes, milliseconds). The
# machine is shared and noisy: compare figures only within one run, and prefer ROUNDS ≥ 3.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
data=${DATA:-/tmp/strata-bench-day}
query_rounds=${QUERY_ROUNDS:-200}
settle=${SETTLE:-10}
fsync=batch
source scripts/bench-lib.sh
build_release
install_missing victoria-metrics
generate "$data" "${NODES:-64}" "${TICKS:-1440}"
meta() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$data/meta.json" "$1"; }
expected=$(meta samples)

scratch_workdir

figures=()
put() { figures+=("\"$1\": $2"); }
fail() { echo "$*" >&2; exit 1; }
du_bytes() { du -sb "$1" | cut -f1; }

# ingest PID URL NAME: the whole workload, loadgen's JSON into $workdir/NAME.loadgen.json;
# puts the ingest figures that need no server-specific metric, sets cpu0 and ingest_s.
ingest() {
    put loadavg_at_start "$(cut -d' ' -f1 /proc/loadavg)"
    cpu0=$(cpu_seconds "$1")
    local t0 cpu1 rss1
    t0=$(now)
    "$loadgen" http --url "$2" --data "$data" --format lp --batch 16 --conns 8 \
        > "$workdir/$3.loadgen.json" 2> "$workdir/$3.loadgen.log"
    ingest_s=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
    cpu1=$(cpu_seconds "$1")
    rss1=$(rss_bytes "$1")
    python3 - "$workdir/$3.loadgen.json" <<'PY' || fail "$3: loadgen reported failed requests"
import json, sys
sys.exit(json.load(open(sys.argv[1]))["failed"] != 0)
PY
    put ingest_samples_per_s "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["samples_per_s"])' "$workdir/$3.loadgen.json")"
    put ingest_s "$ingest_s"
    put cpu_s "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')"
    put rss_bytes_ingested "$rss1"
}

# settled PID DATA_DIR: SETTLE seconds later, the resident memory, CPU and disk.
settled() {
    sleep "$settle"
    put rss_bytes_settled "$(rss_bytes "$1")"
    put cpu_s_settled "$(awk -v a="$cpu0" -v b="$(cpu_seconds "$1")" 'BEGIN { print b - a }')"
    put disk_bytes_live "$(du_bytes "$2")"
}

# put_queries ENGINE PORT: puts the two query latencies (see the header).
put_queries() {
    local fields
    fields=$(python3 - "$1" "$2" "$data/meta.json" "$query_rounds" <<'PY'
import http.client, json, sys, urllib.parse
sys.path.insert(0, "scripts")
from query_timing import time_requests
engine, port, meta, rounds = sys.argv[1], int(sys.argv[2]), json.load(open(sys.argv[3])), int(sys.argv[4])
start, end, step, host = meta["start"], meta["end"], meta["interval"], "n0000"
ids = [str(i) for i in range(meta["cores"])]

def request(type_ids):
    if engine == "strata":
        body = json.dumps({"cluster": meta["cluster"], "from": start, "to": end + step,
                           "with-stats": False,
                           "queries": [{"metric": "cpu_user", "host": host,
                                        "type": "hwthread", "type-ids": type_ids}]})
        return "POST", "/api/query", body
    selector = f'cluster="{meta["cluster"]}",hostname="{host}",type="hwthread"'
    if len(type_ids) == 1:
        selector += f',type\\-id="{type_ids[0]}"'
    query = urllib.parse.urlencode({"query": f"cpu_user_value{{{selector}}}", "start": start,
                                    "end": end, "step": step, "nocache": 1})
    return "GET", "/api/v1/query_range?" + query, None

def points(answer):
    if engine == "strata":
        return sum(sum(v is not None for v in r.get("data") or [])
                   for r in json.loads(answer)["results"][0])
    return sum(len(r["values"]) for r in json.loads(answer)["data"]["result"])

connection = http.client.HTTPConnection("127.0.0.1", port)
out = {}
for name, type_ids in (("query_1_series", ids[:1]), ("query_64_series", ids)):
    method, path, body = request(type_ids)
    headers = {"Content-Type": "application/json"} if body else {}
    out[name], answer = time_requests(connection, f"{engine} {name}", method, path, body,
                                      headers, rounds)
    got, want = points(answer), len(type_ids) * meta["ticks"]
    if got != want:
        sys.exit(f"{engine} {name}: {got} points, not {want}")
print(json.dumps(out)[1:-1])
PY
)
    figures+=("$fields")
}

# emit ROUND ENGINE POSITION: prints the round's figures as one JSON line (also kept for the
# summary) and starts a new set.
emit() {
    local line
    line=$(python3 - "{$(IFS=,; echo "${figures[*]}")}" "$1" "$2" "$3" <<'PY'
import json, sys
f = json.loads(sys.argv[1])
d = {"round": int(sys.argv[2]), "engine": sys.argv[3], "position": int(sys.argv[4])}
d.update(f)
s = f["samples"]
d["server_samples_per_s"] = round(s / f["ingest_s"])
d["cpu_ns_per_sample"] = round(f["cpu_s"] * 1e9 / s, 1)
d["cpu_ns_per_sample_settled"] = round(f["cpu_s_settled"] * 1e9 / s, 1)
for key in ("rss_bytes", "disk_bytes"):
    for when in (("ingested", "settled") if key == "rss_bytes" else ("live", "stopped")):
        d[f"{key}_per_sample_{when}"] = round(f[f"{key}_{when}"] / s, 3)
print(json.dumps(d))
PY
)
    echo "$line"
    echo "$line" >> "$workdir/rounds.jsonl"
    figures=()
}

round_strata() { # ROUND POSITION
    local name=strata-$1
    start_strata "$name"
    ingest "$server" "http://127.0.0.1:$port/api/write?cluster=hpc1" "$name"
    local written dropped
    written=$(metric "$port" strata_ingest_samples_total)
    dropped=$(metric "$port" strata_ingest_samples_dropped_total)
    [ "$written" = "$expected" ] && [ "$dropped" = 0 ] ||
        fail "$name: $written samples ingested, $dropped dropped, not $expected and 0"
    put samples "$written"
    put store_slots "$(metric "$port" strata_store_samples)"
    settled "$server" "$workdir/$name"
    put_queries strata "$port"
    stop "$server"
    put disk_bytes_stopped "$(du_bytes "$workdir/$name")"
    emit "$1" strata "$2"
    rm -rf "${workdir:?}/$name"
}

round_vm() { # ROUND POSITION
    local name=vm-$1 port inserted stored
    port=$(free_port)
    start_vm "$name" "$port"
    ingest "$vm_pid" "http://127.0.0.1:$port/write?precision=s" "$name"
    curl -sf "http://127.0.0.1:$port/internal/force_flush" >/dev/null
    inserted=$(vm_rows "$port" influx)
    # Every sample of every series, counted at the range's end over a window that holds it.
    stored=$(curl -sf "http://127.0.0.1:$port/api/v1/query" \
        --data-urlencode "query=sum(count_over_time({__name__=~\".+_value\"}[$(( $(meta ticks) * $(meta interval) ))s]))" \
        --data-urlencode "time=$(meta end)" --data-urlencode nocache=1 |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["result"][0]["value"][1])')
    [ "$stored" = "$expected" ] && [ "$inserted" = "$expected" ] ||
        fail "$name: $stored samples stored, $inserted rows inserted, not $expected"
    put samples "$stored"
    settled "$vm_pid" "$workdir/$name"
    put_queries victoria-metrics "$port"
    stop "$vm_pid"
    put disk_bytes_stopped "$(du_bytes "$workdir/$name")"
    emit "$1" victoria-metrics "$2"
    rm -rf "${workdir:?}/$name"
}

for round in $(seq "$rounds"); do
    if [ $((round % 2)) = 1 ]; then
        round_strata "$round" 1
        round_vm "$round" 2
    else
        round_vm "$round" 1
        round_strata "$round" 2
    fi
done

python3 - "$workdir/rounds.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
keys = ["ingest_samples_per_s", "server_samples_per_s", "cpu_ns_per_sample",
        "cpu_ns_per_sample_settled", "rss_bytes_per_sample_ingested",
        "rss_bytes_per_sample_settled", "disk_bytes_per_sample_live",
        "disk_bytes_per_sample_stopped"]
def figures(row):
    f = {k: row[k] for k in keys}
    for q in ("query_1_series", "query_64_series"):
        f[q + "_median_ms"] = row[q]["median_ms"]
        f[q + "_p90_ms"] = row[q]["p90_ms"]
    return f
summary = {"rounds": len(rows) // 2}
for engine in ("strata", "victoria-metrics"):
    per_round = [figures(r) for r in rows if r["engine"] == engine]
    summary[engine] = {k: statistics.median(f[k] for f in per_round) for k in per_round[0]}
summary["ratio_strata_to_vm"] = {
    k: round(v / summary["victoria-metrics"][k], 3) if summary["victoria-metrics"][k] else None
    for k, v in summary["strata"].items()}
print(json.dumps(summary, indent=1))
PY
grep -hE "WARN|ERROR|error" "$workdir"/*.log | grep -v "without authentication" | head -5 >&2 || true
