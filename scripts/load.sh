#!/usr/bin/env bash
# Load against the local server (a release build the bench starts): N clients at once each do
# presign -> PUT -> job -> stream until completed -> download; prints the success rate, latency
# percentiles per step, the time until every job completed, the server's peak memory, and the
# knee of the status route (the concurrency at which its p99 passes 100 ms).
#   bash scripts/load.sh              # N = 100, then 1,000
#   bash scripts/load.sh 50,200       # other N
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p image2model-tests --bench load -- --clients "${1:-100,1000}"
