#!/usr/bin/env bash
# Builds every Lambda function once, for arm64 (Graviton, as template.yaml deploys them), in
# release mode with cargo-lambda and zig from the test venv, into one target directory (the AWS
# SDK compiles once for all of them), then prints each function's zip and its size.
# `sam deploy` then takes the zips as they are (see the README's deploy section).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/.venv"
# shellcheck source=scripts/venv.sh
source scripts/venv.sh
ensure_venv "$venv" "$root/infra/emulator/requirements.txt"
export PATH="$venv/bin:$PATH"
rustup target list --installed | grep -q '^aarch64-unknown-linux-gnu$' || rustup target add aarch64-unknown-linux-gnu

packages=()
for dir in functions/*/; do
    packages+=(-p "image2model-$(basename "$dir")")
done
cargo lambda build --release --arm64 --output-format zip --locked "${packages[@]}"

echo "== arm64 zips (target/lambda/<function>/bootstrap.zip)"
for dir in functions/*/; do
    zip="target/lambda/image2model-$(basename "$dir")/bootstrap.zip"
    printf '%-24s %8d KiB\n' "image2model-$(basename "$dir")" "$(( $(stat -c %s "$zip") / 1024 ))"
done
