#!/usr/bin/env bash
# LogQL query benchmark of Vigil over the log benchmark corpus (the one run_log_ingest.sh builds).
#
#   bash benches/run_log_query.sh                  # ~10 min on 2 CPUs once the corpus exists
#   LQ_RUNS=3 LQ_BUILD=0 bash benches/run_log_query.sh
#
# Steps:
#   1. cargo build --release the vigil binary and the log-push-load generator (LQ_BUILD=0 skips).
#   2. The corpus (2,000,000 lines, 50 streams, 6 h) in ${LOG_CORPUS_DIR:-/tmp/logcorpus}; built
#      with run_log_ingest.sh's recipe when missing (make_log_corpus.py).
#   3. Vigil on a fresh data dir; the corpus pushed as protobuf (log-push-load); SIGTERM (the
#      graceful shutdown cuts every entry into log blocks in the local object store); restarted,
#      so every query reads blocks from the object store, as queries over past hours do.
#   4. Each query of QUERIES below over the whole 6 h (log queries: limit 1000, backward; metric
#      queries: step 60 s) is run LQ_RUNS times after one warm-up; the p50 and min of curl's
#      time_total are reported, with the number of result streams/series and entries.
#   5. Scan throughput: raw line bytes of the corpus / p50 of the no-match regex without literal
#      prefixes (`\w+ ...` gets no help from the trigram index, so every line is decompressed and
#      searched; the no-match substring and literal-prefix regex above show what the index skips).
#
# Environment: LQ_RUNS [7]  LQ_BUILD [1]  LOG_CORPUS_DIR [/tmp/logcorpus]  LQ_WORK_DIR [mktemp]
#   LQ_VIGIL_ARGS []  extra `vigil serve` flags
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNS=${LQ_RUNS:-7}
BUILD=${LQ_BUILD:-1}
CORPUS=${LOG_CORPUS_DIR:-/tmp/logcorpus}
WORK=${LQ_WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vigil-logq-bench.XXXXXX")}
VIGIL_ARGS=${LQ_VIGIL_ARGS:-}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

log() { echo "[run_log_query $(date +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }
for tool in curl jq python3; do command -v "$tool" >/dev/null || die "$tool is required"; done

PID=
cleanup() { [[ -n $PID ]] && kill -KILL "$PID" 2>/dev/null || true; }
trap cleanup EXIT

if [[ $BUILD == 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --bin vigil && cargo build --release -p vigil-benches --bin log-push-load) >&2
fi
mkdir -p "$WORK/bin"
cp "$TARGET_DIR/release/vigil" "$TARGET_DIR/release/log-push-load" "$WORK/bin/"

if [[ ! -s $CORPUS/corpus.tsv || ! -s $CORPUS/meta.json ]]; then
    log "building the corpus into $CORPUS"
    python3 /work/shared/data/make_log_corpus.py /work/shared/data/loghub "$CORPUS.tmp" "$(($(date +%s) / 60 * 60))" >&2
    rm -rf "$CORPUS" && mv "$CORPUS.tmp" "$CORPUS"
fi
START=$(jq -r '.start_ns' "$CORPUS/meta.json")
END=$(jq -r '.t_end * 1000000000' "$CORPUS/meta.json")
RAW_BYTES=$(jq -r '.raw_line_bytes' "$CORPUS/meta.json")
START=$((START / 1000000000 * 1000000000))

PORT=$((20000 + RANDOM % 30000))
URL="http://127.0.0.1:$PORT"
start_vigil() {
    local -a extra=()
    [[ -n $VIGIL_ARGS ]] && eval "extra=($VIGIL_ARGS)"
    "$WORK/bin/vigil" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" "${extra[@]}" >>"$WORK/vigil.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 600); do curl -fs -o /dev/null "$URL/ready" && return 0; sleep 0.1; done
    die "vigil not ready (log: $WORK/vigil.log)"
}
rm -rf "$WORK/data"
start_vigil
log "pushing the corpus"
"$WORK/bin/log-push-load" --url "$URL" --corpus "$CORPUS" --format protobuf --batch-bytes 2097152 --concurrency 4 >"$WORK/load.json"
log "graceful shutdown (cuts log blocks), restart"
kill -TERM "$PID"; wait "$PID" || true; PID=
start_vigil

QUERIES=(
    'log@@selector, limit 1000@@{app="openssh"}'
    'log@@`{app="openssh"} |= "error"`@@{app="openssh"} |= "error"'
    'log@@`{namespace="web"} |~ "Invalid user (admin|root|test)"`@@{namespace="web"} |~ "Invalid user (admin|root|test)"'
    'metric@@`sum by (level) (count_over_time({namespace="data"}[1m]))`@@sum by (level) (count_over_time({namespace="data"}[1m]))'
    'metric@@`sum(rate({app="openssh"} |= "Failed" [5m]))`@@sum(rate({app="openssh"} |= "Failed" [5m]))'
    'log@@json parse + label filter@@{app="hadoop"} | json | logger="org.apache.hadoop.ipc.Client"'
    'log@@logfmt parse + numeric filter@@{app="zookeeper"} | logfmt | line >= 500'
    'metric@@`topk(5, sum by (app) (bytes_over_time({env="prod"}[5m])))`@@topk(5, sum by (app) (bytes_over_time({env="prod"}[5m])))'
    'log@@needle: a token in a handful of lines@@{namespace=~".+"} |= "blk_-1046472716157313227"'
    'log@@no-match substring over everything@@{namespace=~".+"} |= "zqxjv-no-such-text"'
    'log@@no-match regex with literal prefixes (index)@@{namespace=~".+"} |~ "zqxjv-(no|such)-text"'
    'log@@no-match regex over everything (full decode and scan, no index)@@{namespace=~".+"} |~ `\w+ zqxjv-no-such-text`'
)

OUT=$WORK/results.md
{
    echo "| query | p50 ms | min ms | streams/series | entries |"
    echo "|---|---:|---:|---:|---:|"
} >"$OUT"
NOMATCH_MS=
for q in "${QUERIES[@]}"; do
    kind=${q%%@@*}; rest=${q#*@@}; name=${rest%%@@*}; query=${rest#*@@}
    args=(--data-urlencode "query=$query" --data-urlencode "start=$START" --data-urlencode "end=$END")
    if [[ $kind == log ]]; then args+=(--data-urlencode "limit=1000"); else args+=(--data-urlencode "step=60"); fi
    curl -fsS -G "${args[@]}" "$URL/loki/api/v1/query_range" -o "$WORK/answer.json" || die "query failed: $query"
    times=()
    for _ in $(seq 1 "$RUNS"); do
        times+=("$(curl -fsS -G "${args[@]}" "$URL/loki/api/v1/query_range" -o /dev/null -w '%{time_total}')")
    done
    stats=$(printf '%s\n' "${times[@]}" | sort -g | awk '{ a[NR] = $1 } END { printf "%.1f %.1f", a[int((NR + 1) / 2)] * 1000, a[1] * 1000 }')
    p50=${stats% *}; min=${stats#* }
    series=$(jq '.data.result | length' "$WORK/answer.json")
    entries=$(jq '[.data.result[] | (.values // []) | length] | add // 0' "$WORK/answer.json")
    echo "| ${name//|/\\|} | $p50 | $min | $series | $entries |" >>"$OUT"
    log "$name: p50 $p50 ms (min $min), $series streams/series, $entries entries"
    [[ $name == no-match\ regex* ]] && NOMATCH_MS=$p50
done
if [[ -n $NOMATCH_MS ]]; then
    awk -v b="$RAW_BYTES" -v ms="$NOMATCH_MS" 'BEGIN { printf "\nscan: %.2f GB/s of raw line text (%d bytes in %.1f ms, 2 cores)\n", b / (ms / 1000) / 1e9, b, ms }' >>"$OUT"
fi
echo >>"$OUT"
echo "vigil $(git -C "$ROOT" rev-parse --short HEAD), $RUNS runs + 1 warm-up per query, corpus $(jq -c . "$CORPUS/meta.json")" >>"$OUT"
cat "$OUT"
