#!/usr/bin/env bash
# Soak: a steady mix against the local server (release build) for MINUTES (default 10): twenty
# clients looping presign -> PUT -> job -> stream -> download and a listing; prints the journeys
# done and failed, the server's resident memory and its open files every minute. A rising trend
# in memory or open files is a finding.
#   bash scripts/soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p image2model-tests --bench load -- --soak "${1:-10}"
