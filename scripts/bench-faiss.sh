#!/usr/bin/env bash
# Measures faiss on the vector bench's data, as the baseline for OpenData's vector
# database (docs/benchmarks.md, "Vector"):
#
#   1. a Python virtual environment (.venv-faiss) with faiss-cpu and numpy
#      (scripts/requirements-bench.txt);
#   2. the data: `cargo bench -p opendata-vector --bench vector_bench` with
#      VECTOR_BENCH_ONLY=data writes base.npy, queries.npy, gt.npy (exact neighbours),
#      buckets.npy and gt_bucket7.npy to VECTOR_BENCH_DIR (default data/vector-bench),
#      the very files the full bench writes and searches; files already there for the
#      same parameters are kept;
#   3. scripts/bench_faiss.py on them: IndexFlatL2 (checks the ground truth, times
#      brute force) and IndexIVFFlat with round(4*sqrt(N)) lists over a sweep of nprobe,
#      single-query calls from 2 threads and one batch call, recall@10 against gt.npy,
#      and the 1% filter (bucket == 7) through an IDSelectorBatch. Its docstring says
#      exactly what is timed.
#
# The data set follows the bench's variables: VECTOR_BENCH_N (default 1,000,000),
# VECTOR_BENCH_DIM (128), VECTOR_BENCH_QUERIES (1,000), VECTOR_BENCH_SEED (42),
# VECTOR_BENCH_CLUSTERS. SKIP_DATA=1 uses the files already in VECTOR_BENCH_DIR without
# running cargo. Arguments go to bench_faiss.py (e.g. --nprobes 1,4,16 --secs 5
# --threads 2; --help lists them).
#
# Usage: scripts/bench-faiss.sh [bench_faiss.py arguments]
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv-faiss"
REQS="$ROOT/scripts/requirements-bench.txt"
export VECTOR_BENCH_DIR=${VECTOR_BENCH_DIR:-$ROOT/data/vector-bench}

log() { printf '==> %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$REQS" "$VENV/.requirements"; then
  log "creating $VENV with faiss-cpu and numpy"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/.requirements"
fi

if [ "${SKIP_DATA:-0}" != 1 ]; then
  log "writing the data set to $VECTOR_BENCH_DIR"
  mkdir -p "$VECTOR_BENCH_DIR"
  VECTOR_BENCH_ONLY=data cargo bench -p opendata-vector --bench vector_bench
fi

log "running faiss"
exec "$VENV/bin/python" "$ROOT/scripts/bench_faiss.py" "$VECTOR_BENCH_DIR" "$@"
