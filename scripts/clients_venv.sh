# shellcheck shell=bash
# Sourced by scripts/clients.sh and scripts/webhooks.sh: (re)makes the clients' venv
# (`.venv-clients`) when tests/clients/requirements.txt changed, and sets `venv`.
venv="$root/.venv-clients"
requirements="$root/tests/clients/requirements.txt"
if ! cmp -s "$requirements" "$venv/.installed-requirements" 2>/dev/null; then
    echo "== python venv (openapi-python-client, httpx, attrs, jsonschema, standardwebhooks)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/.installed-requirements"
fi
