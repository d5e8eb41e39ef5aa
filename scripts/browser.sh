#!/usr/bin/env bash
# Runs the web client's tests in headless Chromium (Debian's, installed when missing) driven by
# playwright-core (pinned in tests/browser/package-lock.json), against the debug local server
# on a fresh data directory. Screenshots go to target/browser/. Arguments go to `node --test`
# (`--test-name-pattern=keyboard` runs the tests whose names match).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}
# shellcheck source=scripts/local_server.sh
source scripts/local_server.sh

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
# A second person's key: the page used by two people in turn.
other_key=bob-key-browser-0123456789
start_local_server browser WEBHOOK_ALLOW_PRIVATE=true "API_KEYS=alice:alice-key-browser-0123456789,bob:$other_key"

echo "== browser tests (headless Chromium)"
if ! BASE_URL=$base USER_KEY=$user_key OTHER_KEY=$other_key CHROMIUM=$chromium PHOTOS="${PHOTO_FIXTURES:-$root/../shared/fixtures/photos}" \
    SCREENSHOTS="$root/target/browser" node --test "$@" tests/browser/; then
    echo "browser tests failed; server log:" >&2
    server_log
    exit 1
fi
echo "screenshots: target/browser/"
