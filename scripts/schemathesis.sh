#!/usr/bin/env bash
# Runs schemathesis (from the test venv) against the local server with every check and every
# phase, stateful included: once with a user key, once with the admin key. Any failure fails.
# The server is the debug `local-server` the test suite builds, on a fresh data directory.
# Env: SCHEMATHESIS (the CLI; default .venv/bin/schemathesis), SEED (default fixed, so a run can
# be replayed; `SEED=random` for a new one each time), MAX_EXAMPLES (per operation and phase).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
schemathesis=${SCHEMATHESIS:-$root/.venv/bin/schemathesis}
python=${PYTHON:-$root/.venv/bin/python}
server=${LOCAL_SERVER:-$root/target/debug/local-server}
seed=${SEED:-20261129}
work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

[ -x "$server" ] || cargo build --locked -p image2model-tests --bin local-server
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user_key=alice-key-schemathesis-0123456789
admin_key=admin-key-schemathesis-0123456789
# Short streams: a stream on a job that waits for an upload that never comes ends in seconds.
PORT=$port DATA_DIR="$work/data" API_KEYS="alice:$user_key" ADMIN_API_KEY=$admin_key \
    RATE_LIMIT_PER_MINUTE=1000000 SSE_MAX_SECONDS=2 SSE_POLL_SECONDS=0.2 SSE_HEARTBEAT_SECONDS=1 \
    RUST_LOG=warn "$server" > "$work/server.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 150); do
    "$python" -c "import urllib.request; urllib.request.urlopen('$base/health')" 2>/dev/null && break
    sleep 0.2
done

run() {
    local who=$1 key=$2
    shift 2
    echo "== schemathesis ($who key)"
    local args=(--config-file "$root/tests/schemathesis/schemathesis.toml" run "$base/api/v1/openapi.json"
        --no-color)
    [ "$seed" = random ] || args+=(--seed "$seed")
    [ -z "${MAX_EXAMPLES:-}" ] || args+=(--max-examples "$MAX_EXAMPLES")
    if ! (cd "$work" && SCHEMATHESIS_KEY=$key "$schemathesis" "${args[@]}" "$@" > "$work/$who.txt" 2>&1); then
        cat "$work/$who.txt"
        echo "schemathesis found failures with the $who key; server log:" >&2
        tail -50 "$work/server.log" >&2
        return 1
    fi
    # The summary: phases, failures (none), test cases.
    sed -n '/^=* SUMMARY =*$/,$p' "$work/$who.txt"
}

SCHEMATHESIS_ONLY=${SCHEMATHESIS_ONLY:-}
[ "$SCHEMATHESIS_ONLY" = admin ] || run user "$user_key" --exclude-tag admin
[ "$SCHEMATHESIS_ONLY" = user ] || run admin "$admin_key" --include-tag admin --include-tag uploads --include-tag jobs
