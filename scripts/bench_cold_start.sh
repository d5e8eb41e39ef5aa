#!/usr/bin/env bash
# Cold starts of every Lambda function: builds them for arm64 (scripts/build_lambdas.sh, for the
# sizes template.yaml deploys) and for this machine (release), then starts each under a stub of
# the Lambda runtime API and prints the time until it asks for its first event (median and
# slowest of 20), what it fetched before (nothing, or it fails), and the arm64 binary's size.
#   bash scripts/bench_cold_start.sh            # 20 starts each
#   bash scripts/bench_cold_start.sh --runs 50
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build_lambdas.sh
packages=()
for dir in functions/*/; do
    packages+=(-p "image2model-$(basename "$dir")")
done
cargo build --release --locked "${packages[@]}"
exec cargo bench -p image2model-tests --bench cold_start -- \
    --bins "$(realpath "${CARGO_TARGET_DIR:-target}")/release" \
    --arm64 "$(realpath "${CARGO_TARGET_DIR:-target}")/aarch64-unknown-linux-gnu/release" "$@"
