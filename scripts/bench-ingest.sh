#!/usr/bin/env bash
# End-to-end ingest benchmark with the shared workload (../shared/bench/README.md).
#
#   [FSYNC=off|never|batch|always] [NODES=256] [TICKS=360] \
#       scripts/bench-ingest.sh [DATA_DIR] [LOADGEN_ARGS...]
#
# Builds strata and loadgen in release mode, generates the workload into DATA_DIR (default
# /tmp/strata-bench, NODES × TICKS, default 256 nodes × 360 ticks ≈ 31 M samples, ending now)
# if it is missing, starts strata on a free loopback port (WAL fsync policy $FSYNC, default
# off), replays the whole workload with `loadgen http --format lp --batch 16 --conns 8`
# (override with LOADGEN_ARGS), then prints one JSON object: loadgen's samples/s, the server's
# CPU seconds, its resident memory per sample slot in memory (NaN-filled gaps included) and per
# sample written, and WAL bytes per sample. Issue 10's shapes: `NODES=64 TICKS=1440
# FSYNC=batch scripts/bench-ingest.sh /tmp/strata-bench-day` (one day, 31.3 M samples) and
# NODES=205 TICKS=1440 (~100 M samples) in a directory of its own. For restart measurements:
# KEEP_DATA=DIR keeps the server's data directory there, CHECKPOINT_INTERVAL sets
# `checkpoint-interval`, and CRASH=1 ends the server with SIGKILL instead of SIGTERM (no final
# snapshot). SMAPS=FILE saves the server's /proc/PID/smaps once settled. STRATA_BIN runs another build (default target/release/strata; e.g. main's, to
# compare in one sitting) and STRATA_WRAPPER runs it under a tool, e.g.
# STRATA_WRAPPER="heaptrack -o /tmp/strata-heap" (figures are then the wrapped process's; the
# heap profile is written when the server ends). PERF_OUT=FILE records
# `perf record ${PERF_ARGS:--F 999}` of the server during the replay into FILE. Compare figures
# only within one run: the machine is shared and noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-/tmp/strata-bench}
shift || true
loadgen_args=("$@")
[ ${#loadgen_args[@]} -gt 0 ] || loadgen_args=(--batch 16 --conns 8)
source scripts/bench-lib.sh
build_release
generate "$data" "${NODES:-256}" "${TICKS:-360}"

port=$(free_port)
workdir=$(mktemp -d)
config="$workdir/config.json"
cat > "$config" <<JSON
{"main": {"addr": "127.0.0.1:$port"},
 "metrics": {},
 "metric-store": {"retention-in-memory": "48h", "memory-cap": 0,
                  "checkpoint-interval": "${CHECKPOINT_INTERVAL:-12h}",
                  "checkpoints": {"directory": "${KEEP_DATA:-$workdir/checkpoints}"},
                  "wal": {"fsync": "${FSYNC:-off}"}}}
JSON
# The binary's pages in the RSS depend on how much of it is cached (each fault maps the cached
# pages around it): read it whole first, so that builds compare alike (~2 MB apart otherwise).
cat "${STRATA_BIN:-target/release/strata}" > /dev/null
# shellcheck disable=SC2086 # STRATA_WRAPPER is a command line
${STRATA_WRAPPER:-} "${STRATA_BIN:-target/release/strata}" --log-level warn serve --config "$config" \
    2> "$workdir/strata.log" >&2 &
launched=$!
server=$launched
signal=TERM
[ "${CRASH:-0}" = 1 ] && signal=KILL
trap 'kill -$signal $server 2>/dev/null; wait $launched 2>/dev/null || true; rm -rf "$workdir"' EXIT
wait_for "http://127.0.0.1:$port/healthz"
# Under a wrapper that does not exec it, the server is its child (heaptrack waits for it).
[ -z "${STRATA_WRAPPER:-}" ] || server=$(pgrep -n -P "$launched" || echo "$launched")

rss_start=$(rss_bytes $server)
cpu_start=$(cpu_seconds $server)
perf_pid=
if [ -n "${PERF_OUT:-}" ]; then
    # shellcheck disable=SC2086 # PERF_ARGS is a list of options
    perf record -o "$PERF_OUT" -p "$server" ${PERF_ARGS:--F 999} 2>/dev/null &
    perf_pid=$!
fi
"$loadgen" http --url "http://127.0.0.1:$port/api/write?cluster=hpc1" --data "$data" \
    --format lp "${loadgen_args[@]}" > "$workdir/loadgen.json" 2> "$workdir/loadgen.log"
cpu_end=$(cpu_seconds $server)
[ -z "$perf_pid" ] || { kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" || true; }
rss_end=$(rss_bytes $server)
# Right after ingest the RSS can hold a snapshot being written (one is due every few hundred
# MB of WAL) and pages the allocator has not returned yet; the settled figure is what stays.
sleep "${SETTLE:-10}"
rss_settled=$(rss_bytes $server)
# Of the settled RSS: anonymous pages (heap, stacks) and file pages (the binary's text).
rss_anon=$(awk '/RssAnon/ { print $2 * 1024 }' "/proc/$server/status")
rss_file=$(awk '/RssFile/ { print $2 * 1024 }' "/proc/$server/status")
# SMAPS=FILE keeps the settled process's memory map, mapping by mapping, for a closer look.
[ -z "${SMAPS:-}" ] || cp "/proc/$server/smaps" "$SMAPS"
samples=$(metric "$port" strata_store_samples)
written=$(metric "$port" strata_ingest_samples_total)
buffer_bytes=$(metric "$port" strata_store_buffer_bytes)
wal_bytes=$(metric "$port" strata_wal_bytes)
structure_bytes=$(metric "$port" strata_store_structure_bytes)
pool_bytes=$(metric "$port" strata_store_pool_bytes)
encoded_bytes=$(metric "$port" strata_store_encoded_bytes)
tail_bytes=$(metric "$port" strata_store_tail_bytes)
# jemalloc's view at the same moment (0 from builds without these gauges).
allocator=()
for name in allocated active resident metadata; do
    allocator+=("$(metric "$port" "strata_allocator_${name}_bytes")")
done
python3 - "$samples" "$written" "$buffer_bytes" "$rss_start" "$rss_end" "$cpu_start" "$cpu_end" "${wal_bytes:-0}" "$structure_bytes" "$pool_bytes" "$rss_settled" "$encoded_bytes" "$tail_bytes" "$workdir/loadgen.json" "${FSYNC:-off}" "$rss_anon" "$rss_file" "${allocator[@]}" <<'PY'
import json, sys
samples, written, buffer_bytes, rss_start, rss_end, cpu_start, cpu_end, wal_bytes, structure_bytes, pool_bytes, rss_settled, encoded_bytes, tail_bytes = map(float, sys.argv[1:14])
loadgen = json.load(open(sys.argv[14]))
rss_anon, rss_file, allocated, active, resident, metadata = map(float, sys.argv[16:22])
per_written = lambda bytes: round(bytes / written, 3) if written else None
print(json.dumps({
    "fsync": sys.argv[15],
    "samples_per_s": loadgen["samples_per_s"],
    "failed_requests": loadgen["failed"],
    "client_cores": loadgen["client_cores"],
    "latency_ms": loadgen["lat_ms"],
    "server_cpu_seconds": round(cpu_end - cpu_start, 2),
    "server_cpu_ns_per_written_sample": round((cpu_end - cpu_start) * 1e9 / written, 1) if written else None,
    "samples_written": int(written),
    "samples_in_memory": int(samples),
    "buffer_bytes": int(buffer_bytes),
    "buffer_bytes_per_sample": round(buffer_bytes / samples, 3) if samples else None,
    "rss_bytes_before": int(rss_start),
    "rss_bytes_after": int(rss_end),
    "rss_bytes_per_sample": round(rss_end / samples, 3) if samples else None,
    # Per sample written: samples_in_memory counts slots, NaN-filled gaps included.
    "rss_bytes_per_written_sample": round(rss_end / written, 3) if written else None,
    # SETTLE (default 10) seconds later.
    "rss_settled_bytes_per_written_sample": round(rss_settled / written, 3) if written else None,
    # Where the RSS goes, per sample written: the store's data, its tree (an estimate of its
    # allocations), the pool of free tails; the rest is the allocator and the process.
    "buffer_bytes_per_written_sample": round(buffer_bytes / written, 3) if written else None,
    "structure_bytes_per_written_sample": round(structure_bytes / written, 3) if written else None,
    # Of the buffers: sealed blocks and raw tail slots (the rest is the tails' room); 0 from
    # builds without these gauges.
    "encoded_bytes_per_written_sample": round(encoded_bytes / written, 3) if written else None,
    "tail_bytes_per_written_sample": round(tail_bytes / written, 3) if written else None,
    "pool_bytes": int(pool_bytes),
    # The settled RSS's anonymous and file-backed (binary text) pages, and jemalloc's own
    # figures at the same moment: allocated (what the program holds), active (plus size-class
    # rounding and free slots in used pages), resident (plus dirty free pages, metadata).
    "rss_anon_bytes": int(rss_anon),
    "rss_file_bytes": int(rss_file),
    "allocator_allocated_per_written_sample": per_written(allocated),
    "allocator_active_per_written_sample": per_written(active),
    "allocator_resident_per_written_sample": per_written(resident),
    "allocator_metadata_bytes": int(metadata),
    "wal_bytes": int(wal_bytes),
    "wal_bytes_per_sample": round(wal_bytes / written, 3) if written else None,
}))
PY
grep -E "WARN|ERROR" "$workdir/strata.log" | grep -v "not implemented yet\|without authentication" | head -5 || true
exit 0
