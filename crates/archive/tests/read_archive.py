#!/usr/bin/env python3
"""Independent reader for Strata archive files: prints what pyarrow sees in one file as JSON.

Run by tests/pyarrow.rs; usage: read_archive.py FILE.parquet
"""
import json
import sys

import pyarrow.parquet as pq


def main(path):
    handle = pq.ParquetFile(path)
    metadata = handle.metadata
    schema = handle.schema_arrow
    table = handle.read()
    key_columns = ["hostname", "metric", "scope", "scope_id", "timestamp"]
    keys = list(zip(*(table.column(name).to_pylist() for name in key_columns)))
    # Strings compare by UTF-8 bytes in Parquet; Python str order equals that for these names.
    sorted_ok = all(a < b for a, b in zip(keys, keys[1:]))
    chunks = []
    for group_index in range(metadata.num_row_groups):
        group = metadata.row_group(group_index)
        for column_index in range(group.num_columns):
            column = group.column(column_index)
            chunks.append(
                {
                    "column": column.path_in_schema,
                    "compression": column.compression,
                    "encodings": sorted(column.encodings),
                    "has_statistics": column.is_stats_set
                    and column.statistics.has_min_max,
                    "has_column_index": column.has_column_index,
                    "has_offset_index": column.has_offset_index,
                }
            )
    sorting = []
    for group_index in range(metadata.num_row_groups):
        columns = metadata.row_group(group_index).sorting_columns
        sorting.append(
            [[c.column_index, c.descending, c.nulls_first] for c in columns]
        )
    kv = {
        key.decode(): value.decode()
        for key, value in (metadata.metadata or {}).items()
    }
    values = table.column("value").to_pylist()
    print(
        json.dumps(
            {
                "schema": [
                    [field.name, str(field.type), field.nullable] for field in schema
                ],
                "physical": [
                    [metadata.schema.column(i).name, metadata.schema.column(i).physical_type,
                     str(metadata.schema.column(i).logical_type)]
                    for i in range(len(metadata.schema))
                ],
                "num_rows": metadata.num_rows,
                "num_row_groups": metadata.num_row_groups,
                "sorted": sorted_ok,
                "any_nan": any(v != v for v in values),
                "chunks": chunks,
                "sorting_columns": sorting,
                "key_value": kv,
                "hosts": sorted(set(table.column("hostname").to_pylist())),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
