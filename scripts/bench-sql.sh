#!/usr/bin/env bash
# The SQL bench, side by side with DuckDB (docs/benchmarks.md, "SQL"):
#
#   1. `cargo bench -p opendata-sql --bench sql_bench` writes entries.csv and
#      samples.csv to SQL_BENCH_DIR (default data/sql-bench), loads the same rows into a
#      log and a time series database there, and times the queries through the SQL
#      engine (best of SQL_BENCH_RUNS, default 3), with the rows and bytes each scan read;
#   2. a Python virtual environment (.venv-duckdb) with DuckDB (scripts/requirements-sql-bench.txt);
#   3. scripts/bench_sql_duckdb.py loads the same CSV files into DuckDB's native tables
#      and times the same queries with 2 threads.
#
# Both print JSON lines; the last step prints them side by side. SQL_BENCH_ENTRIES
# (default 10,000,000) sets the log's size. Files and databases already in the
# directory for the same parameters are reused; SQL_BENCH_FRESH=1 rebuilds them.
#
# Usage: scripts/bench-sql.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv-duckdb"
REQS="$ROOT/scripts/requirements-sql-bench.txt"
export SQL_BENCH_DIR=${SQL_BENCH_DIR:-$ROOT/data/sql-bench}
mkdir -p "$SQL_BENCH_DIR"

log() { printf '==> %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$REQS" "$VENV/.requirements"; then
  log "creating $VENV with DuckDB"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/.requirements"
fi

OURS="$SQL_BENCH_DIR/opendata.jsonl"
PEER="$SQL_BENCH_DIR/duckdb.jsonl"
log "opendata: cargo bench -p opendata-sql --bench sql_bench"
cargo bench -p opendata-sql --bench sql_bench | tee "$OURS"
log "duckdb: scripts/bench_sql_duckdb.py"
"$VENV/bin/python" scripts/bench_sql_duckdb.py "$SQL_BENCH_DIR" | tee "$PEER"

python3 - "$OURS" "$PEER" <<'PY'
import json, sys
ours = {r["query"]: r for r in map(json.loads, open(sys.argv[1])) if "query" in r}
peer = {r["query"]: r for r in map(json.loads, open(sys.argv[2])) if "query" in r}
print(f"{'query':<22}{'opendata s':>12}{'duckdb s':>10}{'ratio':>8}{'rows read':>12}{'bytes read':>14}{'rows/s':>14}")
for q, r in ours.items():
    p = peer.get(q, {})
    ratio = r["seconds"] / p["seconds"] if p.get("seconds") else float("nan")
    print(f"{q:<22}{r['seconds']:>12.3f}{p.get('seconds', float('nan')):>10.3f}{ratio:>8.2f}"
          f"{r['read_rows']:>12}{r['read_bytes']:>14}{r['read_rows_per_sec']:>14.0f}")
PY
