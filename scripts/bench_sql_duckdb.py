"""DuckDB on the SQL bench's data: the peer of OpenData's SQL engine
(docs/benchmarks.md, "SQL").

Loads entries.csv and samples.csv (written by `cargo bench -p opendata-sql --bench
sql_bench`) into DuckDB's own native tables in a database file, then runs the bench's
queries, each `--runs` times, and prints one JSON line per query with the best time.
DuckDB runs with `--threads` threads (default 2, the machine's cores).

Usage: bench_sql_duckdb.py <bench dir> [--runs 3] [--threads 2]
"""

import argparse
import json
import os
import time

import duckdb

KEYS = 100

parser = argparse.ArgumentParser()
parser.add_argument("dir")
parser.add_argument("--runs", type=int, default=3)
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()

with open(os.path.join(args.dir, "t0")) as f:
    t0 = int(f.read().strip())
with open(os.path.join(args.dir, "hours")) as f:
    hours = int(f.read().strip())
path = os.path.join(args.dir, "duckdb.db")
fresh = not os.path.exists(path)
con = duckdb.connect(path)
con.execute(f"SET threads = {args.threads}")
if fresh:
    started = time.monotonic()
    con.execute(
        "CREATE TABLE entries AS SELECT key::VARCHAR AS key, sequence::BIGINT AS sequence, "
        "value::BLOB AS value FROM read_csv(?, header = true, "
        "columns = {'key': 'VARCHAR', 'sequence': 'BIGINT', 'value': 'VARCHAR'})",
        [os.path.join(args.dir, "entries.csv")],
    )
    con.execute(
        "CREATE TABLE samples AS SELECT metric, job, instance, "
        "make_timestamp(timestamp_ms * 1000) AS timestamp, value FROM read_csv(?, header = true, "
        "columns = {'metric': 'VARCHAR', 'job': 'VARCHAR', 'instance': 'VARCHAR', "
        "'timestamp_ms': 'BIGINT', 'value': 'DOUBLE'})",
        [os.path.join(args.dir, "samples.csv")],
    )
    con.execute("CHECKPOINT")
    print(json.dumps({"engine": "duckdb", "load_seconds": time.monotonic() - started}), flush=True)

entries = con.execute("SELECT count(*) FROM entries").fetchone()[0]
hour_start = t0 + hours // 2 * 3_600_000
hour_end = hour_start + 3_600_000
queries = [
    ("group_by_key", "SELECT key, count(*) FROM entries GROUP BY key"),
    ("one_key", "SELECT count(*), sum(octet_length(value)) FROM entries WHERE key = 'k042'"),
    (
        "key_sequence_range",
        f"SELECT key, count(*) FROM entries WHERE sequence BETWEEN {entries // 2} "
        f"AND {entries // 2 + entries // 100 - 1} GROUP BY key",
    ),
    (
        "hour_aggregate",
        "SELECT job, avg(value), count(*) FROM samples WHERE metric = 'bench_requests' "
        f"AND timestamp >= make_timestamp({hour_start * 1000}) "
        f"AND timestamp < make_timestamp({hour_end * 1000}) GROUP BY 1",
    ),
    (
        "top_k_by_value",
        "SELECT instance, timestamp, value FROM samples WHERE metric = 'bench_requests' "
        "ORDER BY value DESC, timestamp LIMIT 10",
    ),
    ("samples_full_scan", "SELECT count(*), sum(value) FROM samples"),
]
for name, sql in queries:
    best = float("inf")
    rows = 0
    for _ in range(args.runs):
        started = time.monotonic()
        result = con.execute(sql).fetchall()
        best = min(best, time.monotonic() - started)
        rows = len(result)
    print(json.dumps({"engine": "duckdb", "query": name, "seconds": best, "rows": rows}), flush=True)
