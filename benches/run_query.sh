#!/usr/bin/env bash
# Query-latency benchmark: Vigil against Prometheus 2.42 on the same data, in the same run.
#
#   bash benches/run_query.sh            # builds vigil (release), ~5 min on 2 CPUs at 100k series
#   QB_SERIES=10000 bash benches/run_query.sh   # quick run, ~1 min
#
# Steps:
#   1. cargo build --release --bin vigil (retried while someone's work in progress does not
#      compile), and copy the binary so a rebuild by someone else does not change it mid-run.
#   2. Start Vigil (fresh temp data dir, free loopback port, --wal-fsync true) and Prometheus
#      (--web.enable-remote-write-receiver, fresh temp tsdb path, no scrape jobs, free loopback
#      port). Both stay up for the whole run.
#   3. Load both with the same data, one after the other:
#        obsload metrics-write --series N --samples-per-series 120 --start-ms S --seed 1
#                              --concurrency 4 --batch 2000
#      S = (now_ms - 121*15000) rounded down to the minute, so Prometheus accepts every sample
#      (it rejects samples more than about an hour behind its newest).
#      Peak RSS (VmHWM from /proc/PID/status) of both processes after the load.
#   4. obsload query-bench of every query in QB_QUERIES against each, as range queries over the
#      30 minutes [E-1800, E] at a 15 s step (E = S/1000 + 1800), then as instant queries at E:
#      p50/min/max of QB_RUNS runs after one warm-up run. query-bench is run once per query (a
#      one-line query file) so the target's VmHWM can be reset before each query
#      (echo 5 > /proc/PID/clear_refs) and its peak RSS per query recorded. Both processes are
#      up and idle while the other one is timed. CPU seconds of the target and of the whole machine are recorded per
#      phase (the machine is shared: "machine busy" far above the target's CPU means contention).
#   5. Peak RSS of both after the queries (the largest VmHWM seen since the start).
#   6. obsload compare (Prometheus as the reference A, Vigil as B) of the same queries, range and
#      instant; its summary line "compared N, matched M, failed F, errors E".
#   7. From blocks (QB_BLOCKS=1): Vigil is stopped with SIGTERM (the graceful shutdown cuts the
#      head into a block in its local object store) and started again on the same data dir, so
#      every query reads the block, as queries over past hours do; the range queries are timed
#      again and compared with Prometheus again.
#
# Environment (defaults in brackets):
#   QB_SERIES [100000] QB_SAMPLES_PER_SERIES [120] QB_CONCURRENCY [4] QB_BATCH [2000] QB_SEED [1]
#   QB_QUERIES [benches/queries/dashboard.txt]  QB_RUNS [5]  QB_STEP [15s]
#   QB_RANGE_SECONDS [1800]   range of the range queries, ending at E
#   QB_MAX_SECONDS [900]      bound of each load; each query-bench/compare is bounded by
#                             QB_QUERY_MAX_SECONDS [1800]; per-request timeout QB_TIMEOUT_S [120]
#   QB_BUILD [1]              cargo build --release --bin vigil first
#   QB_BUILD_TRIES [4]  QB_BUILD_RETRY_SLEEP [180]   retries of a failing build
#   QB_WORK_DIR [mktemp]  QB_OUT [$QB_WORK_DIR/results]  QB_KEEP [0] (keep data dirs)
#   QB_VIGIL_ARGS []          extra `vigil serve` flags
#   QB_BLOCKS [1]             step 7 (queries from blocks)
#   OBSLOAD [/work/shared/bin/obsload]  PROMETHEUS [/usr/bin/prometheus]
#
# Output: a markdown table on stdout (also $QB_OUT/summary.md), $QB_OUT/results.json, and the raw
# query-bench JSON lines, compare output, load summaries and logs of both targets in $QB_OUT.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

SERIES=${QB_SERIES:-100000}
SAMPLES=${QB_SAMPLES_PER_SERIES:-120}
CONCURRENCY=${QB_CONCURRENCY:-4}
BATCH=${QB_BATCH:-2000}
SEED=${QB_SEED:-1}
QUERIES=${QB_QUERIES:-$HERE/queries/dashboard.txt}
RUNS=${QB_RUNS:-5}
STEP=${QB_STEP:-15s}
RANGE_SECONDS=${QB_RANGE_SECONDS:-1800}
MAX_SECONDS=${QB_MAX_SECONDS:-900}
QUERY_MAX_SECONDS=${QB_QUERY_MAX_SECONDS:-1800}
TIMEOUT_S=${QB_TIMEOUT_S:-120}
BUILD=${QB_BUILD:-1}
BUILD_TRIES=${QB_BUILD_TRIES:-4}
BUILD_RETRY_SLEEP=${QB_BUILD_RETRY_SLEEP:-180}
KEEP=${QB_KEEP:-0}
VIGIL_ARGS=${QB_VIGIL_ARGS:-}
BLOCKS=${QB_BLOCKS:-1}
OBSLOAD=${OBSLOAD:-/work/shared/bin/obsload}
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
WORK=${QB_WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vigil-query-bench.XXXXXX")}
OUT=${QB_OUT:-$WORK/results}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VIGIL=$TARGET_DIR/release/vigil
INTERVAL_MS=15000

log() { echo "[run_query $(date +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }
for tool in curl jq ss awk timeout; do command -v "$tool" >/dev/null || die "$tool is required"; done
[[ -x $OBSLOAD ]] || die "$OBSLOAD not found"
[[ -x $PROMETHEUS ]] || die "$PROMETHEUS not found"
[[ -f $QUERIES ]] || die "query file $QUERIES not found"
QUERIES=$(cd "$(dirname "$QUERIES")" && pwd)/$(basename "$QUERIES")

mkdir -p "$WORK" "$OUT"

# Every process this script starts, so the exit trap ends exactly those.
STARTED_PIDS=()
cleanup() {
    local pid live
    # Only PIDs that are still unreaped children of this shell: never a reused PID.
    live=" $(jobs -p | tr '\n' ' ') "
    for pid in "${STARTED_PIDS[@]}"; do
        if [[ $live == *" $pid "* ]] && kill -0 "$pid" 2>/dev/null; then
            kill -CONT "$pid" 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [[ $KEEP != 1 ]]; then
        rm -rf "$WORK/vigil-data" "$WORK/prometheus-tsdb" "$WORK/bin" 2>/dev/null || true
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

# wait_exit PID SECONDS: waits for a child to exit; returns 1 on timeout.
wait_exit() {
    local pid=$1 limit=$2 i
    for i in $(seq 1 $((limit * 10))); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    return 1
}

# metric URL NAME: sum of every sample of NAME in a Prometheus text exposition (0 if absent).
metric() {
    curl -fs --max-time 5 "$1/metrics" 2>/dev/null |
        awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF; f = 1 } END { printf "%.0f\n", f ? s : 0 }'
}

proc_kb() { awk -v k="$2:" '$1 == k { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }
vmhwm_bytes() { proc_kb "$1" VmHWM; }
vmrss_bytes() { proc_kb "$1" VmRSS; }
cpu_seconds() {
    local tck
    tck=$(getconf CLK_TCK)
    awk -v t="$tck" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}
alive() { kill -0 "$1" 2>/dev/null || die "$2 (pid $1) died; see its log in $OUT"; }

# ---------------------------------------------------------------------------------------------
# 1. Build.
if [[ $BUILD == 1 ]]; then
    ok=0
    for try in $(seq 1 "$BUILD_TRIES"); do
        log "building vigil (cargo build --release --bin vigil), try $try/$BUILD_TRIES"
        if (cd "$ROOT" && timeout 3600 cargo build --release --bin vigil) >"$OUT/build.log" 2>&1; then
            ok=1
            break
        fi
        tail -n 20 "$OUT/build.log" >&2
        ((try < BUILD_TRIES)) && { log "build failed (work in progress?); retrying in ${BUILD_RETRY_SLEEP}s"; sleep "$BUILD_RETRY_SLEEP"; }
    done
    ((ok == 1)) || die "cargo build failed $BUILD_TRIES times (see $OUT/build.log)"
fi
[[ -x $VIGIL ]] || die "$VIGIL missing (QB_BUILD=1 builds it)"
mkdir -p "$WORK/bin"
cp "$VIGIL" "$WORK/bin/vigil"
VIGIL_BUILT=$(date -u -r "$VIGIL" +%Y-%m-%dT%H:%M:%SZ)
VIGIL=$WORK/bin/vigil
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
GIT_DIRTY=$(git -C "$ROOT" status --porcelain -- crates src Cargo.toml Cargo.lock 2>/dev/null | wc -l)
PROM_VERSION=$("$PROMETHEUS" --version 2>&1 | head -n 1 | awk '{ print $3 }')
log "vigil binary built $VIGIL_BUILT, tree at $GIT_REV ($GIT_DIRTY uncommitted changes under crates/ src/); prometheus $PROM_VERSION"
log "work dir $WORK, results in $OUT"

# ---------------------------------------------------------------------------------------------
# 2. Start both targets.
VPORT=$(free_port)
VURL=http://127.0.0.1:$VPORT
mkdir -p "$WORK/vigil-data"
vextra=()
[[ -n $VIGIL_ARGS ]] && eval "vextra=($VIGIL_ARGS)"
"$VIGIL" serve --listen "127.0.0.1:$VPORT" --data-dir "$WORK/vigil-data" --wal-fsync true "${vextra[@]}" \
    >"$OUT/vigil.log" 2>&1 &
VPID=$!
STARTED_PIDS+=("$VPID")
wait_http "$VURL/ready" 60 || die "vigil did not become ready (see $OUT/vigil.log)"

PPORT=$(free_port)
while [[ $PPORT == "$VPORT" ]]; do PPORT=$(free_port); done
PURL=http://127.0.0.1:$PPORT
mkdir -p "$WORK/prometheus-tsdb"
printf 'global:\n  scrape_interval: 1m\n' >"$WORK/prometheus.yml"
"$PROMETHEUS" --config.file "$WORK/prometheus.yml" --storage.tsdb.path "$WORK/prometheus-tsdb" \
    --web.listen-address "127.0.0.1:$PPORT" --web.enable-remote-write-receiver --log.level warn \
    >"$OUT/prometheus.log" 2>&1 &
PPID_=$!
STARTED_PIDS+=("$PPID_")
wait_http "$PURL/-/ready" 60 || die "prometheus did not become ready (see $OUT/prometheus.log)"
log "vigil on $VURL (pid $VPID), prometheus on $PURL (pid $PPID_)"

# ---------------------------------------------------------------------------------------------
# 3. Load.
S=$((($(now_ms) - (SAMPLES + 1) * INTERVAL_MS) / 60000 * 60000))
E=$((S / 1000 + SAMPLES * INTERVAL_MS / 1000))
QSTART=$((E - RANGE_SECONDS))
log "data: --series $SERIES --samples-per-series $SAMPLES --start-ms $S; queries over [$QSTART, $E] step $STEP"

load() { # NAME URL
    local name=$1 url=$2
    local -a cmd=("$OBSLOAD" metrics-write --url "$url" --series "$SERIES" --samples-per-series "$SAMPLES"
        --start-ms "$S" --seed "$SEED" --concurrency "$CONCURRENCY" --batch "$BATCH" --max-seconds "$MAX_SECONDS")
    echo "${cmd[*]}" >"$OUT/load-$name.cmd"
    log "load $name: ${cmd[*]}"
    timeout --signal=TERM --kill-after=10 $((MAX_SECONDS + 60)) "${cmd[@]}" >"$OUT/load-$name.out" 2>"$OUT/load-$name.err" ||
        log "load of $name exited with status $? (see $OUT/load-$name.err)"
    tail -n 1 "$OUT/load-$name.out" | jq -c . >"$OUT/load-$name.json" 2>/dev/null || echo '{}' >"$OUT/load-$name.json"
    log "load $name: $(jq -c '{samples, samples_ok, seconds, samples_per_sec, status}' "$OUT/load-$name.json")"
}
load vigil "$VURL/api/v1/push"
alive "$VPID" vigil
load prometheus "$PURL/api/v1/write"
alive "$PPID_" prometheus
sleep 2
V_HWM_LOAD=$(vmhwm_bytes "$VPID")
P_HWM_LOAD=$(vmhwm_bytes "$PPID_")
V_RSS_LOAD=$(vmrss_bytes "$VPID")
P_RSS_LOAD=$(vmrss_bytes "$PPID_")
V_SERIES=$(metric "$VURL" vigil_head_series)
P_SERIES=$(metric "$PURL" prometheus_tsdb_head_series)
log "after load: vigil VmHWM=$V_HWM_LOAD VmRSS=$V_RSS_LOAD head_series=$V_SERIES; prometheus VmHWM=$P_HWM_LOAD VmRSS=$P_RSS_LOAD head_series=$P_SERIES"
curl -fs --max-time 30 "$VURL/api/v1/label/__name__/values" | jq -c '.data' >"$OUT/metric-names.json" 2>/dev/null || true

# ---------------------------------------------------------------------------------------------
# 4. Query latency.
PHASES='[]'
# The queries, one file per query: query-bench runs once per query, so the target's peak RSS can
# be reset (echo 5 > /proc/PID/clear_refs) before each and read (VmHWM) after it.
mkdir -p "$WORK/q"
NQ=0
while IFS= read -r line || [[ -n $line ]]; do
    [[ -z ${line//[[:space:]]/} || $line =~ ^[[:space:]]*# ]] && continue
    NQ=$((NQ + 1))
    printf '%s\n' "$line" >"$WORK/q/$NQ.txt"
done <"$QUERIES"
((NQ > 0)) || die "no queries in $QUERIES"
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null; }
HWM_RESET=1
reset_hwm "$VPID" || HWM_RESET=0
log "$NQ queries; per-query peak RSS $( ((HWM_RESET == 1)) && echo 'reset before each query' || echo 'NOT resettable here (cumulative)')"
V_HWM_MAX=$V_HWM_LOAD
P_HWM_MAX=$P_HWM_LOAD
bench() { # NAME URL PID KIND
    local name=$1 url=$2 pid=$3 kind=$4 out="$OUT/bench-$1-$4.jsonl" i rc hwm
    local -a cmd=("$OBSLOAD" query-bench --url "$url" --queries "$QUERIES" --start "$QSTART" --end "$E"
        --step "$STEP" --runs "$RUNS" --timeout-s "$TIMEOUT_S")
    [[ $kind == instant ]] && cmd+=(--instant)
    echo "${cmd[*]}  # run once per query (--queries $WORK/q/N.txt)" >"$OUT/bench-$name-$kind.cmd"
    log "$name $kind: ${cmd[*]}  (once per query)"
    : >"$out"
    : >"$OUT/bench-$name-$kind.err"
    local c0 c1 b0 b1 t0 t1 fails=0
    c0=$(cpu_seconds "$pid"); b0=$(busy_seconds); t0=$(now_ms)
    for i in $(seq 1 "$NQ"); do
        cmd[5]=$WORK/q/$i.txt
        ((HWM_RESET == 1)) && reset_hwm "$pid"
        rc=0
        timeout --signal=TERM --kill-after=10 "$QUERY_MAX_SECONDS" "${cmd[@]}" >"$OUT/bench.tmp" 2>>"$OUT/bench-$name-$kind.err" || rc=$?
        hwm=$(vmhwm_bytes "$pid")
        alive "$pid" "$name"
        if [[ $name == vigil* ]]; then ((hwm > V_HWM_MAX)) && V_HWM_MAX=$hwm; else ((hwm > P_HWM_MAX)) && P_HWM_MAX=$hwm; fi
        if ((rc != 0)) || ! jq -e . "$OUT/bench.tmp" >/dev/null 2>&1 || [[ ! -s $OUT/bench.tmp ]]; then
            fails=$((fails + 1))
            log "query-bench of query $i against $name exited with status $rc (see $OUT/bench-$name-$kind.err)"
            jq -nc --arg q "$(cat "$WORK/q/$i.txt")" --argjson rc "$rc" --argjson hwm "$hwm" \
                '{query: $q, status: "bench exit \($rc)", peak_rss_bytes: $hwm}' >>"$out"
        else
            tail -n 1 "$OUT/bench.tmp" | jq -c --argjson hwm "$hwm" '. + {peak_rss_bytes: $hwm}' >>"$out"
        fi
        tail -n 1 "$out" | jq -r '"  \(.p50_ms // "-") ms p50 (\(.min_ms // "-")–\(.max_ms // "-")), peak RSS \(.peak_rss_bytes / 1048576 | floor) MiB  \(.status)  \(.query)"' >&2 || true
    done
    rm -f "$OUT/bench.tmp"
    c1=$(cpu_seconds "$pid"); b1=$(busy_seconds); t1=$(now_ms)
    PHASES=$(jq -c --arg n "$name" --arg k "$kind" --argjson cpu "$(fsub "$c1" "$c0")" --argjson busy "$(fsub "$b1" "$b0")" \
        --argjson wall "$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.2f", (a - b) / 1000 }')" --argjson fails "$fails" \
        '. + [{target: $n, kind: $k, wall_seconds: $wall, target_cpu_seconds: $cpu, machine_busy_cpu_seconds: $busy, failed_benches: $fails}]' <<<"$PHASES")
}
bench vigil "$VURL" "$VPID" range
bench prometheus "$PURL" "$PPID_" range
bench vigil "$VURL" "$VPID" instant
bench prometheus "$PURL" "$PPID_" instant

# 5. Memory after the queries.
# (VmHWM was reset before each query: the peak since the start is the largest value seen.)
V_HWM_Q=$(vmhwm_bytes "$VPID"); ((V_HWM_Q > V_HWM_MAX)) || V_HWM_Q=$V_HWM_MAX
P_HWM_Q=$(vmhwm_bytes "$PPID_"); ((P_HWM_Q > P_HWM_MAX)) || P_HWM_Q=$P_HWM_MAX
V_RSS_Q=$(vmrss_bytes "$VPID")
P_RSS_Q=$(vmrss_bytes "$PPID_")
log "after queries: vigil VmHWM=$V_HWM_Q VmRSS=$V_RSS_Q; prometheus VmHWM=$P_HWM_Q VmRSS=$P_RSS_Q"

# 6. Same results?
compare() { # NAME: Prometheus (A) against Vigil (B); sets CMP_RC and CMP_SUMMARY
    local name=$1
    local -a cmd=("$OBSLOAD" compare --a "$PURL" --b "$VURL" --queries "$QUERIES" --start "$QSTART" --end "$E" --step "$STEP"
        --timeout-s "$TIMEOUT_S" --timings "$OUT/$name-timings.tsv")
    echo "${cmd[*]}" >"$OUT/$name.cmd"
    log "$name: ${cmd[*]}"
    CMP_RC=0
    timeout --signal=TERM --kill-after=10 "$QUERY_MAX_SECONDS" "${cmd[@]}" >"$OUT/$name.out" 2>"$OUT/$name.err" || CMP_RC=$?
    CMP_SUMMARY=$(grep -E '^compared [0-9]+' "$OUT/$name.out" | tail -n 1 || true)
    [[ -n $CMP_SUMMARY ]] || CMP_SUMMARY="no summary (exit $CMP_RC, see $OUT/$name.err)"
    log "$name: $CMP_SUMMARY"
}
compare compare

# 7. The same range queries from a block: Vigil restarted after a graceful shutdown.
: >"$OUT/bench-vigil-blocks-range.jsonl"
BLOCKS_CMP_SUMMARY="not run (QB_BLOCKS=0)"
BLOCKS_CMP_RC=0
if [[ $BLOCKS == 1 ]]; then
    kill -TERM "$VPID" 2>/dev/null || true
    wait_exit "$VPID" 120 || die "vigil did not stop within 120 s of SIGTERM (see $OUT/vigil.log)"
    "$VIGIL" serve --listen "127.0.0.1:$VPORT" --data-dir "$WORK/vigil-data" --wal-fsync true "${vextra[@]}" \
        >>"$OUT/vigil.log" 2>&1 &
    VPID=$!
    STARTED_PIDS+=("$VPID")
    wait_http "$VURL/ready" 120 || die "vigil did not become ready again (see $OUT/vigil.log)"
    BLOCK_FILES=$(find "$WORK/vigil-data" -path '*metrics/blocks*' -name samples.parquet | wc -l)
    log "vigil restarted (pid $VPID) with $BLOCK_FILES metrics block(s)"
    bench vigil-blocks "$VURL" "$VPID" range
    CMP_SUMMARY_HEAD=$CMP_SUMMARY CMP_RC_HEAD=$CMP_RC
    compare compare-blocks
    BLOCKS_CMP_SUMMARY=$CMP_SUMMARY BLOCKS_CMP_RC=$CMP_RC
    CMP_SUMMARY=$CMP_SUMMARY_HEAD CMP_RC=$CMP_RC_HEAD
fi

# Stop both (the trap would too; this way their logs end cleanly).
kill -TERM "$VPID" "$PPID_" 2>/dev/null || true
wait_exit "$VPID" 60 || { kill -KILL "$VPID" 2>/dev/null || true; wait "$VPID" 2>/dev/null || true; }
wait_exit "$PPID_" 60 || { kill -KILL "$PPID_" 2>/dev/null || true; wait "$PPID_" 2>/dev/null || true; }

# ---------------------------------------------------------------------------------------------
# Results: results.json and a markdown summary.
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
jq -n --arg date "$DATE" --arg rev "$GIT_REV" --argjson dirty "$GIT_DIRTY" --arg built "$VIGIL_BUILT" --arg prom "$PROM_VERSION" \
    --argjson series "$SERIES" --argjson samples "$SAMPLES" --argjson start_ms "$S" --argjson qstart "$QSTART" --argjson qend "$E" \
    --arg step "$STEP" --argjson runs "$RUNS" --argjson cpus "$(nproc)" \
    --slurpfile lv "$OUT/load-vigil.json" --slurpfile lp "$OUT/load-prometheus.json" \
    --slurpfile vr "$OUT/bench-vigil-range.jsonl" --slurpfile pr "$OUT/bench-prometheus-range.jsonl" \
    --slurpfile vi "$OUT/bench-vigil-instant.jsonl" --slurpfile pi "$OUT/bench-prometheus-instant.jsonl" \
    --slurpfile vb "$OUT/bench-vigil-blocks-range.jsonl" --arg bcmp "$BLOCKS_CMP_SUMMARY" --argjson bcmp_rc "$BLOCKS_CMP_RC" \
    --argjson vhl "$V_HWM_LOAD" --argjson phl "$P_HWM_LOAD" --argjson vrl "$V_RSS_LOAD" --argjson prl "$P_RSS_LOAD" \
    --argjson vhq "$V_HWM_Q" --argjson phq "$P_HWM_Q" --argjson vrq "$V_RSS_Q" --argjson prq "$P_RSS_Q" \
    --argjson vs "$V_SERIES" --argjson ps "$P_SERIES" --argjson phases "$PHASES" --arg cmp "$CMP_SUMMARY" --argjson cmp_rc "$CMP_RC" \
    '{date: $date, cpus: $cpus, vigil: {commit: $rev, uncommitted_files: $dirty, built: $built}, prometheus_version: $prom,
      data: {series: $series, samples_per_series: $samples, start_ms: $start_ms}, query_range: {start: $qstart, end: $qend, step: $step, runs: $runs},
      load: {vigil: $lv[0], prometheus: $lp[0]}, head_series: {vigil: $vs, prometheus: $ps},
      rss: {vigil: {after_load: {vmhwm: $vhl, vmrss: $vrl}, after_queries: {vmhwm: $vhq, vmrss: $vrq}},
            prometheus: {after_load: {vmhwm: $phl, vmrss: $prl}, after_queries: {vmhwm: $phq, vmrss: $prq}}},
      queries: {vigil: {range: $vr, instant: $vi, range_from_blocks: $vb}, prometheus: {range: $pr, instant: $pi}},
      phases: $phases, compare: {summary: $cmp, exit: $cmp_rc}, compare_from_blocks: {summary: $bcmp, exit: $bcmp_rc}}' >"$OUT/results.json"

{
    echo "Query latency, $DATE, $(nproc) CPUs; vigil built $VIGIL_BUILT at $GIT_REV ($GIT_DIRTY uncommitted changes under crates/ src/); prometheus $PROM_VERSION"
    echo "Data: obsload metrics-write --series $SERIES --samples-per-series $SAMPLES --start-ms $S --seed $SEED --concurrency $CONCURRENCY --batch $BATCH" \
        "(vigil: $(jq -r '.load.vigil.samples_ok // "?"' "$OUT/results.json") samples ok, $V_SERIES head series;" \
        "prometheus: $(jq -r '.load.prometheus.samples_ok // "?"' "$OUT/results.json") samples ok, $P_SERIES head series)"
    echo "Queries: obsload query-bench --queries $(basename "$QUERIES") --start $QSTART --end $E --step $STEP --runs $RUNS [--instant]; ms, p50 (min–max) of $RUNS runs after a warm-up"
    echo
    echo "| # | query | Vigil range p50 (min–max) | Prometheus range p50 (min–max) | Vigil / Prom | Vigil instant p50 | Prometheus instant p50 | peak RSS MiB, range: Vigil / Prom | anchors p50: Prom 2.42 / VM | Vigil range from blocks p50 (min–max) |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    jq -r '
        def f: if . == null then "-" elif . >= 100 then (. | round | tostring) else ((. * 10 | round) / 10 | tostring) end;
        def cell: if . == null then "n/a" elif .status != "ok" then (.status | tostring) else "\(.p50_ms | f) (\(.min_ms | f)–\(.max_ms | f))" end;
        def p50: if . == null then "n/a" elif .status != "ok" then (.status | tostring) else (.p50_ms | f) end;
        def mib: if . == null then "?" else (. / 1048576 | round | tostring) end;
        def ratio(a; b): if a == null or b == null or a.status != "ok" or b.status != "ok" or b.p50_ms == 0 then "-"
                         else ((a.p50_ms / b.p50_ms * 100 | round) / 100 | tostring) + "×" end;
        [[1045, 104], [537, 69], [64, 17], [296, 41], [446, 73], [1366, 253]] as $anch
        | .queries as $q
        | range(0; $q.vigil.range | length) as $i
        | ($q.vigil.range[$i]) as $vr | ($q.prometheus.range[$i]) as $pr
        | ($q.vigil.instant[$i]) as $vi | ($q.prometheus.instant[$i]) as $pi | ($q.vigil.range_from_blocks[$i]) as $vb
        | "| \($i + 1) | `\($vr.query)` | \($vr | cell) | \($pr | cell) | \(ratio($vr; $pr)) | \($vi | p50) | \($pi | p50) | \($vr.peak_rss_bytes | mib) / \($pr.peak_rss_bytes | mib) | \(if $i < ($anch | length) then "\($anch[$i][0]) / \($anch[$i][1])" else "" end) | \($vb | cell) |"
    ' "$OUT/results.json"
    echo
    jq -r '
        def mb: ((. / 1048576 * 10 | round) / 10 | tostring) + " MiB";
        "Peak RSS (VmHWM): Vigil \(.rss.vigil.after_load.vmhwm | mb) after the load, \(.rss.vigil.after_queries.vmhwm | mb) after the queries (RSS now \(.rss.vigil.after_queries.vmrss | mb)); " +
        "Prometheus \(.rss.prometheus.after_load.vmhwm | mb) after the load, \(.rss.prometheus.after_queries.vmhwm | mb) after the queries (RSS now \(.rss.prometheus.after_queries.vmrss | mb))."
    ' "$OUT/results.json"
    jq -r '"CPU during the query phases (target s / whole machine s, wall s): " + ([.phases[] | "\(.target) \(.kind) \(.target_cpu_seconds) / \(.machine_busy_cpu_seconds), \(.wall_seconds)"] | join("; "))' "$OUT/results.json"
    echo "Compare (A = Prometheus, B = Vigil, range + instant): $CMP_SUMMARY"
    echo "Compare with Vigil reading the block (after the restart): $BLOCKS_CMP_SUMMARY"
    for cmp in compare compare-blocks; do
        if [[ -s $OUT/$cmp.out ]] && grep -vqE '^(compared |timing )' "$OUT/$cmp.out"; then
            echo
            echo "Mismatches (obsload $cmp):"
            echo '```'
            grep -vE '^(compared |timing )' "$OUT/$cmp.out" | cut -c1-400 | head -n 40
            echo '```'
        fi
    done
} | tee "$OUT/summary.md"
log "raw results: $OUT"
