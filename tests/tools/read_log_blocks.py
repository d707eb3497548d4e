#!/usr/bin/env python3
"""Reads Vigil's log blocks the way an outside tool would, and prints them as JSON.

Blocks live at <root>/<tenant>/logs/blocks/<ULID>/{meta.json,streams.parquet,entries.parquet,index.bin},
either in a local directory or in an S3 bucket under a prefix. A block is complete iff meta.json exists.

  streams.parquet: stream_id uint32, labels string (JSON object of the stream's labels)
  entries.parquet: stream_id uint32, timestamp_ns int64, line string,
                   structured_metadata string, nullable (JSON object)

Usage:
  read_log_blocks.py local ROOT_DIR
  read_log_blocks.py s3 --endpoint URL --bucket BUCKET [--prefix PREFIX]
  read_log_blocks.py create-bucket --endpoint URL --bucket BUCKET

Output of `local` and `s3` (one JSON document on stdout):
  {"blocks": [{"tenant", "ulid", "files", "file_bytes": {name: size}, "meta",
               "streams_schema", "entries_schema",
               "streams": [[stream_id, labels_json], ...],
               "entries": [[labels_json, "<timestamp_ns>", line, structured_metadata_json_or_null], ...]}],
   "incomplete": [{"tenant", "ulid", "files"}],   # log block directories without meta.json
   "other": ["key", ...]}                          # objects outside the log block layout (metric blocks too)
Entries are in the order of entries.parquet; labels_json and structured_metadata are the stored
JSON text unchanged. Timestamps are strings so that no JSON reader rounds them to a double.
An entry whose stream_id is not in streams.parquet, or a column with an unexpected type, is an
error (exit status 1 with a message on stderr), not something printed.
S3 credentials come from the AWS_* environment variables.
"""

import argparse
import io
import json
import os
import sys

import pyarrow.parquet as pq

STREAMS = "streams.parquet"
ENTRIES = "entries.parquet"
META = "meta.json"

# Column name -> accepted Arrow types (strings may come back as large_string or string_view).
STRING_TYPES = ("string", "large_string", "string_view")
EXPECTED = {
    STREAMS: {"stream_id": ("uint32",), "labels": STRING_TYPES},
    ENTRIES: {
        "stream_id": ("uint32",),
        "timestamp_ns": ("int64",),
        "line": STRING_TYPES,
        "structured_metadata": STRING_TYPES,
    },
}


def schema_of(table):
    return {field.name: str(field.type) for field in table.schema}


def checked_columns(table, file_name, where):
    """The expected columns of `table` as Python lists, after checking names and types."""
    out = {}
    for name, types in EXPECTED[file_name].items():
        if name not in table.column_names:
            raise SystemExit(f"{where}/{file_name}: no column {name!r} (has {table.column_names})")
        column = table.column(name)
        if str(column.type) not in types:
            raise SystemExit(f"{where}/{file_name}: column {name!r} has type {column.type}, expected {types[0]}")
        nullable_ok = name == "structured_metadata"
        if column.null_count and not nullable_ok:
            raise SystemExit(f"{where}/{file_name}: column {name!r} has {column.null_count} nulls")
        out[name] = column.to_pylist()
    return out


def read_block(tenant, ulid, files, read_bytes):
    where = f"{tenant}/logs/blocks/{ulid}"
    meta_bytes = read_bytes(META)
    meta = json.loads(meta_bytes)
    raw = {name: read_bytes(name) for name in (STREAMS, ENTRIES)}
    streams = pq.read_table(io.BytesIO(raw[STREAMS]))
    entries = pq.read_table(io.BytesIO(raw[ENTRIES]))
    s = checked_columns(streams, STREAMS, where)
    e = checked_columns(entries, ENTRIES, where)
    if "line_bytes" in entries.column_names:
        # Each line's UTF-8 length (blocks written before the column have none).
        lengths = entries.column("line_bytes")
        if str(lengths.type) != "uint32" or lengths.null_count:
            raise SystemExit(f"{where}/{ENTRIES}: column 'line_bytes' is {lengths.type} with {lengths.null_count} nulls")
        for row, (length, line) in enumerate(zip(lengths.to_pylist(), e["line"])):
            if length != len(line.encode("utf-8")):
                raise SystemExit(f"{where}/{ENTRIES}: row {row}: line_bytes {length}, line is {len(line.encode('utf-8'))} bytes")
    labels_by_id = {}
    for stream_id, labels in zip(s["stream_id"], s["labels"]):
        if stream_id in labels_by_id:
            raise SystemExit(f"{where}/{STREAMS}: stream_id {stream_id} appears twice")
        labels_by_id[stream_id] = labels
    rows = []
    for stream_id, ts, line, metadata in zip(e["stream_id"], e["timestamp_ns"], e["line"], e["structured_metadata"]):
        labels = labels_by_id.get(stream_id)
        if labels is None:
            raise SystemExit(f"{where}/{ENTRIES}: stream_id {stream_id} is not in {STREAMS}")
        rows.append([labels, str(ts), line, metadata])
    sizes = {name: len(data) for name, data in raw.items()}
    sizes[META] = len(meta_bytes)
    for name in files:
        if name not in sizes:
            sizes[name] = len(read_bytes(name))
    return {
        "tenant": tenant,
        "ulid": ulid,
        "files": sorted(files),
        "file_bytes": sizes,
        "meta": meta,
        "streams_schema": schema_of(streams),
        "entries_schema": schema_of(entries),
        "streams": [[i, labels_by_id[i]] for i in s["stream_id"]],
        "entries": rows,
    }


def collect(keys, read_object):
    """keys: object keys relative to the store root. read_object(key) -> bytes."""
    dirs = {}
    other = []
    for key in keys:
        parts = key.split("/")
        if len(parts) == 5 and parts[1] == "logs" and parts[2] == "blocks":
            dirs.setdefault((parts[0], parts[3]), []).append(parts[4])
        else:
            other.append(key)
    blocks, incomplete = [], []
    for (tenant, ulid), files in sorted(dirs.items()):
        if META not in files:
            incomplete.append({"tenant": tenant, "ulid": ulid, "files": sorted(files)})
            continue
        prefix = f"{tenant}/logs/blocks/{ulid}/"
        blocks.append(read_block(tenant, ulid, files, lambda name: read_object(prefix + name)))
    return {"blocks": blocks, "incomplete": incomplete, "other": sorted(other)}


def local(root):
    keys = []
    if os.path.isdir(root):
        for directory, _, names in os.walk(root):
            for name in names:
                full = os.path.join(directory, name)
                keys.append(os.path.relpath(full, root).replace(os.sep, "/"))

    def read_object(key):
        with open(os.path.join(root, key), "rb") as handle:
            return handle.read()

    return collect(keys, read_object)


def s3_client(endpoint):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def s3(endpoint, bucket, prefix):
    client = s3_client(endpoint)
    prefix = prefix.strip("/")
    list_prefix = prefix + "/" if prefix else ""
    keys = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=list_prefix):
        for item in page.get("Contents", []):
            keys.append(item["Key"][len(list_prefix):])

    def read_object(key):
        return client.get_object(Bucket=bucket, Key=list_prefix + key)["Body"].read()

    return collect(keys, read_object)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_local = sub.add_parser("local")
    p_local.add_argument("root")
    p_s3 = sub.add_parser("s3")
    p_s3.add_argument("--endpoint", required=True)
    p_s3.add_argument("--bucket", required=True)
    p_s3.add_argument("--prefix", default="")
    p_create = sub.add_parser("create-bucket")
    p_create.add_argument("--endpoint", required=True)
    p_create.add_argument("--bucket", required=True)
    args = parser.parse_args()

    if args.command == "local":
        result = local(args.root)
    elif args.command == "s3":
        result = s3(args.endpoint, args.bucket, args.prefix)
    else:
        s3_client(args.endpoint).create_bucket(Bucket=args.bucket)
        result = {"created": args.bucket}
    # ASCII output (non-ASCII as \u escapes): safe whatever the locale of the caller.
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
