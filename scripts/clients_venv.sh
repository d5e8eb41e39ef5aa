# shellcheck shell=bash
# Sourced by scripts/clients.sh and scripts/webhooks.sh: (re)makes the clients' venv
# (`.venv-clients`) when tests/clients/requirements.txt changed, and sets `venv`.
# shellcheck source=scripts/venv.sh
source "$root/scripts/venv.sh"
venv="$root/.venv-clients"
ensure_venv "$venv" "$root/tests/clients/requirements.txt"
