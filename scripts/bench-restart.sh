#!/usr/bin/env bash
# Restart after a crash at the worst moment (issue 10 item 6): the store holds the whole
# workload and the WAL written since the newest snapshot is at 95 % of the size that triggers
# the next one, so a restart loads the snapshots and replays the most WAL it ever can.
#
#   [NODES=205] [TICKS=1440] [EXTRA=200] [STRATA_BIN=…] scripts/bench-restart.sh [DATA_DIR]
#
# 1. Ingests NODES × TICKS of the shared workload (default ~100 M samples, generated into
#    DATA_DIR, default /tmp/strata-bench-100m, ending EXTRA minutes ago) with `fsync: batch`
#    and `checkpoint-interval: 12h`, so that only the WAL size triggers snapshots; waits 10 s
#    and notes the resident memory.
# 2. Sends the next EXTRA ticks (DATA_DIR-next) and SIGKILLs the server the moment the WAL
#    segments a restart would replay (those from the newest complete generation on) reach
#    95 % of the trigger, noting its resident memory then (the steady state it recovers to).
# 3. Starts the server again and times it until `/healthz` answers; prints one JSON object
#    with the restart time (also per 100 M samples), the samples recovered, and the peak
#    resident memory of the recovery against the steady state.
#
# Needs ~7 GB in /tmp for the default size. Compare figures within one run: the machine is
# shared and noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
data=${1:-/tmp/strata-bench-100m}
nodes=${NODES:-205}
ticks=${TICKS:-1440}
extra=${EXTRA:-200}
strata=${STRATA_BIN:-target/release/strata}
# The server's SNAPSHOT_WAL_BYTES (crates/server/src/durability.rs).
trigger_bytes=$((48 << 20))
build_release

# The workload ends EXTRA minutes ago, so that the next ticks are not in the future.
if [ ! -f "$data/meta.json" ]; then
    generate "$data" "$nodes" "$ticks" $(( $(date +%s) / 60 * 60 - (ticks + extra) * 60 ))
fi
start=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["start"])' "$data/meta.json")
generate "$data" "$nodes" "$ticks" "$start"
next_start=$((start + ticks * 60))
if [ "$next_start" -gt $(( $(date +%s) - extra * 60 + 60 )) ]; then
    echo "$data ends less than EXTRA=$extra minutes ago; remove it or wait" >&2
    exit 1
fi
if [ "$start" -lt $(( $(date +%s) - 47 * 3600 )) ]; then
    echo "$data starts more than 47 h ago (outside the retention); remove it" >&2
    exit 1
fi
[ -f "$data-next/meta.json" ] && ! grep -q "\"start\": $next_start\b" "$data-next/meta.json" \
    && rm -rf "$data-next"
generate "$data-next" "$nodes" "$extra" "$next_start"

scratch_workdir
port=$(free_port)
cat > "$workdir/config.json" <<JSON
{"main": {"addr": "127.0.0.1:$port"}, "metrics": {},
 "metric-store": {"retention-in-memory": "48h", "memory-cap": 0, "checkpoint-interval": "12h",
                  "checkpoints": {"directory": "$workdir/data"}, "wal": {"fsync": "batch"}}}
JSON
"$strata" --log-level warn serve --config "$workdir/config.json" 2> "$workdir/ingest.log" &
server=$!
pids+=("$server")
wait_for "http://127.0.0.1:$port/healthz"
"$loadgen" http --url "http://127.0.0.1:$port/api/write?cluster=hpc1" --data "$data" \
    --format lp --batch 16 --conns 8 > "$workdir/loadgen.json"
sleep 10
settled_rss=$(rss_bytes "$server")

"$loadgen" http --url "http://127.0.0.1:$port/api/write?cluster=hpc1" --data "$data-next" \
    --format lp --batch 16 --conns 8 > "$workdir/loadgen-next.json" &
feeder=$!
# Polls the directory every few milliseconds; SIGKILLs at 95 % of the trigger.
kill_at=$(python3 - "$workdir/data" "$server" "$trigger_bytes" "$feeder" <<'PY'
import os, signal, sys, time
data, server, trigger, feeder = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
snapshots, wal = os.path.join(data, "snapshots"), os.path.join(data, "wal")
def numbered(directory, suffix=""):
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(n[: len(n) - len(suffix)]) for n in names if n.endswith(suffix) and n[: len(n) - len(suffix)].isdigit())
while True:
    generations = numbered(snapshots)
    complete = [g for g in generations if os.path.exists(os.path.join(snapshots, f"{g:020}", "MANIFEST"))]
    newest = complete[-1] if complete else 0
    replay = 0
    for segment in numbered(wal, ".wal"):
        if segment >= newest:
            try:
                replay += os.path.getsize(os.path.join(wal, f"{segment:020}.wal"))
            except FileNotFoundError:
                pass
    if replay >= 0.95 * trigger:
        with open(f"/proc/{server}/status") as status:
            rss = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmRSS"))
        os.kill(server, signal.SIGKILL)
        in_progress = any(g > newest for g in generations)
        print(replay, round(replay / trigger, 3), in_progress, rss)
        break
    try:
        with open(f"/proc/{feeder}/stat") as stat:
            finished = stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        finished = True
    if finished:
        sys.exit("the extra ticks ended before the WAL reached 95 % of the trigger: raise EXTRA")
    time.sleep(0.002)
PY
)
wait "$server" 2>/dev/null || true
kill "$feeder" 2>/dev/null || true
wait "$feeder" 2>/dev/null || true
read -r replay_bytes fraction in_progress killed_rss <<< "$kill_at"

started=$(now)
"$strata" --log-level info serve --config "$workdir/config.json" 2> "$workdir/restart.log" &
server=$!
pids+=("$server")
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.01; done
ready=$(now)
hwm=$(awk '/VmHWM/ { print $2 * 1024 }' "/proc/$server/status")
rss=$(rss_bytes "$server")
recovered=$(grep -o 'recovered.*' "$workdir/restart.log")
echo "$recovered" >&2
python3 - "$recovered" <<PY
import json, re, sys
seconds = $ready - $started
# Samples loaded from the snapshots plus those the WAL replay stored.
fields = dict(re.findall(r"(\w+)=(\S+)", sys.argv[1]))
samples = int(fields["snapshot_samples"]) + int(fields["wal_samples_stored"])
print(json.dumps({
    "samples_recovered": samples, "wal_replayed_bytes": $replay_bytes,
    "wal_fraction_of_trigger": $fraction, "killed_during_snapshot": $in_progress,
    "restart_seconds_to_healthy": round(seconds, 2),
    "restart_seconds_per_100m_samples": round(seconds * 1e8 / samples, 2),
    "recovery_peak_rss_bytes": $hwm, "rss_after_recovery_bytes": $rss,
    "rss_settled_after_the_workload_bytes": $settled_rss,
    "rss_at_the_kill_bytes": $killed_rss, "peak_over_rss_at_the_kill": round($hwm / $killed_rss, 3)}))
PY
