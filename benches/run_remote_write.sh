#!/usr/bin/env bash
# Remote-write benchmark of Vigil (and, where installed, Prometheus 2.42 as the reference).
#
# For every run in RW_RUNS (target:client pairs) it starts the target on a fresh temporary
# data dir on a free loopback port, pushes the same load, and records:
#   - samples/s acknowledged (Vigil acks only after an fsync'd WAL group commit),
#   - peak RSS: VmHWM of the process at the end, and the largest RSS the target's own /metrics
#     reported while the load ran (polled every second),
#   - Vigil only: the data dir is copied while Vigil is frozen (SIGSTOP) right after the load,
#     i.e. exactly what a SIGKILL at that moment would leave on disk (every acked write is
#     fsync'd, nothing is cut yet, the WAL holds everything); then SIGTERM makes Vigil cut the
#     whole head into blocks: bytes of all block files (series.parquet, samples.parquet,
#     index.bin, meta.json) / samples in the blocks (meta.json num_samples);
#   - Vigil only: a second Vigil is started on the copy and the WAL replay of all samples is
#     timed (its own "wal replayed ... samples=N elapsed_ms=M" log line, and time to /ready).
#
# Clients: "load" = benches' remote-write-load, "obsload" = /work/shared/bin/obsload
# metrics-write (the outside client the issue's anchors were measured with).
#
# Environment (defaults in brackets):
#   RW_SERIES [100000] RW_SAMPLES_PER_SERIES [120] RW_CONCURRENCY [4] RW_BATCH [2000] RW_SEED [1]
#   RW_INTERVAL_MS [15000]
#   RW_RUNS ["vigil:load vigil:obsload prometheus:load prometheus:obsload"]
#   RW_REPEAT [1]          run the whole list this many times (the machine is shared: repeat)
#   RW_MAX_SECONDS [900]   bound of each load run
#   RW_BUILD [1]           cargo build --release the two binaries first
#   RW_WORK_DIR [mktemp]   scratch space (data dirs are deleted after each run unless RW_KEEP=1)
#   RW_OUT [$RW_WORK_DIR/results]  results.jsonl, summary.md, logs
#   RW_VIGIL_ARGS []       extra `vigil serve` flags, e.g. "--wal-fsync false"
#   RW_LOAD_ARGS []        extra flags for both clients, e.g. "--header 'X-Scope-OrgID: a'"
#   RW_PERF [0]            1: `perf record` Vigil during the vigil:load run ($RW_OUT/perf-*.data)
#   RW_PERF_ARGS ["-F 499 --call-graph dwarf,8192"]
#   OBSLOAD [/work/shared/bin/obsload]  PROMETHEUS [/usr/bin/prometheus]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

SERIES=${RW_SERIES:-100000}
SAMPLES=${RW_SAMPLES_PER_SERIES:-120}
CONCURRENCY=${RW_CONCURRENCY:-4}
BATCH=${RW_BATCH:-2000}
SEED=${RW_SEED:-1}
INTERVAL_MS=${RW_INTERVAL_MS:-15000}
RUNS=${RW_RUNS:-"vigil:load vigil:obsload prometheus:load prometheus:obsload"}
REPEAT=${RW_REPEAT:-1}
MAX_SECONDS=${RW_MAX_SECONDS:-900}
BUILD=${RW_BUILD:-1}
KEEP=${RW_KEEP:-0}
PERF=${RW_PERF:-0}
PERF_ARGS=${RW_PERF_ARGS:-"-F 499 --call-graph dwarf,8192"}
VIGIL_ARGS=${RW_VIGIL_ARGS:-}
LOAD_ARGS=${RW_LOAD_ARGS:-}
OBSLOAD=${OBSLOAD:-/work/shared/bin/obsload}
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
WORK=${RW_WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vigil-rw-bench.XXXXXX")}
OUT=${RW_OUT:-$WORK/results}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VIGIL=$TARGET_DIR/release/vigil
LOADGEN=$TARGET_DIR/release/remote-write-load

mkdir -p "$WORK" "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

log() { echo "[run_remote_write $(date +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }
for tool in curl jq ss; do command -v "$tool" >/dev/null || die "$tool is required"; done

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
        fi
    done
    if [[ $KEEP != 1 ]]; then
        find "$WORK" -mindepth 1 -maxdepth 1 -type d \( -name 'run-*' -o -name bin \) -exec rm -rf {} + 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }
# busy_seconds: CPU seconds the whole machine has spent busy (all processes) since boot
# (user, nice, system, irq, softirq; not steal) and steal_seconds: time the hypervisor gave away.
busy_seconds() { awk -v t="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8) / t }' /proc/stat; }
steal_seconds() { awk -v t="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f\n", $9 / t }' /proc/stat; }
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

vmhwm_bytes() { awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_seconds() {
    local tck
    tck=$(getconf CLK_TCK)
    awk -v t="$tck" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# rss_poller URL NAME PID OUTFILE: writes the largest value of metric NAME seen while PID lives.
rss_poller() {
    local url=$1 name=$2 pid=$3 out=$4 max=0 v i
    for i in $(seq 1 $((MAX_SECONDS + 120))); do
        kill -0 "$pid" 2>/dev/null || break
        v=$(metric "$url" "$name")
        ((v > max)) && max=$v
        echo "$max" >"$out"
        sleep 1
    done
}

# run_client CLIENT URL LOGPREFIX: runs one load client; its JSON summary goes to LOGPREFIX.json.
run_client() {
    local client=$1 url=$2 prefix=$3 bin
    local -a flags=(--url "$url" --series "$SERIES" --samples-per-series "$SAMPLES" --concurrency "$CONCURRENCY"
        --batch "$BATCH" --seed "$SEED" --interval-ms "$INTERVAL_MS" --max-seconds "$MAX_SECONDS")
    local -a extra=()
    [[ -n $LOAD_ARGS ]] && eval "extra=($LOAD_ARGS)"
    case $client in
        load) bin=("$LOADGEN") ;;
        obsload) bin=("$OBSLOAD" metrics-write) ;;
        *) die "unknown client $client" ;;
    esac
    log "load: ${bin[*]} ${flags[*]} ${extra[*]}"
    echo "${bin[*]} ${flags[*]} ${extra[*]}" >"$prefix.cmd"
    timeout --signal=TERM --kill-after=10 $((MAX_SECONDS + 120)) "${bin[@]}" "${flags[@]}" "${extra[@]}" \
        >"$prefix.out" 2>"$prefix.err" || log "client exited with status $? (see $prefix.err)"
    tail -n 1 "$prefix.out" | jq -c . >"$prefix.json" 2>/dev/null || echo '{}' >"$prefix.json"
    log "load summary: $(cat "$prefix.json")"
}

# block_stats DIR: JSON with the sizes of every metrics block file below DIR and their samples.
block_stats() {
    local dir=$1
    local files
    files=$(find "$dir" -path '*/metrics/blocks/*' -type f -printf '%f %s\n' 2>/dev/null || true)
    local samples=0 blocks=0 m
    while IFS= read -r m; do
        [[ -z $m ]] && continue
        samples=$((samples + $(jq '.num_samples // 0' "$m")))
        blocks=$((blocks + 1))
    done < <(find "$dir" -path '*/metrics/blocks/*' -name meta.json -type f 2>/dev/null)
    echo "$files" | awk -v s="$samples" -v b="$blocks" '
        NF == 2 { by[$1] += $2; t += $2 }
        END {
            printf "{\"blocks\":%d,\"block_samples\":%d,\"block_bytes\":%d,\"files\":{", b, s, t
            sep = ""
            for (f in by) { printf "%s\"%s\":%d", sep, f, by[f]; sep = "," }
            printf "},\"bytes_per_sample\":%s,\"samples_parquet_bytes_per_sample\":%s}\n",
                (s > 0 ? sprintf("%.3f", t / s) : "null"), (s > 0 ? sprintf("%.3f", by["samples.parquet"] / s) : "null")
        }'
}

# start_vigil DATA_DIR PORT LOG: starts vigil as a direct child of this shell (so `wait` reaps
# it; PID 1 of a container may not) and sets VIGIL_PID.
start_vigil() {
    local -a extra=()
    [[ -n $VIGIL_ARGS ]] && eval "extra=($VIGIL_ARGS)"
    "$VIGIL" serve --listen "127.0.0.1:$2" --data-dir "$1" --wal-fsync true "${extra[@]}" >>"$3" 2>&1 &
    VIGIL_PID=$!
    STARTED_PIDS+=("$VIGIL_PID")
}

# stop_vigil PID LOG: SIGTERM, then waits for the exit. Sets SHUTDOWN_S (seconds until the
# shutdown work was done: exit, or the "shutdown complete"/"wal truncated" log line) and
# EXITED (1 if the process exited by itself). A process that finished its shutdown work but is
# still alive 15 s later is killed (and EXITED=0), as is one that takes over 600 s.
stop_vigil() {
    local pid=$1 vlog=$2 t0 done_ms="" i
    local lines
    lines=$(wc -l <"$vlog")
    t0=$(now_ms)
    kill -TERM "$pid"
    EXITED=0
    for i in $(seq 1 6000); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || true
            EXITED=1
            [[ -z $done_ms ]] && done_ms=$(now_ms)
            break
        fi
        if [[ -z $done_ms ]] && tail -n +"$((lines + 1))" "$vlog" | grep -qE 'shutdown complete|wal truncated'; then
            done_ms=$(now_ms)
        fi
        if [[ -n $done_ms ]] && (($(now_ms) - done_ms > 15000)); then
            log "vigil finished its shutdown work but has not exited 15 s later; killing it"
            break
        fi
        sleep 0.1
    done
    if ((EXITED == 0)); then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    SHUTDOWN_S=$(awk -v a="${done_ms:-$(now_ms)}" -v b="$t0" 'BEGIN { printf "%.3f", (a - b) / 1000 }')
}

run_vigil() { # CLIENT
    local client=$1 name="vigil-$1" dir="$WORK/run-vigil-$1-r$REP" port pid url
    mkdir -p "$dir"
    port=$(free_port)
    url="http://127.0.0.1:$port"
    local prefix="$OUT/$name-r$REP"
    log "== $name: vigil on $url, data dir $dir/data"
    start_vigil "$dir/data" "$port" "$prefix.vigil.log"
    pid=$VIGIL_PID
    wait_http "$url/ready" 60 || die "vigil did not become ready (see $prefix.vigil.log)"
    local cpu0 perf_pid=""
    cpu0=$(cpu_seconds "$pid")
    if [[ $PERF == 1 && $client == load ]] && command -v perf >/dev/null; then
        # shellcheck disable=SC2086
        perf record $PERF_ARGS -p "$pid" -o "$OUT/perf-$name-r$REP.data" >"$OUT/perf-$name-r$REP.log" 2>&1 &
        perf_pid=$!
        STARTED_PIDS+=("$perf_pid")
    fi
    rss_poller "$url" vigil_process_resident_memory_bytes "$pid" "$prefix.rssmax" &
    local poller=$!
    STARTED_PIDS+=("$poller")
    local load_before busy0 busy1 steal0 steal1
    load_before=$(cut -d' ' -f1 /proc/loadavg)
    busy0=$(busy_seconds)
    steal0=$(steal_seconds)
    run_client "$client" "$url/api/v1/push" "$prefix"
    busy1=$(busy_seconds)
    steal1=$(steal_seconds)
    [[ -n $perf_pid ]] && { kill -INT "$perf_pid" 2>/dev/null || true; wait_exit "$perf_pid" 60 || true; }
    local cpu1 hwm rss_now head_series head_mem ingested rss_max
    cpu1=$(cpu_seconds "$pid")
    sleep 2 # let the 1 s maintenance tick refresh the head gauges
    hwm=$(vmhwm_bytes "$pid")
    rss_now=$(metric "$url" vigil_process_resident_memory_bytes)
    head_series=$(metric "$url" vigil_head_series)
    head_mem=$(metric "$url" vigil_head_memory_bytes)
    ingested=$(metric "$url" vigil_samples_ingested_total)
    kill "$poller" 2>/dev/null || true
    wait "$poller" 2>/dev/null || true
    rss_max=$(cat "$prefix.rssmax" 2>/dev/null || echo 0)
    ((rss_now > rss_max)) && rss_max=$rss_now
    log "vigil: VmHWM=$hwm rss_metric_max=$rss_max head_series=$head_series ingested=$ingested cpu=$(fsub "$cpu1" "$cpu0")s"

    # Crash copy: freeze, copy, thaw.
    kill -STOP "$pid"
    cp -a "$dir/data" "$dir/crash-copy"
    kill -CONT "$pid"
    local wal_bytes
    wal_bytes=$(du -sb "$dir/crash-copy/wal" | cut -f1)

    # Clean shutdown cuts the head into blocks.
    local t0 t1 shutdown_s exited
    stop_vigil "$pid" "$prefix.vigil.log"
    shutdown_s=$SHUTDOWN_S
    exited=$EXITED
    local blocks
    blocks=$(block_stats "$dir/data")
    log "blocks after SIGTERM (shutdown work ${shutdown_s}s, exited by itself: $exited): $blocks"

    # WAL replay on the crash copy.
    local port2 pid2 ready_ms replay_line hwm2
    port2=$(free_port)
    t0=$(now_ms)
    start_vigil "$dir/crash-copy" "$port2" "$prefix.replay.log"
    pid2=$VIGIL_PID
    wait_http "http://127.0.0.1:$port2/ready" 600 || log "replaying vigil did not become ready"
    t1=$(now_ms)
    ready_ms=$((t1 - t0))
    hwm2=$(vmhwm_bytes "$pid2")
    kill -KILL "$pid2" 2>/dev/null || true
    wait "$pid2" 2>/dev/null || true
    replay_line=$(grep -m1 'wal replayed' "$prefix.replay.log" || true)
    local r_samples r_ms
    r_samples=$(sed -n 's/.*samples=\([0-9]*\).*/\1/p' <<<"$replay_line")
    r_ms=$(sed -n 's/.*elapsed_ms=\([0-9]*\).*/\1/p' <<<"$replay_line")
    log "replay: ${replay_line:-no 'wal replayed' line} (ready after ${ready_ms} ms)"

    jq -nc --arg target vigil --arg client "$client" --argjson rep "$REP" --slurpfile load "$prefix.json" \
        --argjson hwm "$hwm" --argjson rss_max "$rss_max" --argjson head_series "$head_series" \
        --argjson head_mem "$head_mem" --argjson ingested "$ingested" \
        --argjson cpu "$(fsub "$cpu1" "$cpu0")" --argjson wal_bytes "$wal_bytes" \
        --argjson shutdown_s "$shutdown_s" --argjson exited "$exited" --argjson blocks "$blocks" \
        --argjson r_samples "${r_samples:-null}" --argjson r_ms "${r_ms:-null}" --argjson ready_ms "$ready_ms" \
        --argjson hwm2 "$hwm2" --arg loadavg "$load_before" --argjson busy "$(fsub "$busy1" "$busy0")" --argjson steal "$(fsub "$steal1" "$steal0")" \
        '{target: $target, client: $client, rep: $rep, load: $load[0], peak_rss_bytes: $hwm, rss_metric_max_bytes: $rss_max,
          head_series: $head_series, head_memory_bytes: $head_mem, samples_ingested: $ingested,
          cpu_seconds_during_load: $cpu, wal_bytes: $wal_bytes,
          wal_bytes_per_sample: (if $ingested > 0 then ($wal_bytes / $ingested * 1000 | round / 1000) else null end),
          shutdown_seconds: $shutdown_s, exited_after_sigterm: ($exited == 1), blocks: $blocks,
          replay: {samples: $r_samples, elapsed_ms: $r_ms, ready_ms: $ready_ms, peak_rss_bytes: $hwm2},
          loadavg_before: $loadavg, machine_busy_cpu_seconds_during_load: $busy, steal_seconds_during_load: $steal}' >>"$RESULTS"
    [[ $KEEP == 1 ]] || rm -rf "$dir"
}

run_prometheus() { # CLIENT
    local client=$1 name="prometheus-$1" dir="$WORK/run-prometheus-$1-r$REP" port pid url
    mkdir -p "$dir/tsdb"
    port=$(free_port)
    url="http://127.0.0.1:$port"
    local prefix="$OUT/$name-r$REP"
    printf 'global:\n  scrape_interval: 1m\n' >"$dir/prometheus.yml"
    log "== $name: prometheus on $url"
    "$PROMETHEUS" --config.file "$dir/prometheus.yml" --storage.tsdb.path "$dir/tsdb" \
        --web.listen-address "127.0.0.1:$port" --web.enable-remote-write-receiver --log.level warn \
        >"$prefix.prometheus.log" 2>&1 &
    pid=$!
    STARTED_PIDS+=("$pid")
    wait_http "$url/-/ready" 60 || die "prometheus did not become ready (see $prefix.prometheus.log)"
    local cpu0 cpu1 hwm rss_max head_series appended wal_bytes
    cpu0=$(cpu_seconds "$pid")
    rss_poller "$url" process_resident_memory_bytes "$pid" "$prefix.rssmax" &
    local poller=$!
    STARTED_PIDS+=("$poller")
    local load_before busy0 busy1 steal0 steal1
    load_before=$(cut -d' ' -f1 /proc/loadavg)
    busy0=$(busy_seconds)
    steal0=$(steal_seconds)
    run_client "$client" "$url/api/v1/write" "$prefix"
    busy1=$(busy_seconds)
    steal1=$(steal_seconds)
    cpu1=$(cpu_seconds "$pid")
    hwm=$(vmhwm_bytes "$pid")
    head_series=$(metric "$url" prometheus_tsdb_head_series)
    appended=$(metric "$url" prometheus_tsdb_head_samples_appended_total)
    kill "$poller" 2>/dev/null || true
    wait "$poller" 2>/dev/null || true
    rss_max=$(cat "$prefix.rssmax" 2>/dev/null || echo 0)
    wal_bytes=$(du -sb "$dir/tsdb/wal" | cut -f1)
    kill -TERM "$pid"
    wait_exit "$pid" 120 || kill -KILL "$pid" 2>/dev/null || true
    log "prometheus: VmHWM=$hwm rss_metric_max=$rss_max head_series=$head_series appended=$appended"
    jq -nc --arg target prometheus --arg client "$client" --argjson rep "$REP" --slurpfile load "$prefix.json" \
        --argjson hwm "$hwm" --argjson rss_max "$rss_max" --argjson head_series "$head_series" \
        --arg loadavg "$load_before" --argjson busy "$(fsub "$busy1" "$busy0")" --argjson steal "$(fsub "$steal1" "$steal0")" --argjson ingested "$appended" --argjson cpu "$(fsub "$cpu1" "$cpu0")" --argjson wal_bytes "$wal_bytes" \
        '{target: $target, client: $client, rep: $rep, load: $load[0], peak_rss_bytes: $hwm, rss_metric_max_bytes: $rss_max,
          head_series: $head_series, samples_ingested: $ingested, cpu_seconds_during_load: $cpu, wal_bytes: $wal_bytes,
          wal_bytes_per_sample: (if $ingested > 0 then ($wal_bytes / $ingested * 1000 | round / 1000) else null end),
          loadavg_before: $loadavg, machine_busy_cpu_seconds_during_load: $busy, steal_seconds_during_load: $steal}' >>"$RESULTS"
    [[ $KEEP == 1 ]] || rm -rf "$dir"
}

# ---------------------------------------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --bin vigil && cargo build --release -p vigil-benches --bin remote-write-load) >&2
fi
[[ -x $VIGIL ]] || die "$VIGIL missing (RW_BUILD=1 builds it)"
# Other people rebuild target/release/vigil while this runs: every run uses one snapshot of it.
mkdir -p "$WORK/bin"
cp "$VIGIL" "$WORK/bin/vigil"
VIGIL_BUILT=$(date -u -r "$VIGIL" +%Y-%m-%dT%H:%M:%SZ)
VIGIL=$WORK/bin/vigil
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
GIT_DIRTY=$(git -C "$ROOT" status --porcelain -- crates src Cargo.toml Cargo.lock 2>/dev/null | wc -l)
log "vigil binary built $VIGIL_BUILT, tree at $GIT_REV ($GIT_DIRTY uncommitted changes under crates/ src/)"

log "work dir $WORK, results in $OUT"
log "load: --series $SERIES --samples-per-series $SAMPLES --concurrency $CONCURRENCY --batch $BATCH --seed $SEED"
for REP in $(seq 1 "$REPEAT"); do
for run in $RUNS; do
    target=${run%%:*}
    client=${run#*:}
    case $client in
        load) [[ -x $LOADGEN ]] || die "$LOADGEN missing" ;;
        obsload) [[ -x $OBSLOAD ]] || { log "skipping $run: $OBSLOAD not found"; continue; } ;;
        *) die "unknown client in $run" ;;
    esac
    case $target in
        vigil) run_vigil "$client" ;;
        prometheus)
            if [[ -x $PROMETHEUS ]]; then run_prometheus "$client"; else log "skipping $run: $PROMETHEUS not found"; fi ;;
        *) die "unknown target in $run" ;;
    esac
done
done

# ---------------------------------------------------------------------------------------------
# Summary table (markdown) on stdout and in summary.md.
{
    echo "Remote-write benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs; vigil built $VIGIL_BUILT at $GIT_REV ($GIT_DIRTY uncommitted changes under crates/ src/)"
    echo "Load: --series $SERIES --samples-per-series $SAMPLES --concurrency $CONCURRENCY --batch $BATCH --seed $SEED"
    echo
    echo "| target | client | run | samples ok | seconds | samples/s | p50 / p99 ms | peak RSS (VmHWM) | RSS metric max | target CPU s | client CPU s | machine busy s | WAL B/sample | block B/sample | WAL replay (peak RSS) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    jq -r '
        def mb: if . == null then "n/a" else ((. / 1048576 * 10 | round) / 10 | tostring) + " MB" end;
        "| \(.target) | \(.client) | \(.rep) | \(.load.samples_ok // "n/a") | \(.load.seconds // "n/a") | \(.load.samples_per_sec // "n/a") | \(.load.latency_ms.p50 // "n/a") / \(.load.latency_ms.p99 // "n/a") | \(.peak_rss_bytes | mb) | \(.rss_metric_max_bytes | mb) | \(.cpu_seconds_during_load) | \(.load.send_cpu_seconds // .load.gen_cpu_seconds // "n/a") | \(.machine_busy_cpu_seconds_during_load) | \(.wal_bytes_per_sample // "n/a") | \(.blocks.bytes_per_sample // "n/a") | \(if .replay then "\(.replay.samples // "?") samples in \(.replay.elapsed_ms // "?") ms, ready after \(.replay.ready_ms) ms (\(.replay.peak_rss_bytes | mb))" else "n/a" end) |"
    ' "$RESULTS"
    vigil_rate=$(jq -s '[.[] | select(.target == "vigil" and .client == "load")][0].load.samples_per_sec // empty' "$RESULTS")
    prom_rate=$(jq -s '[.[] | select(.target == "prometheus" and .client == "load")][0].load.samples_per_sec // empty' "$RESULTS")
    if [[ -n $vigil_rate && -n $prom_rate && $prom_rate != 0 ]]; then
        echo
        echo "Vigil / Prometheus (remote-write-load): $(awk -v a="$vigil_rate" -v b="$prom_rate" 'BEGIN { printf "%.2f", a / b }')x samples/s"
    fi
    vigil_rss=$(jq -s '[.[] | select(.target == "vigil" and .client == "load")][0].peak_rss_bytes // empty' "$RESULTS")
    prom_rss=$(jq -s '[.[] | select(.target == "prometheus" and .client == "load")][0].peak_rss_bytes // empty' "$RESULTS")
    if [[ -n $vigil_rss && -n $prom_rss && $prom_rss != 0 ]]; then
        echo "Vigil / Prometheus (remote-write-load): $(awk -v a="$vigil_rss" -v b="$prom_rss" 'BEGIN { printf "%.2f", a / b }')x peak RSS"
    fi
    echo
    echo "Targets: >= 1.5M samples/s with fsync'd acks, <= 150 MB peak RSS, <= 2.0 bytes/sample, WAL replay of 12M samples < 2 s."
} | tee "$OUT/summary.md"
log "raw results: $RESULTS"
