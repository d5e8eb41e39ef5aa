#!/usr/bin/env bash
# Runs the web client's tests in headless Chromium (Debian's, installed when missing) driven by
# playwright-core (pinned in tests/browser/package-lock.json), against the debug local server
# on a fresh data directory. Screenshots go to target/browser/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
server=${LOCAL_SERVER:-$root/target/debug/local-server}
chromium=${CHROMIUM:-/usr/bin/chromium}
work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ ! -x "$chromium" ]; then
    echo "== apt: chromium"
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium > /dev/null
fi
if ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.installed-lock 2>/dev/null; then
    echo "== npm ci (playwright-core)"
    (cd tests/browser && npm ci --silent --no-audit --no-fund && cp package-lock.json node_modules/.installed-lock)
fi
[ -x "$server" ] || cargo build --locked -p image2model-tests --bin local-server

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user_key=alice-key-browser-0123456789
PORT=$port DATA_DIR="$work/data" API_KEYS="alice:$user_key" ADMIN_API_KEY=admin-key-browser-0123456789 \
    RUST_LOG=warn "$server" > "$work/server.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 150); do
    python3 -c "import urllib.request; urllib.request.urlopen('$base/health')" 2>/dev/null && break
    sleep 0.2
done

echo "== browser tests (headless Chromium)"
if ! BASE_URL=$base USER_KEY=$user_key CHROMIUM=$chromium PHOTOS="${PHOTO_FIXTURES:-$root/../shared/fixtures/photos}" \
    SCREENSHOTS="$root/target/browser" node --test tests/browser/; then
    echo "browser tests failed; server log:" >&2
    tail -50 "$work/server.log" >&2
    exit 1
fi
echo "screenshots: target/browser/"
