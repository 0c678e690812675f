"""The SQL server through psycopg 3, a real PostgreSQL driver.

Run by server/tests/sql.rs against a live `opendata serve` whose log holds 100
`orders` and 20 `events` records and whose time series database holds
`requests_total{job="api"|"db"}`. Usage:

    sql_client.py <port> <read-write token> <read-only token>

Each check prints `ok <name>`; a failed assertion exits non-zero with its traceback.
"""

import json
import sys
import threading
import time

import psycopg
from psycopg import errors

PORT, RW, RO = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def connect(password, **kw):
    return psycopg.connect(
        host="127.0.0.1",
        port=PORT,
        user="tester",
        dbname="opendata",
        password=password,
        sslmode="disable",
        connect_timeout=10,
        **kw,
    )


def ok(name):
    print("ok", name, flush=True)


def expect_error(conn, sql, sqlstate, params=None):
    try:
        conn.execute(sql, params)
    except psycopg.Error as e:
        assert e.sqlstate == sqlstate, (sql, e.sqlstate, str(e))
        return str(e)
    raise AssertionError(f"{sql!r} did not fail")


with connect(RW, autocommit=True) as conn:
    rows = conn.execute(
        "SELECT key, count(*) AS n FROM log.entries GROUP BY key ORDER BY key"
    ).fetchall()
    assert rows == [("events", 20), ("orders", 100), ("psql", 1)], rows
    ok("group by")

    # Server-side parameters in the extended protocol: text and integer types.
    first = conn.execute(
        "SELECT min(sequence) FROM log.entries WHERE key = %s", ("orders",)
    ).fetchone()[0]
    rows = conn.execute(
        "SELECT sequence, value FROM log.entries "
        "WHERE key = %s AND sequence BETWEEN %s AND %s ORDER BY sequence",
        ("orders", first + 10, first + 12),
    ).fetchall()
    assert [bytes(v) for _, v in rows] == [b"order-10", b"order-11", b"order-12"], rows
    assert [s for s, _ in rows] == [first + 10, first + 11, first + 12], rows
    ok("parameters")

    # The same statement prepared once, executed many times.
    for i in range(5):
        got = conn.execute(
            "SELECT value FROM log.entries WHERE key = %s AND sequence = %s",
            ("orders", first + i),
            prepare=True,
        ).fetchone()
        assert bytes(got[0]) == f"order-{i}".encode(), got
    ok("prepared statement")

    # Binary results: timestamps, floats, and labels as JSON text.
    with conn.cursor(binary=True) as cur:
        cur.execute(
            "SELECT metric, labels, timestamp, value FROM timeseries.samples "
            "WHERE metric = %s AND labels['job'] = %s ORDER BY timestamp, value LIMIT 3",
            ("requests_total", "api"),
        )
        rows = cur.fetchall()
    assert len(rows) == 3, rows
    for metric, labels, ts, value in rows:
        assert metric == "requests_total"
        assert json.loads(labels)["job"] == "api", labels
        assert ts.tzinfo is not None, ts
        assert isinstance(value, float)
    assert rows[0][2] < rows[2][2] or rows[0][3] <= rows[2][3]
    ok("binary results")

    # A join across tables, and a PromQL table function.
    rows = conn.execute(
        "SELECT e.key, max(k.last_sequence) FROM log.entries e "
        "JOIN log.keys k ON e.key = k.key GROUP BY e.key ORDER BY e.key"
    ).fetchall()
    assert [r[0] for r in rows] == ["events", "orders", "psql"], rows
    rows = conn.execute(
        "SELECT labels, value FROM promql('sum by (job) (requests_total)') ORDER BY value"
    ).fetchall()
    assert len(rows) == 2, rows
    ok("join and promql")

    # Time ranges, and log entries joined with samples by time.
    rows = conn.execute(
        "SELECT count(*) FROM timeseries.samples WHERE metric = 'requests_total' "
        "AND timestamp > now() - interval '30 minutes' AND timestamp <= now()"
    ).fetchall()
    assert rows == [(20,)], rows
    rows = conn.execute(
        "SELECT e.key, count(s.value) FROM log.entries e JOIN timeseries.samples s "
        "ON s.timestamp BETWEEN e.timestamp - interval '10 minutes' "
        "AND e.timestamp + interval '10 minutes' "
        "WHERE e.key = %s AND s.metric = 'requests_total' GROUP BY e.key",
        ("events",),
    ).fetchall()
    assert rows == [("events", 400)], rows
    ok("time ranges and joins by time")

    # Vector rows with attribute filters, and vector_search joined with attributes.
    rows = conn.execute(
        "SELECT id, size FROM vector.docs WHERE color = %s ORDER BY id", ("red",)
    ).fetchall()
    assert rows == [("a", 1), ("c", 3)], rows
    rows = conn.execute(
        "SELECT s.id, d.color, d.size FROM vector_search('docs', [1.0, 0.0, 0.0, 0.0], 2) s "
        "JOIN vector.docs d ON s.id = d.id ORDER BY s.id"
    ).fetchall()
    assert [r[0] for r in rows] == ["a", "c"], rows
    assert all(r[1] == "red" for r in rows), rows
    ok("vectors")

    # Session statements drivers send.
    conn.execute("SET application_name = 'sql-test'")
    assert conn.execute("SHOW application_name").fetchone()[0] == "sql-test"
    assert conn.execute("SHOW server_version").fetchone()[0].startswith("16")
    expect_error(conn, "SHOW no_such_setting", "42704")
    ok("set and show")

    # Errors carry PostgreSQL's codes and leave the connection usable.
    expect_error(conn, "SELEC 1", "42601")
    expect_error(conn, "SELECT * FROM log.nothing", "42P01")
    expect_error(conn, "SELECT nope FROM log.entries", "42703")
    expect_error(conn, "DELETE FROM log.entries", "0A000")
    expect_error(conn, "CREATE TABLE t (a int)", "0A000")
    assert conn.execute("SELECT 1").fetchone() == (1,)
    ok("error codes")

    # Hostile statements: bounded nesting, bounded size, long chains; the session lives.
    expect_error(conn, "SELECT " + "(" * 2000 + "1" + ")" * 2000, "42601")
    expect_error(conn, "SELECT '" + "x" * (1024 * 1024 + 10) + "'", "53200")
    # Under the operator limit (1,024) a chain plans and runs; past it, 54001.
    got = conn.execute("SELECT " + " + ".join(["1"] * 200)).fetchone()
    assert got == (200,), got
    expect_error(conn, "SELECT " + " + ".join(["1"] * 1026), "54001")
    expect_error(conn, "SELECT " + " + ".join(["1"] * 200000), "54001")
    expect_error(conn, "SELECT 1 WHERE " + " OR ".join(["1 = 1"] * 5000), "54001")
    assert conn.execute("SELECT 4").fetchone() == (4,)
    ok("hostile statements")

    # statement_timeout ends a runaway statement; the session goes on.
    conn.execute("SET statement_timeout = '300ms'")
    started = time.monotonic()
    expect_error(
        conn,
        "SELECT sum(a.value + b.value) FROM generate_series(1, 100000) a, generate_series(1, 100000) b",
        "57014",
    )
    assert time.monotonic() - started < 10
    conn.execute("SET statement_timeout = 0")
    assert conn.execute("SELECT 2").fetchone() == (2,)
    ok("statement timeout")

    # A cancel request from another thread ends the running statement.
    timer = threading.Timer(0.5, conn.cancel_safe)
    timer.start()
    started = time.monotonic()
    expect_error(
        conn,
        "SELECT sum(a.value + b.value) FROM generate_series(1, 100000) a, generate_series(1, 100000) b",
        "57014",
    )
    timer.join()
    assert time.monotonic() - started < 10
    assert conn.execute("SELECT 3").fetchone() == (3,)
    ok("cancel")

    # The per-statement memory limit (sql.max_query_memory_bytes = 1 MiB here).
    msg = expect_error(
        conn,
        "SELECT a.value, count(*) FROM generate_series(1, 3000000) a GROUP BY a.value",
        "53200",
    )
    assert "memory" in msg, msg
    ok("memory limit")

# Writes: psycopg's default opens a transaction block around them.
with connect(RW) as conn:
    cur = conn.execute(
        "INSERT INTO log.entries (key, value) VALUES (%s, %s), (%s, %s)",
        ("py", b"one", "py", b"two"),
    )
    assert cur.rowcount == 2, cur.rowcount
    conn.commit()
    rows = conn.execute(
        "SELECT value FROM log.entries WHERE key = 'py' ORDER BY sequence"
    ).fetchall()
    assert [bytes(r[0]) for r in rows] == [b"one", b"two"], rows
    conn.commit()
    ok("insert")

# A read-only token reads, and may not write.
with connect(RO, autocommit=True) as conn:
    assert conn.execute("SELECT count(*) FROM log.entries WHERE key = 'py'").fetchone() == (2,)
    msg = expect_error(
        conn, "INSERT INTO log.entries (key, value) VALUES ('py', 'x')", "42501"
    )
    assert "log:write" in msg, msg
    ok("scopes")

# A wrong token does not log in.
try:
    connect("not-a-token-at-all-really")
    raise AssertionError("a wrong token logged in")
except psycopg.OperationalError as e:
    assert "password" in str(e).lower(), str(e)
ok("wrong token")
