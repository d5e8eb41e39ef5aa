#!/usr/bin/env bash
# Conversion time and peak memory of each format for every shared photo, at the relief's
# standard and finest detail (shared/formats/examples/bench.rs, built for release). Prints a
# table; not part of the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
photos=${PHOTO_FIXTURES:-$(pwd)/../shared/fixtures/photos}
cargo run --locked --release --quiet -p image2model-formats --example bench -- \
    "$photos"/astronaut.png "$photos"/rocket.jpg
