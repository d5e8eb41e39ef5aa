#!/usr/bin/env bash
# Runs schemathesis (from the test venv) against the local server with every check and every
# phase, stateful included: once with a user key, once with the admin key. Any failure fails.
# The server is the debug `local-server` the test suite builds, on a fresh data directory.
# Each key's run goes twice: with the fixed seed (what it found once stays found) and with a new
# random seed, printed so that a failure can be replayed with `SEEDS=<seed>`.
# Env: SCHEMATHESIS (the CLI; default .venv/bin/schemathesis), SEEDS (default "20261129 random";
# `random` draws a new seed), MAX_EXAMPLES (per operation and phase), SCHEMATHESIS_ONLY (user or
# admin).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
schemathesis=${SCHEMATHESIS:-$root/.venv/bin/schemathesis}
seeds=()
read -ra asked <<< "${SEEDS:-20261129 random}"
for seed in "${asked[@]}"; do
    [ "$seed" != random ] || seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
    seeds+=("$seed")
done
# shellcheck source=scripts/local_server.sh
source scripts/local_server.sh
# Short streams: a stream on a job that waits for an upload that never comes ends in seconds.
start_local_server schemathesis RATE_LIMIT_PER_MINUTE=1000000 SSE_MAX_SECONDS=2 SSE_POLL_SECONDS=0.2 \
    SSE_HEARTBEAT_SECONDS=1

run() {
    local who=$1 key=$2 seed=$3
    shift 3
    echo "== schemathesis ($who key, seed $seed; replay with SEEDS=$seed)"
    local args=(--config-file "$root/tests/schemathesis/schemathesis.toml" run "$base/api/v1/openapi.json"
        --no-color --seed "$seed")
    [ -z "${MAX_EXAMPLES:-}" ] || args+=(--max-examples "$MAX_EXAMPLES")
    if ! (cd "$work" && SCHEMATHESIS_KEY=$key "$schemathesis" "${args[@]}" "$@" > "$work/$who.txt" 2>&1); then
        cat "$work/$who.txt"
        echo "schemathesis found failures with the $who key and seed $seed; server log:" >&2
        server_log
        return 1
    fi
    # The summary: phases, failures (none), test cases.
    sed -n '/^=* SUMMARY =*$/,$p' "$work/$who.txt"
}

SCHEMATHESIS_ONLY=${SCHEMATHESIS_ONLY:-}
for seed in "${seeds[@]}"; do
    [ "$SCHEMATHESIS_ONLY" = admin ] || run user "$user_key" "$seed" --exclude-tag admin
    [ "$SCHEMATHESIS_ONLY" = user ] || run admin "$admin_key" "$seed" --include-tag admin --include-tag uploads --include-tag jobs
done
