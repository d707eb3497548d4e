#!/usr/bin/env python3
"""Checks that Vigil's log blocks hold exactly the benchmark corpus, byte for byte.

Usage:
  verify_log_blocks.py --corpus DIR --root STORE_ROOT [--tenant TENANT] [--limit-lines N]
                       [--ignore-label NAME]... [--max-diffs 10]

DIR is what make_log_corpus.py wrote (corpus.tsv: `ts_ns \\t stream_idx \\t line` per
`\\n`-terminated row; streams.json: the label object of each stream index). STORE_ROOT is the
local object store; the blocks are <STORE_ROOT>/<TENANT>/logs/blocks/<ULID>/ with meta.json (a
block is complete iff it exists), streams.parquet (stream_id uint32, labels: JSON object) and
entries.parquet (stream_id uint32, timestamp_ns int64, line string, structured_metadata string
nullable).

The multiset of (stream labels, timestamp_ns, line) over all complete blocks must equal the one of
the corpus (the first N rows with --limit-lines): nothing missing, nothing extra, no duplicates, no
line changed by a single byte. Labels are compared as label sets (JSON key order and escaping do
not matter); --ignore-label drops a label the server adds (e.g. service_name) from the block side
first. Also checked: no incomplete block directories, no structured metadata (the corpus has none),
and each meta.json's `logs.num_entries` / `logs.line_bytes` (when present) against its
entries.parquet.

Prints counts and the first differences, then one JSON line (the last line of stdout):
  {"ok", "corpus_lines", "corpus_streams", "blocks", "incomplete", "block_entries", "block_streams",
   "missing", "extra", "with_metadata", "meta_mismatches", "block_bytes", "block_files": {name: bytes}}
Exit status 0 when everything matches, 1 otherwise.
"""

import argparse
import json
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def canonical(labels, ignore=()):
    """A label object as a canonical JSON text: keys sorted, compact, unicode as is."""
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ValueError(f"labels are not a JSON object of strings: {labels!r}")
    kept = {k: v for k, v in labels.items() if k not in ignore}
    return json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Universe:
    """Interns canonical label texts as small integers shared by both sides."""

    def __init__(self):
        self.ids = {}
        self.texts = []

    def id(self, text):
        i = self.ids.get(text)
        if i is None:
            i = self.ids[text] = len(self.texts)
            self.texts.append(text)
        return i


def load_corpus(directory, limit, universe):
    with open(os.path.join(directory, "streams.json"), encoding="utf-8") as handle:
        streams = json.load(handle)
    gids = [universe.id(canonical(s)) for s in streams]
    sids, stamps, lines = [], [], []
    with open(os.path.join(directory, "corpus.tsv"), "rb") as handle:
        # Binary iteration splits on b"\n" only: lines keep any other control character.
        for n, raw in enumerate(handle):
            if limit is not None and n >= limit:
                break
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            parts = raw.split(b"\t", 2)
            if len(parts) != 3:
                raise SystemExit(f"corpus.tsv row {n + 1}: not three tab-separated fields")
            stamps.append(int(parts[0]))
            sid = int(parts[1])
            if not 0 <= sid < len(gids):
                raise SystemExit(f"corpus.tsv row {n + 1}: stream {sid} not in streams.json")
            sids.append(gids[sid])
            lines.append(parts[2].decode("utf-8"))
    table = pa.table(
        {
            "gid": pa.array(sids, pa.int32()),
            "ts": pa.array(stamps, pa.int64()),
            "line": pa.array(lines, pa.large_string()),
        }
    )
    return table, len(streams)


def block_dirs(root, tenant):
    base = os.path.join(root, tenant, "logs", "blocks")
    if not os.path.isdir(base):
        return base, [], []
    complete, incomplete = [], []
    for ulid in sorted(os.listdir(base)):
        path = os.path.join(base, ulid)
        if not os.path.isdir(path):
            continue
        (complete if os.path.exists(os.path.join(path, "meta.json")) else incomplete).append(path)
    return base, complete, incomplete


def load_blocks(paths, universe, ignore, problems):
    tables = []
    files = {}
    with_metadata = 0
    meta_mismatches = 0
    block_streams = set()
    for path in paths:
        name = os.path.basename(path)
        for f in sorted(os.listdir(path)):
            files[f] = files.get(f, 0) + os.path.getsize(os.path.join(path, f))
        with open(os.path.join(path, "meta.json"), encoding="utf-8") as handle:
            meta = json.load(handle)
        streams = pq.read_table(os.path.join(path, "streams.parquet"), columns=["stream_id", "labels"])
        entries = pq.read_table(
            os.path.join(path, "entries.parquet"),
            columns=["stream_id", "timestamp_ns", "line", "structured_metadata"],
        )
        ids = streams.column("stream_id").to_pylist()
        if len(set(ids)) != len(ids):
            problems.append(f"block {name}: duplicate stream_id in streams.parquet")
        gids = []
        for labels in streams.column("labels").to_pylist():
            text = canonical(json.loads(labels), ignore)
            gids.append(universe.id(text))
            block_streams.add(text)
        positions = pc.index_in(
            entries.column("stream_id").cast(pa.uint32()), value_set=pa.array(ids, pa.uint32())
        )
        if positions.null_count:
            problems.append(f"block {name}: {positions.null_count} entries with a stream_id missing from streams.parquet")
            positions = pc.fill_null(positions, 0)
        ts = entries.column("timestamp_ns")
        if not pa.types.is_integer(ts.type):
            ts = ts.cast(pa.int64())
        line = entries.column("line").cast(pa.large_string())
        metadata = entries.column("structured_metadata")
        non_empty = pc.and_(pc.is_valid(metadata), pc.not_equal(pc.fill_null(metadata, ""), "{}"))
        count = pc.sum(non_empty).as_py() or 0
        if count:
            with_metadata += count
            problems.append(f"block {name}: {count} entries with structured metadata (the corpus has none)")
        logs = meta.get("logs") if isinstance(meta, dict) else None
        if isinstance(logs, dict):
            line_bytes = pc.sum(pc.binary_length(line)).as_py() or 0
            for key, actual in (("num_entries", entries.num_rows), ("line_bytes", line_bytes)):
                if key in logs and logs[key] != actual:
                    meta_mismatches += 1
                    problems.append(f"block {name}: meta.json logs.{key} = {logs[key]}, entries.parquet has {actual}")
        tables.append(
            pa.table(
                {
                    "gid": pc.take(pa.array(gids, pa.int32()), positions),
                    "ts": ts.cast(pa.int64()),
                    "line": line,
                }
            )
        )
        print(
            f"  block {name}: {entries.num_rows} entries, {streams.num_rows} streams, "
            f"{sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))} bytes"
        )
    if tables:
        table = pa.concat_tables(tables)
    else:
        table = pa.table(
            {"gid": pa.array([], pa.int32()), "ts": pa.array([], pa.int64()), "line": pa.array([], pa.large_string())}
        )
    return table, files, with_metadata, meta_mismatches, len(block_streams)


def counted(table, column):
    return table.group_by(["gid", "ts", "line"], use_threads=False).aggregate([([], "count_all")]).rename_columns(
        ["gid", "ts", "line", column]
    )


def short(text, limit=200):
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--root", required=True, help="local object store root")
    parser.add_argument("--tenant", default="default")
    parser.add_argument("--limit-lines", type=int)
    parser.add_argument("--ignore-label", action="append", default=[])
    parser.add_argument("--max-diffs", type=int, default=10)
    args = parser.parse_args()
    sys.stdout.reconfigure(errors="backslashreplace")

    universe = Universe()
    problems = []
    corpus, corpus_streams = load_corpus(args.corpus, args.limit_lines, universe)
    print(f"corpus: {corpus.num_rows} lines of {corpus_streams} streams from {args.corpus}")
    base, complete, incomplete = block_dirs(args.root, args.tenant)
    print(f"blocks under {base}: {len(complete)} complete, {len(incomplete)} incomplete")
    for path in incomplete:
        problems.append(f"incomplete block directory (no meta.json): {path} has {sorted(os.listdir(path))}")
    blocks, files, with_metadata, meta_mismatches, block_streams = load_blocks(
        complete, universe, set(args.ignore_label), problems
    )
    print(f"block entries: {blocks.num_rows} of {block_streams} streams")

    # Multiset difference: count each (labels, ts, line) on both sides and compare the counts.
    a = counted(corpus, "n_corpus")
    b = counted(blocks, "n_blocks")
    joined = a.join(b, keys=["gid", "ts", "line"], join_type="full outer", use_threads=False)
    n_corpus = pc.fill_null(joined.column("n_corpus"), 0)
    n_blocks = pc.fill_null(joined.column("n_blocks"), 0)
    delta = pc.subtract(n_blocks, n_corpus)
    missing = -(pc.sum(pc.min_element_wise(delta, 0)).as_py() or 0)
    extra = pc.sum(pc.max_element_wise(delta, 0)).as_py() or 0
    corpus_dups = pc.sum(pc.max_element_wise(pc.subtract(n_corpus, 1), 0)).as_py() or 0
    if corpus_dups:
        print(f"note: the corpus itself has {corpus_dups} repeated (labels, ts, line) entries")
    print(f"missing from the blocks: {missing}; extra in the blocks (incl. duplicates): {extra}")
    if missing or extra:
        diffs = joined.append_column("delta", delta).filter(pc.not_equal(delta, 0))
        diffs = diffs.sort_by([("gid", "ascending"), ("ts", "ascending"), ("line", "ascending")])
        shown = diffs.slice(0, args.max_diffs).to_pylist()
        print(f"first {len(shown)} of {diffs.num_rows} differing entries (labels, ts, line):")
        by_key = {}
        for row in shown:
            kind = "missing" if row["delta"] < 0 else "extra"
            by_key.setdefault((row["gid"], row["ts"]), {})[kind] = row["line"]
            print(
                f"  {kind} x{abs(row['delta'])}: {universe.texts[row['gid']]} {row['ts']} "
                f"{json.dumps(short(row['line']), ensure_ascii=False)}"
            )
        # A line missing and another extra at the same stream and time: most likely one line
        # changed; show where.
        for (gid, ts), pair in by_key.items():
            if "missing" in pair and "extra" in pair:
                want, got = pair["missing"].encode(), pair["extra"].encode()
                at = next((i for i, (x, y) in enumerate(zip(want, got)) if x != y), min(len(want), len(got)))
                lo = max(0, at - 20)
                print(
                    f"  changed line at {ts}: first difference at byte {at} (corpus {len(want)} bytes, "
                    f"blocks {len(got)} bytes): corpus {want[lo:at + 20]!r} vs blocks {got[lo:at + 20]!r}"
                )
        corpus_sets = set(corpus.column("gid").unique().to_pylist())
        foreign = [universe.texts[g] for g in pc.unique(blocks.column("gid")).to_pylist() if g not in corpus_sets]
        if foreign:
            print(f"label sets in the blocks that are not in the corpus ({len(foreign)}), e.g. {foreign[:3]}")
    for p in problems[: args.max_diffs * 2]:
        print(f"problem: {p}")
    ok = not (missing or extra or problems)
    block_bytes = sum(files.values())
    print("OK: every corpus line is in the blocks, byte-exact, once" if ok else "MISMATCH")
    summary = {
        "ok": ok,
        "corpus_lines": corpus.num_rows,
        "corpus_streams": corpus_streams,
        "blocks": len(complete),
        "incomplete": len(incomplete),
        "block_entries": blocks.num_rows,
        "block_streams": block_streams,
        "missing": missing,
        "extra": extra,
        "with_metadata": with_metadata,
        "meta_mismatches": meta_mismatches,
        "block_bytes": block_bytes,
        "block_files": files,
    }
    sys.stdout.flush()
    print(json.dumps(summary))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
