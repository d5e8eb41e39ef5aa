#!/usr/bin/env bash
# The hot routes against a bare axum route in one run (release build): prints each route's
# requests a second and its ratio to the bare route, with the goals of issue 26.
#   bash scripts/bench_routes.sh                 # 5 s per target, 3 rounds
#   bash scripts/bench_routes.sh --seconds 10 --rounds 5
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian's package)"
  sudo_if() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if apt-get install -y wrk >/dev/null
fi
exec cargo bench -p image2model-tests --bench routes -- "$@"
