#!/usr/bin/env python3
"""Drives Strata with the real InfluxDB client libraries (crates/strata/tests/influx.rs).

Reads one JSON job from stdin:
    {"url": "http://127.0.0.1:PORT", "writes": [WRITE, ...]}
where a WRITE is
    {"api": "v2", "bucket": "...", "precision": "s"|"ms"|"us"|"ns", "gzip": bool,
     "token": "..."|null, "lines": ["..."]}
    {"api": "v1", "db": "...", "precision": null|"n"|"u"|"ms"|"s"|"m"|"h", "gzip": bool,
     "auth": null|{"password": "..."}|{"headers": {...}}, "lines": ["..."]}
and prints one JSON result per write on stdout: {"ok": true}, or the client's exception as
{"ok": false, "exception": NAME, "status": N, "message": "...", "body": "..."}.
An entry with "op" calls another client method instead of writing:
    {"api": "v2", "op": "ping"}: ping(), version() and health().status
    {"api": "v1", "op": "ping"}: ping() (the version header)
    {"api": "v1", "op": "create_database", "db": "..."}: create_database(db)
    {"api": "v1", "op": "query", "q": "..."}: query(q)

v2 uses influxdb-client's SYNCHRONOUS write API (its default batching API reports errors only
through callbacks); v1 uses the influxdb package's write_points(..., protocol='line').
scripts/test.sh installs both from scripts/test-requirements.txt.
"""

import json
import sys

try:
    import influxdb
    import influxdb_client
    from influxdb_client.client.write_api import SYNCHRONOUS
    from influxdb_client.rest import ApiException
except ImportError as error:
    sys.exit(f"{error}: scripts/test.sh installs the InfluxDB clients from "
             "scripts/test-requirements.txt")


def text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def write_v2(url, job):
    with influxdb_client.InfluxDBClient(url=url, token=job.get("token"), org="strata",
                                        enable_gzip=job["gzip"]) as client:
        try:
            client.write_api(write_options=SYNCHRONOUS).write(
                bucket=job["bucket"], org="strata", record=job["lines"],
                write_precision=job["precision"])
        except ApiException as error:
            return {"ok": False, "exception": "ApiException", "status": error.status,
                    "message": text(error.message), "body": text(error.body)}
    return {"ok": True}


def probe_v2(url, job):
    with influxdb_client.InfluxDBClient(url=url, token=job.get("token"), org="strata") as client:
        return {"ok": client.ping(), "version": client.version(),
                "health": text(client.health().status)}


def v1_call(client, job):
    op = job.get("op", "write")
    if op == "ping":
        return {"ok": True, "version": client.ping()}
    if op == "create_database":
        return {"ok": client.create_database(job["db"]) is None}
    if op == "query":
        return {"ok": True, "result": text(client.query(job["q"]))}
    accepted = client.write_points(job["lines"], time_precision=job.get("precision"),
                                   protocol="line")
    return {"ok": accepted is True}


def call_v1(url, job):
    host, port = url.removeprefix("http://").rsplit(":", 1)
    auth = job.get("auth") or {}
    client = influxdb.InfluxDBClient(host=host, port=int(port), database=job.get("db"),
                                     password=auth.get("password", "root"),
                                     headers=auth.get("headers"), gzip=job.get("gzip", False),
                                     retries=1)
    try:
        return v1_call(client, job)
    except influxdb.exceptions.InfluxDBClientError as error:
        return {"ok": False, "exception": "InfluxDBClientError", "status": error.code,
                "message": text(error.content), "body": text(error.content)}
    except influxdb.exceptions.InfluxDBServerError as error:
        return {"ok": False, "exception": "InfluxDBServerError", "status": 500,
                "message": text(error.args[0]), "body": text(error.args[0])}
    finally:
        client.close()


def main():
    job = json.load(sys.stdin)
    results = []
    for write in job["writes"]:
        if write["api"] == "v2" and write.get("op") == "ping":
            results.append(probe_v2(job["url"], write))
        elif write["api"] == "v2":
            results.append(write_v2(job["url"], write))
        else:
            results.append(call_v1(job["url"], write))
    json.dump(results, sys.stdout)


main()
