#!/usr/bin/env bash
# The Kafka bench (docs/benchmarks.md, "Kafka"): the release `opendata` binary on a fresh
# local directory with the Kafka listener, loaded from the same two cores by
#   1. kcat (librdkafka in C): produce RECORDS lines of 256 B from a file with acks=all
#      and linger.ms=5, then consume them all from storage;
#   2. scripts/bench_kafka.py (confluent-kafka, librdkafka under Python): the same
#      produce and consume, and produce-to-consume latency;
#   3. the HTTP append path in the same run: wrk posting 100 records of 256 B per request
#      (awaitDurable, application/protobuf+json) to /api/v1/log/append for 20 s.
# Needs kcat and wrk (Debian's packages). Data goes to KAFKA_BENCH_DIR (default a temp directory,
# deleted afterwards). KAFKA_BENCH_RECORDS (default 2,000,000) sets the produce size.
#
# Usage: scripts/bench-kafka.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${KAFKA_BENCH_VENV:-$ROOT/.venv}
RECORDS=${KAFKA_BENCH_RECORDS:-2000000}
DIR=${KAFKA_BENCH_DIR:-$(mktemp -d -t opendata-kafka-bench.XXXXXX)}

log() { printf '==> %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
  log "creating $VENV with the test requirements (confluent-kafka)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

log "cargo build --release -p opendata-server --bin opendata"
cargo build --release -p opendata-server --bin opendata >&2

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
HTTP=$(free_port)
KAFKA=$(free_port)
log "starting opendata on $DIR (HTTP $HTTP, Kafka $KAFKA)"
OPENDATA_LOG_LEVEL=warn target/release/opendata serve --object-store "$DIR/data" \
  --listen "127.0.0.1:$HTTP" --kafka-listen "127.0.0.1:$KAFKA" 2>"$DIR/server.log" &
PID=$!
cleanup() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  if [ -z "${KAFKA_BENCH_DIR:-}" ]; then rm -rf "$DIR"; fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$HTTP/-/healthy" >/dev/null 2>&1 && break
  sleep 0.1
done

log "kcat: produce and consume $RECORDS records of 256 B"
python3 -c "import sys; sys.stdout.write(('x' * 255 + '\n') * int(sys.argv[1]))" "$RECORDS" >"$DIR/lines.txt"
python3 - "$DIR" "$RECORDS" "$KAFKA" <<'PY'
import json, subprocess, sys, time
d, n, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
b = f"127.0.0.1:{port}"
t = time.perf_counter()
subprocess.run(["kcat", "-b", b, "-P", "-t", "kcat-bench", "-X", "acks=all", "-X", "linger.ms=5",
                "-X", "queue.buffering.max.messages=1000000", "-l", f"{d}/lines.txt"], check=True)
secs = time.perf_counter() - t
print(json.dumps({"bench": "kcat_produce", "records": n, "seconds": round(secs, 3),
                  "records_per_s": round(n / secs)}), flush=True)
t = time.perf_counter()
out = subprocess.run(["kcat", "-b", b, "-C", "-t", "kcat-bench", "-o", "beginning", "-e", "-q",
                      "-f", "%o\n"], check=True, capture_output=True).stdout
secs = time.perf_counter() - t
got = out.count(b"\n")
print(json.dumps({"bench": "kcat_consume", "records": got, "seconds": round(secs, 3),
                  "records_per_s": round(got / secs)}), flush=True)
PY
rm -f "$DIR/lines.txt"

log "Kafka clients: scripts/bench_kafka.py ($RECORDS records)"
"$VENV/bin/python" scripts/bench_kafka.py "127.0.0.1:$KAFKA" "$RECORDS"

log "HTTP append: wrk -t2 -c32 -d20s, 100 records of 256 B per request"
python3 - "$DIR/body.json" <<'EOF'
import base64, json, sys
value = base64.b64encode(bytes(range(256))).decode()
records = [{"key": base64.b64encode(f"http-{i % 4}".encode()).decode(), "value": value} for i in range(100)]
open(sys.argv[1], "w").write(json.dumps({"records": records, "awaitDurable": True}))
EOF
cat >"$DIR/post.lua" <<EOF
local f = io.open("$DIR/body.json"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Content-Type"] = "application/protobuf+json"
EOF
wrk -t2 -c32 -d20s --latency -s "$DIR/post.lua" "http://127.0.0.1:$HTTP/api/v1/log/append" \
  | tee "$DIR/wrk.txt" >&2
python3 - "$DIR/wrk.txt" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p99 = re.search(r"99%\s+([\d.]+)(\w+)", text)
val, unit = float(p99.group(1)), p99.group(2)
p99_ms = val * {"us": 0.001, "ms": 1, "s": 1000}[unit]
print(json.dumps({"bench": "http_append", "requests_per_s": round(rps), "records_per_s": round(rps * 100), "p99_ms": p99_ms}))
EOF
