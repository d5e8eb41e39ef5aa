# shellcheck shell=bash
# Sourced by the scripts that test against the debug local server (schemathesis, clients,
# browser): `start_local_server NAME [VAR=value ...]` starts it on a free port with a fresh data
# directory and the extra settings given, waits until it answers, and sets `base`, `user_key`
# and `admin_key`; `$work` is a scratch directory removed, with the server stopped, on exit;
# `server_log` prints the end of the server's log. Builds the server when it is missing. It sets
# the EXIT trap: a script that sources it calls `stop_local_server` from any trap of its own.

work=$(mktemp -d)
local_server_pid=
stop_local_server() {
    if [ -n "$local_server_pid" ]; then
        kill "$local_server_pid" 2>/dev/null || true
        wait "$local_server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop_local_server EXIT

start_local_server() {
    local name=$1
    shift
    local server=${LOCAL_SERVER:-$root/target/debug/local-server}
    [ -x "$server" ] || cargo build --locked -p image2model-tests --bin local-server
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    user_key="alice-key-$name-0123456789"
    admin_key="admin-key-$name-0123456789"
    env PORT="$port" DATA_DIR="$work/data" API_KEYS="alice:$user_key" ADMIN_API_KEY="$admin_key" \
        RUST_LOG=warn "$@" "$server" > "$work/server.log" 2>&1 &
    local_server_pid=$!
    base="http://127.0.0.1:$port"
    for _ in $(seq 150); do
        python3 -c "import urllib.request; urllib.request.urlopen('$base/health')" 2>/dev/null && return 0
        kill -0 "$local_server_pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "the local server did not answer at $base; its log:" >&2
    server_log
    return 1
}

server_log() {
    tail -50 "$work/server.log" >&2
}
