#!/usr/bin/env bash
# Measures a real Prometheus (the `prometheus` binary on PATH, e.g. Debian's 2.42 from
# `apt-get install prometheus`) with the node-exporter-like workload of
# server/examples/workload.rs, as a baseline for OpenData's time series database:
#
#   (a) ingest:  a fresh Prometheus receives INGEST_SERIES series x INGEST_SCRAPES scrapes
#                through remote write (INGEST_SERIES_PER_REQUEST series x
#                INGEST_SAMPLES_PER_SERIES samples per request, CONCURRENCY senders);
#                reports samples/s and request latency.
#   (b) storage: a second fresh Prometheus receives STORAGE_HOURS hours of STORAGE_SERIES
#                series (time-ordered, ending now), cuts 2h blocks (head compaction runs
#                once the head spans more than 1.5 x 2h), and the script reports the
#                bytes of the persisted blocks (chunks + index + meta.json + tombstones)
#                per sample (meta.json stats.numSamples).
#
# Each phase uses its own fresh data directory under BENCH_DIR (default /tmp; put it on a
# real disk, not tmpfs). Everything is removed on exit, the Prometheus processes stopped,
# unless KEEP_DATA=1. Knobs (environment): PROMETHEUS, PROMTOOL, BENCH_DIR, KEEP_DATA,
# CONCURRENCY, INGEST_SERIES, INGEST_SCRAPES, INGEST_SERIES_PER_REQUEST,
# INGEST_SAMPLES_PER_SERIES, STORAGE_SERIES, STORAGE_HOURS, STORAGE_JITTERS,
# SKIP_INGEST=1, SKIP_STORAGE=1.
#
# NATIVE_HISTOGRAMS=1 measures native histograms instead: Prometheus runs with
# --enable-feature=native-histograms and the workload pushes only the classic histograms'
# native form (schema 3, 28 histogram series per 1,000 workload series), so ingest is in
# histogram samples/s and storage in bytes per histogram sample.
#
# Usage: scripts/bench-prometheus.sh        (builds the example with cargo first)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

PROMETHEUS=${PROMETHEUS:-prometheus}
PROMTOOL=${PROMTOOL:-promtool}
BENCH_DIR=${BENCH_DIR:-/tmp}
KEEP_DATA=${KEEP_DATA:-0}
CONCURRENCY=${CONCURRENCY:-4}
INGEST_SERIES=${INGEST_SERIES:-100000}
INGEST_SCRAPES=${INGEST_SCRAPES:-120}
INGEST_SERIES_PER_REQUEST=${INGEST_SERIES_PER_REQUEST:-200}
INGEST_SAMPLES_PER_SERIES=${INGEST_SAMPLES_PER_SERIES:-10}
STORAGE_SERIES=${STORAGE_SERIES:-10000}
STORAGE_HOURS=${STORAGE_HOURS:-10}
# Timestamp jitters (± ms) to run the storage phase with: 3 is the workload's default;
# 0 shows what perfectly regular timestamps cost (Prometheus's own scraper aligns
# timestamps within 2 ms of the expected one, --scrape.timestamp-tolerance).
STORAGE_JITTERS=${STORAGE_JITTERS:-3 0}
NATIVE_HISTOGRAMS=${NATIVE_HISTOGRAMS:-0}
PROM_EXTRA=()
PUSH_EXTRA=()
if [ "$NATIVE_HISTOGRAMS" = 1 ]; then
  PROM_EXTRA=(--enable-feature=native-histograms)
  PUSH_EXTRA=(--native-histograms)
fi

log() { printf '==> %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in "$PROMETHEUS" "$PROMTOOL" curl jq python3; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y prometheus curl jq)"
done

log "building the workload example"
cargo build --quiet --release -p opendata-server --example workload
WORKLOAD="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/workload"
[ -x "$WORKLOAD" ] || die "$WORKLOAD was not built"

WORK=$(mktemp -d "$BENCH_DIR/opendata-bench-prometheus.XXXXXX")
PROM_PID=""

stop_prometheus() {
  if [ -n "$PROM_PID" ] && kill -0 "$PROM_PID" 2>/dev/null; then
    kill "$PROM_PID" 2>/dev/null || true
    wait "$PROM_PID" 2>/dev/null || true
  fi
  PROM_PID=""
}

cleanup() {
  stop_prometheus
  if [ "$KEEP_DATA" = 1 ]; then
    log "data kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_prometheus DIR: a fresh Prometheus on DIR/data, no scrape targets; sets PORT, URL.
start_prometheus() {
  local dir=$1
  mkdir -p "$dir/data"
  cat >"$dir/prometheus.yml" <<'EOF'
global:
  scrape_interval: 1h
  evaluation_interval: 1h
EOF
  PORT=$(free_port)
  URL="http://127.0.0.1:$PORT"
  "$PROMETHEUS" \
    --config.file="$dir/prometheus.yml" \
    --storage.tsdb.path="$dir/data" \
    --storage.tsdb.retention.time=30d \
    --storage.tsdb.min-block-duration=2h \
    --storage.tsdb.max-block-duration=2h \
    --web.listen-address="127.0.0.1:$PORT" \
    --web.enable-remote-write-receiver \
    --web.enable-admin-api \
    "${PROM_EXTRA[@]}" \
    >"$dir/prometheus.log" 2>&1 &
  PROM_PID=$!
  for _ in $(seq 1 100); do
    if curl -sf "$URL/-/ready" >/dev/null 2>&1; then
      log "prometheus $("$PROMETHEUS" --version 2>&1 | head -1 | awk '{print $3}') ready on $URL (pid $PROM_PID, data $dir/data)"
      return
    fi
    kill -0 "$PROM_PID" 2>/dev/null || { cat "$dir/prometheus.log" >&2; die "prometheus exited"; }
    sleep 0.2
  done
  die "prometheus did not become ready"
}

div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a / b }'; }

# metric NAME: the value of an unlabelled metric of the running Prometheus.
metric() {
  curl -sf "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); data under $BENCH_DIR ($(df -T "$BENCH_DIR" | awk 'NR==2 {print $2}'))"

# ---------------------------------------------------------------------------------------
if [ "${SKIP_INGEST:-0}" != 1 ]; then
  log "(a) ingest: $INGEST_SERIES series x $INGEST_SCRAPES scrapes"
  start_prometheus "$WORK/ingest"
  "$WORKLOAD" push --url "$URL/api/v1/write" \
    --series "$INGEST_SERIES" --scrapes "$INGEST_SCRAPES" \
    --series-per-request "$INGEST_SERIES_PER_REQUEST" \
    --samples-per-series "$INGEST_SAMPLES_PER_SERIES" \
    --concurrency "$CONCURRENCY" "${PUSH_EXTRA[@]}" | tee "$WORK/ingest.txt"
  echo "prometheus after ingest: head series $(metric prometheus_tsdb_head_series), RSS $(metric process_resident_memory_bytes | awk '{printf "%.0f MB", $1/1e6}'), CPU $(metric process_cpu_seconds_total) s"
  stop_prometheus
fi

# storage_run JITTER_MS: phase (b) on a fresh Prometheus with that timestamp jitter.
storage_run() {
  local jitter=$1
  log "(b) storage: $STORAGE_SERIES series x $STORAGE_HOURS h, timestamp jitter ±$jitter ms"
  start_prometheus "$WORK/storage-jitter$jitter"
  "$WORKLOAD" push --url "$URL/api/v1/write" \
    --series "$STORAGE_SERIES" --hours "$STORAGE_HOURS" --jitter-ms "$jitter" \
    --series-per-request 200 --samples-per-series 10 \
    --concurrency "$CONCURRENCY" "${PUSH_EXTRA[@]}" | tee "$WORK/storage-push-jitter$jitter.txt"

  # Head compaction runs while the head spans more than 1.5 x 2h: wait until it is done.
  log "waiting for head compaction"
  local span_limit mint maxt i DATA meta block samples series span bytes chunks index
  local total_bytes total_samples full_bytes full_samples
  span_limit=$((3 * 3600 * 1000))
  for i in $(seq 1 600); do
    mint=$(metric prometheus_tsdb_head_min_time)
    maxt=$(metric prometheus_tsdb_head_max_time)
    if [ -n "$mint" ] && [ -n "$maxt" ] && python3 -c "import sys; sys.exit(0 if float('$maxt') - float('$mint') <= $span_limit else 1)"; then
      break
    fi
    [ "$i" = 600 ] && die "head still spans more than 3h after 10 minutes"
    sleep 1
  done
  sleep 2
  DATA="$WORK/storage-jitter$jitter/data"
  echo "prometheus after the storage push: head series $(metric prometheus_tsdb_head_series), RSS $(metric process_resident_memory_bytes | awk '{printf "%.0f MB", $1/1e6}'), CPU $(metric process_cpu_seconds_total) s, compactions $(metric prometheus_tsdb_compactions_total)"
  stop_prometheus

  echo
  "$PROMTOOL" tsdb list -r "$DATA" || true
  echo
  printf '%-28s %6s %8s %10s %11s %11s %10s %9s\n' block hours series samples bytes chunks_B index_B B/sample
  total_bytes=0 total_samples=0 full_bytes=0 full_samples=0
  for meta in "$DATA"/*/meta.json; do
    [ -e "$meta" ] || continue
    block=$(dirname "$meta")
    case "$(basename "$block")" in *.tmp*) continue ;; esac
    samples=$(jq '.stats.numSamples' "$meta")
    series=$(jq '.stats.numSeries' "$meta")
    span=$(jq '.maxTime - .minTime' "$meta")
    bytes=$(find "$block" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    chunks=$(find "$block/chunks" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    index=$(stat -c %s "$block/index")
    printf '%-28s %6.2f %8d %10d %11d %11d %10d %9.3f\n' "$(basename "$block")" \
      "$(div "$span" 3600000)" "$series" "$samples" "$bytes" "$chunks" "$index" \
      "$(div "$bytes" "$samples")"
    total_bytes=$((total_bytes + bytes))
    total_samples=$((total_samples + samples))
    # A full 2h block spans from its first scrape to the 2h boundary: nearly 2h.
    if [ "$span" -ge 7000000 ]; then
      full_bytes=$((full_bytes + bytes))
      full_samples=$((full_samples + samples))
    fi
  done
  [ "$total_samples" -gt 0 ] || die "no blocks were cut"
  echo "storage, jitter ±$jitter ms:"
  printf 'all persisted blocks: %d samples, %d bytes, %.3f bytes/sample\n' \
    "$total_samples" "$total_bytes" "$(div "$total_bytes" "$total_samples")"
  if [ "$full_samples" -gt 0 ]; then
    printf 'full 2h blocks:       %d samples, %d bytes, %.3f bytes/sample\n' \
      "$full_samples" "$full_bytes" "$(div "$full_bytes" "$full_samples")"
  fi
}

# ---------------------------------------------------------------------------------------
if [ "${SKIP_STORAGE:-0}" != 1 ]; then
  for jitter in $STORAGE_JITTERS; do
    storage_run "$jitter"
  done
fi
