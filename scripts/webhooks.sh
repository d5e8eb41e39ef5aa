#!/usr/bin/env bash
# Webhooks as a client's server meets them (tests/clients/webhook_journey.py): receivers on
# loopback that answer 204, 500 twice then 200, hang past the timeout, 410 and redirect, every
# delivery verified by the Standard Webhooks library; a server killed with SIGKILL while a
# delivery waits, delivered after the restart; and every SSRF form refused without
# WEBHOOK_ALLOW_PRIVATE. It uses the clients' venv (tests/clients/requirements.txt pins
# standardwebhooks) and the debug `local-server` the test suite builds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
photos=${PHOTO_FIXTURES:-$root/../shared/fixtures/photos}
venv="$root/.venv-clients"
requirements="$root/tests/clients/requirements.txt"
server=${LOCAL_SERVER:-$root/target/debug/local-server}

if ! cmp -s "$requirements" "$venv/.installed-requirements" 2>/dev/null; then
    echo "== python venv (openapi-python-client, httpx, attrs, jsonschema, standardwebhooks)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/.installed-requirements"
fi
[ -x "$server" ] || cargo build --locked -p image2model-tests --bin local-server
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== webhooks: receivers verified by standardwebhooks $("$venv/bin/pip" show standardwebhooks | awk '/^Version/ {print $2}')"
"$venv/bin/python" tests/clients/webhook_journey.py "$server" "$photos" "$work"
