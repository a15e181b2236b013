#!/usr/bin/env bash
# End-to-end remote-write forwarding benchmark against VictoriaMetrics, with the shared
# workload (../shared/bench/README.md); issue 7 item 8.
#
#   [FSYNC=batch|never|always] [MEM_NODES=295] [PERF=1] \
#       scripts/bench-forward.sh [DATA_DIR] [LOADGEN_ARGS...]
#
# Builds strata and loadgen in release mode, generates the workload into DATA_DIR (default
# /tmp/strata-bench, 256 nodes × 360 ticks ≈ 31 M samples) and a 100k-series one
# (MEM_NODES nodes × 4 ticks, 340 series a node) into DATA_DIR-100k if missing, then in ONE
# run (compare figures only within it: the machine is shared and noisy):
#
#   1. live: the workload into a strata without remote-write, then into a fresh strata with
#      one endpoint to a fresh VictoriaMetrics (`victoria-metrics`, installed from Debian when missing): loadgen's
#      samples/s and the server's CPU seconds both ways, the time from the first write until
#      the endpoint's cursor is at the log's end (every sample acknowledged) and the server's
#      CPU until then, so forwarding CPU per sample = (CPU with − CPU without) / samples.
#      The same again with the endpoint to `loadgen sink` (answers 204, discards): Strata's
#      own cost and ingest ratio, without a receiver competing for the two cores.
#   2. catch-up: the workload into a fresh strata whose endpoint is down (nothing listens),
#      then VictoriaMetrics starts: the time until all is acknowledged, the most shards
#      reached, and the CPU seconds of strata and of VictoriaMetrics meanwhile, counted from
#      the first acknowledged sample (the retry timer that notices the receiver is reported
#      apart, as catchup_first_ack_s). The same
#      again to `loadgen sink`: Strata's own drain ceiling. The rates compare with the
#      workload's real-time rate (series / interval, from meta.json): the largest live rate
#      a 3× catch-up still covers is the catch-up rate / 3.
#   3. memory: the 100k-series workload into a fresh strata with 0, 1 and 2 endpoints (both
#      to one VictoriaMetrics), RSS once everything is forwarded → bytes per series for the
#      first endpoint (with the label table all endpoints share) and for the second alone.
#
# Prints one JSON object. WAL fsync policy $FSYNC (default batch; `off` is refused with
# remote-write). Endpoints use the default queue settings. LOADGEN_ARGS default to
# `--batch 16 --conns 8` (add `--duration 20` for a shorter run). PERF=1 records `perf record`
# of the server during the catch-up (forwarding only, no ingest) and prints the top shared
# objects and symbols to stderr (it costs the server CPU: not for the figures).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-/tmp/strata-bench}
shift || true
loadgen_args=("$@")
[ ${#loadgen_args[@]} -gt 0 ] || loadgen_args=(--batch 16 --conns 8)
mem_data=$data-100k
fsync=${FSYNC:-batch}
source scripts/bench-lib.sh
build_release
install_missing victoria-metrics
generate "$data" 256 360
generate "$mem_data" "${MEM_NODES:-295}" 4

scratch_workdir

# ingest DATA NAME: the whole workload, loadgen's JSON into $workdir/NAME.loadgen.json.
ingest() {
    "$loadgen" http --url "http://127.0.0.1:$port/api/write?cluster=hpc1" --data "$1" \
        --format lp "${loadgen_args[@]}" > "$workdir/$2.loadgen.json" 2> "$workdir/$2.loadgen.log"
}

# wait_forwarded ENDPOINTS: until every endpoint's cursor is at the log's end
# (strata_remote_cursor_lag_bytes, measured from the segment files once a second, 0 for all)
# and the samples acknowledged or skipped as already acknowledged after a rewind reach
# ENDPOINTS × the samples ingested (so a gauge not yet measured does not count); at most
# 2 h. strata_remote_samples_sent_total alone is no end mark: a reshard rewinds to the cursor,
# so some samples are sent twice and others skipped by the hint. Tracks the most shards seen
# in max_shards.
wait_forwarded() {
    local want sent lag shards
    want=$(( $1 * $(metric "$port" strata_ingest_samples_total) ))
    max_shards=0
    for _ in $(seq 14400); do
        sent=$(( $(metric "$port" strata_remote_samples_sent_total) +
                 $(metric "$port" strata_remote_replay_skipped_samples_total) ))
        lag=$(metric "$port" strata_remote_cursor_lag_bytes)
        shards=$(metric "$port" strata_remote_shards)
        [ "$shards" -gt "$max_shards" ] && max_shards=$shards
        [ "$sent" -ge "$want" ] && [ "$lag" = 0 ] && return
        # Not faster: every scrape walks the store (strata_store_series), which costs CPU.
        sleep 0.5
    done
    echo "forwarding did not finish: $sent of $want, lag $lag bytes" >&2
    exit 1
}

workload_rate=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["series"] / m["interval"])' "$data/meta.json")
# first_ack: until the endpoint's first acknowledged sample. A receiver that comes back is
# noticed at the next retry (backoff up to max-backoff, 5 s); the catch-up time starts here,
# so it measures draining, not the retry timer.
first_ack() {
    for _ in $(seq 600); do
        [ "$(metric "$port" strata_remote_samples_sent_total)" -gt 0 ] && return
        sleep 0.05
    done
    echo "no sample acknowledged within 30 s" >&2
    exit 1
}

figures=("\"workload_live_rate_samples_per_s\": $workload_rate" "\"fsync\": \"$fsync\"" "\"loadavg_at_start\": $(cut -d' ' -f1 /proc/loadavg)")
put() { figures+=("\"$1\": $2"); }
loadgen_rate() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["samples_per_s"])' "$1"; }

# 1a. Ingest without remote-write.
start_strata plain
cpu0=$(cpu_seconds "$server")
ingest "$data" plain
cpu_plain=$(awk -v a="$cpu0" -v b="$(cpu_seconds "$server")" 'BEGIN { print b - a }')
samples=$(metric "$port" strata_ingest_samples_total)
put samples "$samples"
put ingest_without_samples_per_s "$(loadgen_rate "$workdir/plain.loadgen.json")"
put server_cpu_without_s "$cpu_plain"
stop "$server"
rm -rf "${workdir:?}/plain"

# 1b. Ingest with one endpoint to VictoriaMetrics; 1c. to the discarding sink.
# start_sink PORT: sets sink_pid.
start_sink() {
    "$loadgen" sink --port "$1" 2> "$workdir/sink.log" &
    sink_pid=$!
    pids+=("$sink_pid")
    for _ in $(seq 100); do
        python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])))' \
            "$1" 2>/dev/null && return
        sleep 0.1
    done
    echo "the sink did not start" >&2
    exit 1
}
sink_port=$(free_port)
start_sink "$sink_port"
start_strata sink "http://127.0.0.1:$sink_port/api/v1/write"
cpu0=$(cpu_seconds "$server")
ingest "$data" sink
cpu_ingested=$(cpu_seconds "$server")
wait_forwarded 1
put sink_samples "$(metric "$port" strata_ingest_samples_total)"
put ingest_with_sink_samples_per_s "$(loadgen_rate "$workdir/sink.loadgen.json")"
put server_cpu_with_sink_during_ingest_s "$(awk -v a="$cpu0" -v b="$cpu_ingested" 'BEGIN { print b - a }')"
put server_cpu_with_sink_until_forwarded_s "$(awk -v a="$cpu0" -v b="$(cpu_seconds "$server")" 'BEGIN { print b - a }')"
stop "$server"
stop "$sink_pid"
rm -rf "${workdir:?}/sink"

vm_port=$(free_port)
start_vm vm-live "$vm_port"
start_strata live "http://127.0.0.1:$vm_port/api/v1/write"
cpu0=$(cpu_seconds "$server")
vm_cpu0=$(cpu_seconds "$vm_pid")
t0=$(now)
ingest "$data" live
t_ingested=$(now)
cpu_ingested=$(cpu_seconds "$server")
wait_forwarded 1
t_done=$(now)
cpu_done=$(cpu_seconds "$server")
live_rows=$(vm_rows "$vm_port" promremotewrite)
put live_samples "$(metric "$port" strata_ingest_samples_total)"
put ingest_with_samples_per_s "$(loadgen_rate "$workdir/live.loadgen.json")"
put server_cpu_with_during_ingest_s "$(awk -v a="$cpu0" -v b="$cpu_ingested" 'BEGIN { print b - a }')"
put server_cpu_with_until_forwarded_s "$(awk -v a="$cpu0" -v b="$cpu_done" 'BEGIN { print b - a }')"
put vm_cpu_live_s "$(awk -v a="$vm_cpu0" -v b="$(cpu_seconds "$vm_pid")" 'BEGIN { print b - a }')"
put live_ingest_s "$(awk -v a="$t0" -v b="$t_ingested" 'BEGIN { printf "%.2f", b - a }')"
put live_forwarded_s "$(awk -v a="$t0" -v b="$t_done" 'BEGIN { printf "%.2f", b - a }')"
put live_sent_total "$(metric "$port" strata_remote_samples_sent_total)"
put live_replay_skipped "$(metric "$port" strata_remote_replay_skipped_samples_total)"
put live_pending_gauge_at_end "$(metric "$port" strata_remote_samples_pending)"
put live_vm_rows "$live_rows"
put live_max_shards "$max_shards"
stop "$server"
stop "$vm_pid"
rm -rf "${workdir:?}/live" "${workdir:?}/vm-live"

# 2. Catch-up: the whole workload while the endpoint is down, then VictoriaMetrics starts.
vm_port=$(free_port)
start_strata catchup "http://127.0.0.1:$vm_port/api/v1/write"
ingest "$data" catchup
sleep 2 # the lag is measured once a second
put backlog_samples "$(metric "$port" strata_ingest_samples_total)"
put backlog_sent_before_start "$(metric "$port" strata_remote_samples_sent_total)"
put backlog_cursor_lag_bytes "$(metric "$port" strata_remote_cursor_lag_bytes)"
t_start=$(now)
start_vm vm-catchup "$vm_port"
first_ack
put catchup_first_ack_s "$(awk -v a="$t_start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')"
cpu0=$(cpu_seconds "$server")
t0=$(now)
vm_cpu0=$(cpu_seconds "$vm_pid")
if [ "${PERF:-0}" = 1 ]; then
    perf record -F 999 -o "$workdir/perf.data" -p "$server" 2> "$workdir/perf.log" &
    perf_pid=$!
fi
wait_forwarded 1
t_done=$(now)
if [ "${PERF:-0}" = 1 ]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    perf report --sort dso --stdio -i "$workdir/perf.data" 2>/dev/null | grep -E '^ +[0-9]' | head -8 >&2
    perf report -i "$workdir/perf.data" --no-children --percent-limit 1 --stdio \
        --sort comm,dso,symbol 2>/dev/null | grep -v '^$' | grep -E '^ +[0-9]' | head -40 >&2
fi
put catchup_s "$(awk -v a="$t0" -v b="$t_done" 'BEGIN { printf "%.2f", b - a }')"
put catchup_server_cpu_s "$(awk -v a="$cpu0" -v b="$(cpu_seconds "$server")" 'BEGIN { print b - a }')"
put catchup_vm_cpu_s "$(awk -v a="$vm_cpu0" -v b="$(cpu_seconds "$vm_pid")" 'BEGIN { print b - a }')"
put catchup_max_shards "$max_shards"
put catchup_shards_desired_at_end "$(metric "$port" strata_remote_shards_desired)"
put catchup_vm_rows "$(vm_rows "$vm_port" promremotewrite)"
put catchup_retried "$(metric "$port" strata_remote_samples_retried_total)"
put catchup_sent_total "$(metric "$port" strata_remote_samples_sent_total)"
put catchup_replay_skipped "$(metric "$port" strata_remote_replay_skipped_samples_total)"
stop "$server"
rm -rf "${workdir:?}/catchup"

# 2b. Catch-up to the sink: Strata's own ceiling.
sink_port=$(free_port)
start_strata catchup-sink "http://127.0.0.1:$sink_port/api/v1/write"
ingest "$data" catchup-sink
sleep 2
put backlog_sink_samples "$(metric "$port" strata_ingest_samples_total)"
start_sink "$sink_port"
first_ack
cpu0=$(cpu_seconds "$server")
t0=$(now)
wait_forwarded 1
put catchup_sink_s "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')"
put catchup_sink_server_cpu_s "$(awk -v a="$cpu0" -v b="$(cpu_seconds "$server")" 'BEGIN { print b - a }')"
put catchup_sink_max_shards "$max_shards"
stop "$server"
stop "$sink_pid"
rm -rf "${workdir:?}/catchup-sink"

# 3. Memory with 100k series: 0, 1 and 2 endpoints (vm-catchup still runs: a fresh series set
# for it is not needed, only acknowledgements).
for n in 0 1 2; do
    urls=()
    for _ in $(seq "$n"); do urls+=("http://127.0.0.1:$vm_port/api/v1/write"); done
    start_strata "mem$n" ${urls[@]+"${urls[@]}"}
    ingest "$mem_data" "mem$n"
    [ "$n" = 0 ] || wait_forwarded "$n"
    sleep 2
    put "mem_series" "$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "strata_store_series" { print $2 }' | head -1)"
    put "rss_bytes_${n}_endpoints" "$(rss_bytes "$server")"
    stop "$server"
    rm -rf "${workdir:?}/mem$n"
done
stop "$vm_pid"
put loadavg_at_end "$(cut -d' ' -f1 /proc/loadavg)"

python3 - "{$(IFS=,; echo "${figures[*]}")}" "$data/meta.json" <<'PY'
import json, sys
f = json.loads(sys.argv[1])
d = {}
d.update(f)
d["ingest_ratio_with_without"] = round(f["ingest_with_samples_per_s"] / f["ingest_without_samples_per_s"], 3)
# Per sample of each phase, so a run cut short by loadgen's --duration still compares.
without_us = f["server_cpu_without_s"] * 1e6 / f["samples"]
d["forward_cpu_us_per_sample"] = round(
    f["server_cpu_with_until_forwarded_s"] * 1e6 / f["live_samples"] - without_us, 3)
d["forward_cpu_us_per_sample_during_ingest"] = round(
    f["server_cpu_with_during_ingest_s"] * 1e6 / f["live_samples"] - without_us, 3)
d["live_forward_samples_per_s"] = round(f["live_samples"] / f["live_forwarded_s"])
d["catchup_samples_per_s"] = round(f["backlog_samples"] / f["catchup_s"])
d["ingest_ratio_with_sink_without"] = round(f["ingest_with_sink_samples_per_s"] / f["ingest_without_samples_per_s"], 3)
d["forward_cpu_us_per_sample_sink"] = round(
    f["server_cpu_with_sink_until_forwarded_s"] * 1e6 / f["sink_samples"] - without_us, 3)
d["catchup_sink_samples_per_s"] = round(f["backlog_sink_samples"] / f["catchup_sink_s"])
d["catchup_sink_server_cpu_us_per_sample"] = round(f["catchup_sink_server_cpu_s"] * 1e6 / f["backlog_sink_samples"], 3)
d["catchup_ratio_to_live_forwarding"] = round(d["catchup_samples_per_s"] / d["live_forward_samples_per_s"], 2)
d["catchup_ratio_to_workload_live_rate"] = round(d["catchup_samples_per_s"] / f["workload_live_rate_samples_per_s"])
# The largest real-time rate (and nodes of this workload) whose 3x still fits the catch-up.
d["live_rate_covered_3x_samples_per_s"] = round(d["catchup_samples_per_s"] / 3)
d["live_rate_covered_3x_nodes"] = round(d["catchup_samples_per_s"] / 3 / f["workload_live_rate_samples_per_s"] * int(json.load(open(sys.argv[2]))["nodes"]))
d["catchup_vm_cores"] = round(f["catchup_vm_cpu_s"] / f["catchup_s"], 2)
d["live_vm_duplicates"] = f["live_vm_rows"] - f["live_samples"]
d["catchup_vm_duplicates"] = f["catchup_vm_rows"] - f["backlog_samples"]
d["catchup_server_cores"] = round(f["catchup_server_cpu_s"] / f["catchup_s"], 2)
d["catchup_server_cpu_us_per_sample"] = round(f["catchup_server_cpu_s"] * 1e6 / f["backlog_samples"], 3)
d["catchup_vm_cpu_us_per_sample"] = round(f["catchup_vm_cpu_s"] * 1e6 / f["backlog_samples"], 3)
s = f["mem_series"]
if s:
    # The first endpoint brings the label table every endpoint shares; the second only its own.
    d["bytes_per_series_first_endpoint_with_shared_table"] = round(
        (f["rss_bytes_1_endpoints"] - f["rss_bytes_0_endpoints"]) / s)
    d["bytes_per_series_per_endpoint"] = round(
        (f["rss_bytes_2_endpoints"] - f["rss_bytes_1_endpoints"]) / s)
print(json.dumps(d, indent=1))
PY
grep -hE "WARN|ERROR" "$workdir"/*.log | grep -v "without authentication" | head -5 >&2 || true
