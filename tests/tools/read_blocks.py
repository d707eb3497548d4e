#!/usr/bin/env python3
"""Reads Vigil's metric blocks the way an outside tool would, and prints them as JSON.

Blocks live at <root>/<tenant>/metrics/blocks/<ULID>/{meta.json,series.parquet,samples.parquet,index.bin},
either in a local directory or in an S3 bucket under a prefix. A block is complete iff meta.json exists.

Usage:
  read_blocks.py local ROOT_DIR
  read_blocks.py s3 --endpoint URL --bucket BUCKET [--prefix PREFIX]
  read_blocks.py create-bucket --endpoint URL --bucket BUCKET

Output of `local` and `s3` (one JSON document on stdout):
  {"blocks": [{"tenant", "ulid", "files", "meta", "series_schema", "samples_schema",
               "series": [[series_id, metric_name, labels_json], ...],
               "samples": [[series_id, timestamp_ms, "<value bits as 16 hex digits>"], ...]}],
   "incomplete": [{"tenant", "ulid", "files"}],   # block directories without meta.json
   "other": ["key", ...]}                          # objects outside the block layout
Values are printed as their IEEE-754 bit patterns so that NaN payloads (stale markers) survive.
S3 credentials come from the AWS_* environment variables.
"""

import argparse
import io
import json
import os
import struct
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def value_bits(column):
    """The float64 column's values as 64-bit patterns, read from the raw data buffer."""
    out = []
    for chunk in column.chunks:
        if chunk.type != pa.float64():
            raise SystemExit(f"value column has type {chunk.type}, expected double")
        if chunk.null_count:
            raise SystemExit("value column has nulls")
        data = chunk.buffers()[1]
        out.extend(struct.unpack_from(f"<{len(chunk)}Q", data, chunk.offset * 8))
    return ["%016x" % bits for bits in out]


def schema_of(table):
    return {field.name: str(field.type) for field in table.schema}


def column(table, name, path):
    if name not in table.column_names:
        raise SystemExit(f"{path}: no column {name!r} (has {table.column_names})")
    return table.column(name)


def read_block(tenant, ulid, files, read_bytes):
    meta = json.loads(read_bytes("meta.json"))
    series = pq.read_table(io.BytesIO(read_bytes("series.parquet")))
    samples = pq.read_table(io.BytesIO(read_bytes("samples.parquet")))
    where = f"{tenant}/{ulid}"
    series_rows = list(
        zip(
            column(series, "series_id", where + "/series.parquet").to_pylist(),
            column(series, "metric_name", where + "/series.parquet").to_pylist(),
            column(series, "labels", where + "/series.parquet").to_pylist(),
        )
    )
    sample_rows = list(
        zip(
            column(samples, "series_id", where + "/samples.parquet").to_pylist(),
            column(samples, "timestamp_ms", where + "/samples.parquet").to_pylist(),
            value_bits(column(samples, "value", where + "/samples.parquet")),
        )
    )
    return {
        "tenant": tenant,
        "ulid": ulid,
        "files": sorted(files),
        "meta": meta,
        "series_schema": schema_of(series),
        "samples_schema": schema_of(samples),
        "series": series_rows,
        "samples": sample_rows,
    }


def collect(keys, read_object):
    """keys: object keys relative to the store root. read_object(key) -> bytes."""
    dirs = {}
    other = []
    for key in keys:
        parts = key.split("/")
        if len(parts) == 5 and parts[1] == "metrics" and parts[2] == "blocks":
            dirs.setdefault((parts[0], parts[3]), []).append(parts[4])
        else:
            other.append(key)
    blocks, incomplete = [], []
    for (tenant, ulid), files in sorted(dirs.items()):
        if "meta.json" not in files:
            incomplete.append({"tenant": tenant, "ulid": ulid, "files": sorted(files)})
            continue
        prefix = f"{tenant}/metrics/blocks/{ulid}/"
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
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
