#!/usr/bin/env bash
# Generates the Python client from the OpenAPI document the local server serves
# (openapi-python-client, pinned in tests/clients/requirements.txt, into its own venv; any
# generator warning fails), then drives a photo to a model with it (tests/clients/
# python_journey.py): presign, PUT, job, stream, download, a batch, a failure, every stream
# frame validated against the document. The server is the debug `local-server` the test suite
# builds, on a fresh data directory. The client lands in target/python-client/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
photos=${PHOTO_FIXTURES:-$root/../shared/fixtures/photos}
# shellcheck source=scripts/local_server.sh
source scripts/local_server.sh
# shellcheck source=scripts/clients_venv.sh
source scripts/clients_venv.sh
if [ ! -d "$photos" ]; then
    echo "no photos at $photos (set PHOTO_FIXTURES)" >&2
    exit 1
fi
start_local_server clients SSE_HEARTBEAT_SECONDS=1

echo "== openapi-python-client $("$venv/bin/openapi-python-client" --version | awk '{print $NF}') from the served document"
"$venv/bin/python" -c "import urllib.request; open('$work/openapi.json', 'wb').write(urllib.request.urlopen('$base/api/v1/openapi.json').read())"
if ! cmp -s "$work/openapi.json" functions/health/openapi.json; then
    echo "the server serves another document than functions/health/openapi.json: rebuild it" >&2
    exit 1
fi
out="$root/target/python-client"
rm -rf "$out"
mkdir -p "$out"
if ! "$venv/bin/openapi-python-client" generate --path "$work/openapi.json" --output-path "$out/image2model_client" \
    --meta none --config "$root/tests/clients/generator.yaml" > "$work/generate.log" 2>&1 || grep -q "Warning" "$work/generate.log"; then
    cat "$work/generate.log"
    echo "openapi-python-client could not generate every part of the client" >&2
    exit 1
fi

echo "== the Python journey"
if ! PYTHONPATH="$out" "$venv/bin/python" tests/clients/python_journey.py "$base" "$user_key" "$photos"; then
    echo "the Python journey failed; server log:" >&2
    server_log
    exit 1
fi
