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
server=${LOCAL_SERVER:-$root/target/debug/local-server}
# shellcheck source=scripts/clients_venv.sh
source scripts/clients_venv.sh
[ -x "$server" ] || cargo build --locked -p image2model-tests --bin local-server
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== webhooks: receivers verified by standardwebhooks $("$venv/bin/pip" show standardwebhooks | awk '/^Version/ {print $2}')"
"$venv/bin/python" tests/clients/webhook_journey.py "$server" "$photos" "$work"
