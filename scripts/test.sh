#!/usr/bin/env bash
# Runs the whole test suite, doing its own setup:
#   1. a Python virtual environment (.venv) with the pinned S3 emulator (moto), the
#      PostgreSQL driver (psycopg) for the SQL tests and the Kafka client
#      (confluent-kafka) for the Kafka tests,
#   2. the emulator on 127.0.0.1 with a test bucket,
#   3. a real Prometheus server binary (Debian's `prometheus` package, installed with
#      apt-get when missing) for the remote-write test, psql (Debian's
#      `postgresql-client`) for the SQL tests, kcat (Debian's `kcat`) for the Kafka
#      tests, and headless Chromium (Debian's
#      `chromium` and `chromium-driver`) for the web console's browser test,
#   4. every cargo test in the workspace, with the emulator's address exported so the
#      storage, fencing and server tests run against real S3 semantics.
# Arguments, if any, replace the default `cargo test --workspace` arguments
# (e.g. `scripts/test.sh -p opendata-common --test storage`).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
REQS="$ROOT/scripts/requirements-test.txt"

log() { printf '==> %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/moto_server" ] || ! cmp -s "$REQS" "$VENV/.requirements"; then
  log "creating $VENV with the S3 emulator"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/.requirements"
fi

# Debian packages the tests need, installed when missing.
PACKAGES=()
command -v prometheus >/dev/null 2>&1 || PACKAGES+=(prometheus)
command -v psql >/dev/null 2>&1 || PACKAGES+=(postgresql-client)
command -v chromium >/dev/null 2>&1 || PACKAGES+=(chromium)
command -v chromedriver >/dev/null 2>&1 || PACKAGES+=(chromium-driver)
command -v kcat >/dev/null 2>&1 || PACKAGES+=(kcat)
if [ ${#PACKAGES[@]} -gt 0 ]; then
  log "installing Debian packages: ${PACKAGES[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
  # The prometheus package may start its own service; the tests start their own instances.
  $SUDO pkill -x prometheus >/dev/null 2>&1 || true
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

PORT=$(free_port)
MOTO_LOG=$(mktemp -t opendata-moto.XXXXXX.log)
log "starting the S3 emulator on 127.0.0.1:$PORT (log: $MOTO_LOG)"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
cleanup() { kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$PORT/moto-api/" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$MOTO_PID" 2>/dev/null; then cat "$MOTO_LOG" >&2; echo "S3 emulator failed to start" >&2; exit 1; fi
  sleep 0.1
done

export AWS_ACCESS_KEY_ID=opendata-test
export AWS_SECRET_ACCESS_KEY=opendata-test
export AWS_REGION=us-east-1
export AWS_ALLOW_HTTP=true
export OPENDATA_TEST_S3_ENDPOINT="http://127.0.0.1:$PORT"
export OPENDATA_TEST_S3_BUCKET=opendata-test
# The SQL tests' PostgreSQL driver (psycopg) and the Kafka tests' client
# (confluent-kafka) live in the virtual environment.
export OPENDATA_TEST_PYTHON="$VENV/bin/python"
curl -fsS -X PUT "$OPENDATA_TEST_S3_ENDPOINT/$OPENDATA_TEST_S3_BUCKET" >/dev/null

log "running cargo test"
OUT=$(mktemp -t opendata-test.XXXXXX.log)
status=0
if [ $# -gt 0 ]; then
  cargo test "$@" 2>&1 | tee "$OUT" || status=$?
else
  { cargo test --workspace --all-targets && cargo test --workspace --doc; } 2>&1 | tee "$OUT" || status=$?
fi
# One closing line for the whole run, summed over every test binary.
passed=$(grep -oE '^test result: [A-Za-z]+\. [0-9]+ passed' "$OUT" | awk '{s+=$4} END {print s+0}')
failed=$(grep -oE '; [0-9]+ failed' "$OUT" | awk '{s+=$2} END {print s+0}')
echo
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
