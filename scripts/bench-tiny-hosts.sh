#!/usr/bin/env bash
# Many tiny hosts (issue 6, item 16): HOSTS hosts (default 1 000 000) with one sample each,
# written over HTTP in requests of PER_REQUEST lines (default 100 000) to a release server on a free loopback port;
# then the server's resident memory and store gauges, the final snapshot at SIGTERM (time,
# files, bytes), and the restart (time to a server that answers, recovery time, memory).
# MEMORY_CAP sets `memory-cap` (GB, default 0 = unlimited); KEEP=1 keeps the data directory.
# Prints one JSON object.
#
#   [HOSTS=N] [MEMORY_CAP=GB] scripts/bench-tiny-hosts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p strata
exec python3 - "$(pwd)/target/release/strata" <<'PY'
import json, os, signal, socket, subprocess, sys, tempfile, time, urllib.request

binary = sys.argv[1]
hosts = int(os.environ.get("HOSTS", "1000000"))
per_request = int(os.environ.get("PER_REQUEST", "100000"))
workdir = tempfile.mkdtemp(prefix="strata-tiny-hosts-")
checkpoints = os.path.join(workdir, "checkpoints")

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
base = f"http://127.0.0.1:{port}"
config = os.path.join(workdir, "config.json")
with open(config, "w") as f:
    json.dump({"main": {"addr": f"127.0.0.1:{port}"}, "metrics": {},
               "metric-store": {"retention-in-memory": "48h",
                                "memory-cap": int(os.environ.get("MEMORY_CAP", "0")),
                                "checkpoints": {"directory": checkpoints},
                                "wal": {"fsync": "batch"},
                                "limits": {"hosts-per-cluster": hosts + 1}}}, f)

def start(name):
    log = open(os.path.join(workdir, name), "w")
    proc = subprocess.Popen([binary, "serve", "--config", config], stderr=log, stdout=log)
    started = time.monotonic()
    while time.monotonic() - started < 600:
        if proc.poll() is not None:
            sys.exit(f"strata exited during startup:\n{open(log.name).read()[-3000:]}")
        try:
            if "strata listening" in open(log.name).read():
                with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
                    if r.status == 200:
                        return proc, time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    sys.exit("strata did not come up within 600 s")

def metrics():
    with urllib.request.urlopen(base + "/metrics", timeout=60) as r:
        text = r.read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("strata_") and " " in line:
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found

def pick(m):
    keys = ["strata_process_resident_memory_bytes", "strata_store_hosts", "strata_store_series",
            "strata_store_buffer_bytes", "strata_store_pool_bytes",
            "strata_store_structure_bytes", "strata_memory_cap_full",
            "strata_recovery_duration_seconds"]
    out = {k.removeprefix("strata_"): int(m[k]) if float(m.get(k, 0)).is_integer() else m[k]
           for k in keys if k in m}
    out.update({k.removeprefix("strata_"): int(v) for k, v in m.items()
                if k.startswith("strata_ingest_samples_dropped_total")})
    return out

def stop(proc):
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=3600)
    return time.monotonic() - started

def disk():
    files, size = 0, 0
    for root, _, names in os.walk(os.path.join(checkpoints, "snapshots")):
        for name in names:
            files += 1
            size += os.path.getsize(os.path.join(root, name))
    return {"snapshot_files": files, "snapshot_bytes": size}

proc, _ = start("first.log")
result = {"hosts": hosts, "port": port}
try:
    now = int(time.time())
    written = time.monotonic()
    for first in range(0, hosts, per_request):
        body = "".join(f"load,hostname=h{i:07d} value=1 {now}\n"
                       for i in range(first, min(first + per_request, hosts))).encode()
        request = urllib.request.Request(base + "/api/write?cluster=tiny", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=600) as r:
            assert r.status == 200, r.status
    result["write_seconds"] = round(time.monotonic() - written, 2)
    time.sleep(6)  # one memory-cap pass
    result["after_writes"] = pick(metrics())
finally:
    result["shutdown_seconds"] = round(stop(proc), 2)
result["disk"] = disk()
proc, ready = start("second.log")
try:
    result["restart_seconds"] = round(ready, 2)
    result["after_restart"] = pick(metrics())
finally:
    stop(proc)
result["snapshot_log"] = [line.strip()[-300:] for line in open(os.path.join(workdir, "first.log"))
                          if "snapshot" in line][-2:]
print(json.dumps(result, indent=1))
if not os.environ.get("KEEP"):
    import shutil
    shutil.rmtree(workdir)
PY
