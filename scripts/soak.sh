#!/usr/bin/env bash
# Soak: a steady mix against the local server (release build) for MINUTES (default 10): twenty
# clients looping presign -> PUT -> job -> stream -> download and a listing; prints the journeys
# done and failed, the server's resident memory, its open files and its data directory size (with
# a retention of a minute) every minute. A rising trend in any of them is a finding.
#   bash scripts/soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p image2model-tests --bench load -- --soak "${1:-10}"
