#!/usr/bin/env bash
# Loki push ingest benchmark of Vigil over the log benchmark corpus.
#
#   bash benches/run_log_ingest.sh                        # ~5-10 min on 2 CPUs (+3 min for the first corpus build)
#   LI_LIMIT_LINES=200000 bash benches/run_log_ingest.sh  # quick run on the first 200k lines
#
# Steps:
#   1. cargo build --release --bin vigil and the log-push-load generator; both binaries are copied
#      so a rebuild by someone else during the run does not change them.
#   2. The corpus (make_log_corpus.py: 2,000,000 lines, 284 MB of line text, 50 streams, timestamps
#      over the 6 h before T_END = now rounded to the minute) is built once into
#      ${LOG_CORPUS_DIR:-/tmp/logcorpus} and reused afterwards (LI_REBUILD_CORPUS=1 rebuilds it).
#   3. For each format in LI_FORMATS (json, protobuf):
#      - start Vigil on a fresh temporary data dir with the local object store (<run>/objects) on a
#        free loopback port (--wal-fsync true: a 204 means the entries are in an fsync'd WAL commit)
#        and wait for /ready;
#      - run log-push-load (every request body encoded before its clock starts; --concurrency
#        requests in flight, --batch-bytes of line text per request, entries of many streams per
#        request in corpus order, as Promtail/Alloy batch); every request must be answered 204;
#      - peak RSS: VmHWM of /proc/PID/status right after the load, and a poller that reads VmRSS
#        and VmHWM every 0.2 s until Vigil exits (its last VmHWM is the peak including shutdown);
#      - SIGTERM: graceful shutdown cuts the whole head into blocks and uploads them to the local
#        store; the time until Vigil exits is recorded;
#      - bytes of every file under <store>/<tenant>/logs/blocks/ (meta.json, streams.parquet,
#        entries.parquet, index.bin): total, per corpus line, per byte of raw line text;
#      - benches/verify_log_blocks.py: the multiset of (stream labels, timestamp, line) in the
#        blocks must equal the corpus (every line present once, byte-exact).
#
# Environment (defaults in brackets):
#   LI_FORMATS ["json protobuf"]  LI_CONCURRENCY [4]  LI_BATCH_BYTES [2097152]  LI_LIMIT_LINES [all]
#   LI_TENANT [bench]           sent as X-Scope-OrgID; empty: no header (Vigil's default tenant "default")
#   LOG_CORPUS_DIR [/tmp/logcorpus]  LI_REBUILD_CORPUS [0]
#   LOG_CORPUS_SCRIPT [/work/shared/data/make_log_corpus.py]  LOG_CORPUS_SRC [/work/shared/data/loghub]
#   LI_MAX_SECONDS [1800]       bound of each load run
#   LI_SHUTDOWN_SECONDS [900]   bound of each graceful shutdown (then SIGKILL)
#   LI_BUILD [1]                cargo build --release the two binaries first
#   LI_VERIFY [1]               run verify_log_blocks.py
#   LI_VERIFY_ARGS []           extra verifier flags, e.g. "--ignore-label service_name"
#   LI_WORK_DIR [mktemp]        scratch space (run dirs deleted after each run unless LI_KEEP=1)
#   LI_OUT [$LI_WORK_DIR/results]   results.jsonl, summary.md, logs
#   LI_VIGIL_ARGS []            extra `vigil serve` flags
#   LI_LOAD_ARGS []             extra log-push-load flags
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

FORMATS=${LI_FORMATS:-"json protobuf"}
CONCURRENCY=${LI_CONCURRENCY:-4}
BATCH_BYTES=${LI_BATCH_BYTES:-2097152}
LIMIT_LINES=${LI_LIMIT_LINES:-}
TENANT=${LI_TENANT-bench}
CORPUS=${LOG_CORPUS_DIR:-/tmp/logcorpus}
REBUILD_CORPUS=${LI_REBUILD_CORPUS:-0}
CORPUS_SCRIPT=${LOG_CORPUS_SCRIPT:-/work/shared/data/make_log_corpus.py}
CORPUS_SRC=${LOG_CORPUS_SRC:-/work/shared/data/loghub}
MAX_SECONDS=${LI_MAX_SECONDS:-1800}
SHUTDOWN_SECONDS=${LI_SHUTDOWN_SECONDS:-900}
BUILD=${LI_BUILD:-1}
VERIFY=${LI_VERIFY:-1}
VERIFY_ARGS=${LI_VERIFY_ARGS:-}
KEEP=${LI_KEEP:-0}
VIGIL_ARGS=${LI_VIGIL_ARGS:-}
LOAD_ARGS=${LI_LOAD_ARGS:-}
WORK=${LI_WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vigil-log-bench.XXXXXX")}
OUT=${LI_OUT:-$WORK/results}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VIGIL=$TARGET_DIR/release/vigil
LOADGEN=$TARGET_DIR/release/log-push-load
# Where blocks of requests without X-Scope-OrgID go: vigil_model::DEFAULT_TENANT.
TENANT_DIR=${TENANT:-default}

mkdir -p "$WORK" "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

log() { echo "[run_log_ingest $(date +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }
for tool in curl jq ss awk timeout python3; do command -v "$tool" >/dev/null || die "$tool is required"; done
python3 -c 'import pyarrow' 2>/dev/null || die "python3 needs pyarrow (scripts/test.sh installs it)"

# Every process this script starts, so the exit trap ends exactly those.
STARTED_PIDS=()
cleanup() {
    local pid live
    # Only PIDs that are still unreaped children of this shell: never a reused PID.
    live=" $(jobs -p | tr '\n' ' ') "
    for pid in "${STARTED_PIDS[@]}"; do
        if [[ $live == *" $pid "* ]] && kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if [[ $KEEP != 1 ]]; then
        find "$WORK" -mindepth 1 -maxdepth 1 -type d \( -name 'run-*' -o -name bin \) -exec rm -rf {} + 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }
busy_seconds() { awk -v t="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8) / t }' /proc/stat; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

free_port() {
    local i p
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 30000))
        if [[ -z $(ss -Htln "sport = :$p" 2>/dev/null) ]]; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

# wait_http URL SECONDS: polls until URL answers 2xx; returns 1 on timeout.
wait_http() {
    local url=$1 limit=$2 i
    for i in $(seq 1 $((limit * 10))); do
        curl -fs -o /dev/null --max-time 2 "$url" && return 0
        sleep 0.1
    done
    return 1
}

# proc_kb_bytes PID FIELD: a "kB" field of /proc/PID/status in bytes (0 once the process is gone).
proc_kb_bytes() {
    local v
    v=$(awk -v k="$2:" '$1 == k { print $2 * 1024; exit }' "/proc/$1/status" 2>/dev/null) || true
    echo "${v:-0}"
}
cpu_seconds() {
    awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# rss_poller PID OUTFILE: while PID lives, writes "max_vmrss last_vmhwm" every 0.2 s.
rss_poller() {
    local pid=$1 out=$2 max=0 hwm=0 v h
    while kill -0 "$pid" 2>/dev/null; do
        v=$(proc_kb_bytes "$pid" VmRSS)
        h=$(proc_kb_bytes "$pid" VmHWM)
        ((v > max)) && max=$v
        ((h > hwm)) && hwm=$h
        echo "$max $hwm" >"$out.tmp" && mv "$out.tmp" "$out"
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------------------------
# 1. Build.
if [[ $BUILD == 1 ]]; then
    log "building release binaries (vigil, log-push-load)"
    (cd "$ROOT" && cargo build --release --bin vigil && cargo build --release -p vigil-benches --bin log-push-load) >&2
fi
[[ -x $VIGIL ]] || die "$VIGIL missing (LI_BUILD=1 builds it)"
[[ -x $LOADGEN ]] || die "$LOADGEN missing (LI_BUILD=1 builds it)"
mkdir -p "$WORK/bin"
cp "$VIGIL" "$WORK/bin/vigil"
cp "$LOADGEN" "$WORK/bin/log-push-load"
VIGIL_BUILT=$(date -u -r "$VIGIL" +%Y-%m-%dT%H:%M:%SZ)
VIGIL=$WORK/bin/vigil
LOADGEN=$WORK/bin/log-push-load
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
GIT_DIRTY=$(git -C "$ROOT" status --porcelain -- crates src Cargo.toml Cargo.lock 2>/dev/null | wc -l)
log "vigil binary built $VIGIL_BUILT, tree at $GIT_REV ($GIT_DIRTY uncommitted changes under crates/ src/)"

# ---------------------------------------------------------------------------------------------
# 2. Corpus (built once; a partial build never counts as cached: it is renamed into place at the end).
if [[ $REBUILD_CORPUS == 1 || ! -s $CORPUS/corpus.tsv || ! -s $CORPUS/streams.json || ! -s $CORPUS/meta.json ]]; then
    [[ -f $CORPUS_SCRIPT ]] || die "$CORPUS_SCRIPT not found"
    T_END=$(($(date +%s) / 60 * 60))
    log "building the corpus into $CORPUS (T_END=$T_END; takes ~3 min)"
    tmp="$CORPUS.building.$$"
    rm -rf "$tmp"
    python3 "$CORPUS_SCRIPT" "$CORPUS_SRC" "$tmp" "$T_END" >&2 || die "corpus build failed"
    rm -rf "$CORPUS"
    mv "$tmp" "$CORPUS"
fi
CORPUS_META=$(jq -c . "$CORPUS/meta.json")
CORPUS_AGE_H=$(jq -r --argjson now "$(date +%s)" '(($now - .t_end) / 3600 * 10 | floor) / 10' <<<"$CORPUS_META")
log "corpus $CORPUS: $CORPUS_META (T_END ${CORPUS_AGE_H} h ago)"
awk -v a="$CORPUS_AGE_H" 'BEGIN { exit !(a > 24) }' &&
    log "note: the corpus timestamps end ${CORPUS_AGE_H} h ago; LI_REBUILD_CORPUS=1 makes fresh ones"

# ---------------------------------------------------------------------------------------------
# 3. One run per format.
run_format() { # FORMAT
    local fmt=$1 dir="$WORK/run-$1" port url pid prefix="$OUT/$1"
    rm -rf "$dir"
    mkdir -p "$dir"
    local store="$dir/objects"
    port=$(free_port)
    url="http://127.0.0.1:$port"
    log "== $fmt: vigil on $url, data dir $dir/data, object store $store"
    local -a vextra=()
    [[ -n $VIGIL_ARGS ]] && eval "vextra=($VIGIL_ARGS)"
    # A direct child of this shell, so `wait` reaps it.
    "$VIGIL" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" --object-store "$store" --wal-fsync true \
        "${vextra[@]}" >"$prefix.vigil.log" 2>&1 &
    pid=$!
    STARTED_PIDS+=("$pid")
    wait_http "$url/ready" 60 || die "vigil did not become ready (see $prefix.vigil.log)"
    rss_poller "$pid" "$prefix.rss" &
    local poller=$!
    STARTED_PIDS+=("$poller")

    local -a flags=(--url "$url" --corpus "$CORPUS" --format "$fmt" --batch-bytes "$BATCH_BYTES"
        --concurrency "$CONCURRENCY")
    [[ -n $TENANT ]] && flags+=(--tenant "$TENANT")
    [[ -n $LIMIT_LINES ]] && flags+=(--limit-lines "$LIMIT_LINES")
    local -a lextra=()
    [[ -n $LOAD_ARGS ]] && eval "lextra=($LOAD_ARGS)"
    echo "$LOADGEN ${flags[*]} ${lextra[*]}" >"$prefix.load.cmd"
    log "load: $LOADGEN ${flags[*]} ${lextra[*]}"
    local cpu0 cpu1 busy0 busy1 load_rc=0
    cpu0=$(cpu_seconds "$pid")
    busy0=$(busy_seconds)
    timeout --signal=TERM --kill-after=10 "$MAX_SECONDS" "$LOADGEN" "${flags[@]}" "${lextra[@]}" \
        >"$prefix.load.out" 2>"$prefix.load.err" || load_rc=$?
    busy1=$(busy_seconds)
    cpu1=$(cpu_seconds "$pid")
    ((load_rc == 0)) || log "log-push-load exited with status $load_rc (see $prefix.load.err)"
    tail -n 1 "$prefix.load.out" | jq -c . >"$prefix.load.json" 2>/dev/null || echo '{}' >"$prefix.load.json"
    log "load summary: $(cat "$prefix.load.json")"
    kill -0 "$pid" 2>/dev/null || die "vigil died during the load (see $prefix.vigil.log)"
    local hwm_load rss_now
    hwm_load=$(proc_kb_bytes "$pid" VmHWM)
    rss_now=$(proc_kb_bytes "$pid" VmRSS)
    curl -fs --max-time 10 "$url/metrics" >"$prefix.metrics.txt" 2>/dev/null || true

    # Graceful shutdown: cuts the head into blocks and uploads them.
    local t0 t1 exited=0 i
    t0=$(now_ms)
    kill -TERM "$pid"
    for i in $(seq 1 $((SHUTDOWN_SECONDS * 10))); do
        if ! kill -0 "$pid" 2>/dev/null; then
            exited=1
            break
        fi
        sleep 0.1
    done
    t1=$(now_ms)
    if ((exited == 0)); then
        log "vigil did not exit within ${SHUTDOWN_SECONDS}s of SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    local vigil_rc=0
    wait "$pid" 2>/dev/null || vigil_rc=$?
    wait "$poller" 2>/dev/null || true
    local shutdown_s rss_max hwm_end
    shutdown_s=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", (a - b) / 1000 }')
    read -r rss_max hwm_end <"$prefix.rss" 2>/dev/null || { rss_max=0; hwm_end=0; }
    ((hwm_end > hwm_load)) || hwm_end=$hwm_load
    log "vigil: VmHWM after load $hwm_load, VmRSS max $rss_max, VmHWM incl. shutdown $hwm_end; shutdown ${shutdown_s}s (exit status $vigil_rc)"

    # Block bytes.
    local blocks_dir="$store/$TENANT_DIR/logs/blocks" block_bytes=0 nblocks=0 files='{}'
    if [[ -d $blocks_dir ]]; then
        block_bytes=$(find "$blocks_dir" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d\n", s }')
        nblocks=$(find "$blocks_dir" -mindepth 2 -maxdepth 2 -name meta.json | wc -l)
        files=$(find "$blocks_dir" -type f -printf '%f %s\n' |
            awk 'NF == 2 { by[$1] += $2 } END { printf "{"; sep = ""; for (f in by) { printf "%s\"%s\":%d", sep, f, by[f]; sep = "," } print "}" }')
    fi
    log "blocks: $nblocks under $blocks_dir, $block_bytes bytes $files"

    # Verify.
    local verify='{"ok":null,"skipped":true}' verify_rc=0
    if [[ $VERIFY == 1 ]]; then
        local -a vflags=(--corpus "$CORPUS" --root "$store" --tenant "$TENANT_DIR")
        [[ -n $LIMIT_LINES ]] && vflags+=(--limit-lines "$LIMIT_LINES")
        local -a vfextra=()
        [[ -n $VERIFY_ARGS ]] && eval "vfextra=($VERIFY_ARGS)"
        log "verify: verify_log_blocks.py ${vflags[*]} ${vfextra[*]}"
        python3 "$HERE/verify_log_blocks.py" "${vflags[@]}" "${vfextra[@]}" >"$prefix.verify.out" 2>"$prefix.verify.err" || verify_rc=$?
        verify=$(tail -n 1 "$prefix.verify.out" | jq -c . 2>/dev/null || echo '{"ok":false,"error":"verifier crashed"}')
        grep -vE '^\{|^  block ' "$prefix.verify.out" | head -n 30 >&2 || true
        ((verify_rc == 0)) || log "verify FAILED (exit $verify_rc; see $prefix.verify.out, $prefix.verify.err)"
    fi

    jq -nc --arg format "$fmt" --slurpfile load "$prefix.load.json" --argjson load_rc "$load_rc" \
        --argjson hwm_load "$hwm_load" --argjson rss_now "$rss_now" --argjson rss_max "$rss_max" --argjson hwm_end "$hwm_end" \
        --argjson cpu "$(fsub "$cpu1" "$cpu0")" --argjson busy "$(fsub "$busy1" "$busy0")" \
        --argjson shutdown_s "$shutdown_s" --argjson exited "$exited" --argjson vigil_rc "$vigil_rc" \
        --argjson nblocks "$nblocks" --argjson block_bytes "$block_bytes" --argjson files "$files" \
        --argjson verify "$verify" --arg tenant "$TENANT_DIR" \
        '($load[0]) as $l
         | {format: $format, tenant: $tenant, load: $l, load_exit: $load_rc,
            peak_rss_bytes_after_load: $hwm_load, rss_bytes_after_load: $rss_now, rss_poll_max_bytes: $rss_max,
            peak_rss_bytes_incl_shutdown: $hwm_end, vigil_cpu_seconds_during_generator_run: $cpu,
            machine_busy_cpu_seconds_during_generator_run: $busy, shutdown_seconds: $shutdown_s,
            exited_after_sigterm: ($exited == 1), vigil_exit_status: $vigil_rc,
            blocks: $nblocks, block_bytes: $block_bytes, block_files: $files,
            block_bytes_per_line: (if ($l.lines // 0) > 0 then ($block_bytes / $l.lines * 100 | round / 100) else null end),
            block_bytes_per_raw_byte: (if ($l.raw_bytes // 0) > 0 then ($block_bytes / $l.raw_bytes * 10000 | round / 10000) else null end),
            verify: $verify}' >>"$RESULTS"
    [[ $KEEP == 1 ]] || rm -rf "$dir"
}

log "work dir $WORK, results in $OUT"
for fmt in $FORMATS; do
    case $fmt in
        json | protobuf) run_format "$fmt" ;;
        *) die "unknown format $fmt (json or protobuf)" ;;
    esac
done

# ---------------------------------------------------------------------------------------------
# Summary table (markdown) on stdout and in summary.md.
{
    echo "Loki push ingest, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs; vigil built $VIGIL_BUILT at $GIT_REV ($GIT_DIRTY uncommitted changes under crates/ src/)"
    echo "Corpus: $CORPUS ($(jq -r '"\(.lines) lines, \(.raw_line_bytes) bytes of line text, \(.streams) streams"' <<<"$CORPUS_META")${LIMIT_LINES:+; first $LIMIT_LINES lines})," \
        "log-push-load --batch-bytes $BATCH_BYTES --concurrency $CONCURRENCY${TENANT:+ --tenant $TENANT}; vigil --wal-fsync true"
    echo
    echo "| format | lines | errors | seconds | lines/s | MB/s (line text) | body MB | peak RSS MiB (load / incl. shutdown) | Vigil CPU s (generator run) | shutdown s | blocks | block bytes | B/line | B/raw byte | verify |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    jq -r '
        def mib: if . == null then "n/a" else (. / 1048576 | round | tostring) end;
        def v: if .verify.skipped then "skipped" elif .verify.ok == true then "ok (\(.verify.block_entries) entries)"
               else "FAILED: missing \(.verify.missing // "?"), extra \(.verify.extra // "?")\(if (.verify.incomplete // 0) > 0 then ", \(.verify.incomplete) incomplete" else "" end)\(if (.verify.meta_mismatches // 0) > 0 then ", meta" else "" end)" end;
        "| \(.format) | \(.load.lines_ok // "n/a") / \(.load.lines // "n/a") | \(.load.errors // "n/a") | \(.load.seconds // "n/a") | \(.load.lines_per_s // "n/a") | \(.load.mb_per_s // "n/a") | \(if .load.body_bytes then (.load.body_bytes / 1e6 | round | tostring) else "n/a" end) | \(.peak_rss_bytes_after_load | mib) / \(.peak_rss_bytes_incl_shutdown | mib) | \(.vigil_cpu_seconds_during_generator_run) | \(.shutdown_seconds) | \(.blocks) | \(.block_bytes) | \(.block_bytes_per_line // "n/a") | \(.block_bytes_per_raw_byte // "n/a") | \(v) |"
    ' "$RESULTS"
} | tee "$OUT/summary.md"
log "raw results: $RESULTS"
# Non-zero when a load had errors or a verification failed.
jq -se 'all(.[]; .load_exit == 0 and (.verify.ok != false))' "$RESULTS" >/dev/null
