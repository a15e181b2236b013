#!/usr/bin/env python3
"""Writes tests/fixtures/ccms/fritz/1700006400.parquet the way cc-metric-store v1.5.4 does
(COMPAT.md §6.7): the 8 required columns, zstd, no statistics, no page index, no Arrow schema,
one row group per host, rows not globally sorted (per host: host-level metrics, then children by
name, so hwthread10 comes before hwthread2; hosts in directory order), named after the cleanup
cutoff with data on both sides of it.

The values follow `value()` below; tests/ccms_compat.rs recomputes them. Regenerate with
    python3 crates/archive/tests/make_ccms_fixture.py
"""
import os

import pyarrow as pa
import pyarrow.parquet as pq

CUTOFF = 1_700_006_400
FIRST = CUTOFF - 7200  # data starts 2 h before the cutoff...
SAMPLES = 180  # ...and runs 1 h past it, at 60 s
FREQUENCY = 60
HOSTS = ["f0102", "f0010", "f0101"]  # directory order, not sorted
METRICS = ["mem_used", "cpu_load"]  # map order, not sorted
CHILDREN = ["hwthread0", "hwthread10", "hwthread2", "accelerator00000000:3b:00.0"]


def scope_of(level):
    for prefix, scope in [("socket", "socket"), ("memoryDomain", "memoryDomain"),
                          ("core", "core"), ("hwthread", "hwthread"), ("cpu", "hwthread"),
                          ("accelerator", "accelerator")]:
        rest = level[len(prefix):]
        if level.startswith(prefix) and rest and rest[0].isdigit():
            return scope, rest
    return level, ""


def value(host, metric, child, i):
    # Exactly representable in float32.
    return host * 1000 + metric * 100 + child * 10 + (i % 7) + 0.5


SCHEMA = pa.schema(
    [pa.field(name, pa.string(), nullable=False)
     for name in ["cluster", "hostname", "metric", "scope", "scope_id"]]
    + [pa.field("timestamp", pa.int64(), nullable=False),
       pa.field("frequency", pa.int64(), nullable=False),
       pa.field("value", pa.float32(), nullable=False)]
)


def host_table(h, host):
    rows = {name: [] for name in SCHEMA.names}
    # child -1 is the host level (scope node)
    for c, child in [(-1, None)] + list(enumerate(CHILDREN)):
        scope, scope_id = ("node", "") if child is None else scope_of(child)
        for m, metric in enumerate(METRICS):
            if child is not None and metric == "mem_used":
                continue  # mem_used is a node metric only
            for i in range(SAMPLES):
                rows["cluster"].append("fritz")
                rows["hostname"].append(host)
                rows["metric"].append(metric)
                rows["scope"].append(scope)
                rows["scope_id"].append(scope_id)
                rows["timestamp"].append(FIRST + i * FREQUENCY)
                rows["frequency"].append(FREQUENCY)
                rows["value"].append(value(h, m, c + 1, i))
    return pa.table(rows, schema=SCHEMA)


def main():
    directory = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "ccms", "fritz")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{CUTOFF}.parquet")
    with pq.ParquetWriter(path, SCHEMA, compression="zstd", write_statistics=False,
                          store_schema=False, write_page_index=False) as writer:
        for h, host in enumerate(HOSTS):
            writer.write_table(host_table(h, host), row_group_size=1 << 20)


if __name__ == "__main__":
    main()
