#!/usr/bin/env bash
# Mutation testing with cargo-mutants (pinned): mutates the domain, validation, keys and auth,
# rate limiting, the FAL guards (breaker, slots, quota) and the application services, and runs
# image2model-shared's own tests (services on the embedded adapters) against each mutant. Too
# slow for every CI run, so it runs in pieces:
#
#   bash scripts/mutants.sh                                  # everything (hours on 2 cores)
#   bash scripts/mutants.sh --shard 0/8                      # one eighth
#   bash scripts/mutants.sh --file shared/src/fal/breaker.rs # one file (replaces the list)
#   bash scripts/mutants.sh --iterate                        # only what survived the last run
#
# Prints caught, missed (surviving), unviable and timeouts of the mutants this run tested, the
# score caught / (caught + missed) and, when iterating, how many earlier runs had already
# caught or found unviable. Details in target/mutants/mutants.out/ (missed.txt lists each
# survivor).
set -euo pipefail
cd "$(dirname "$0")/.."
version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$version"; then
    cargo install --locked "cargo-mutants@$version"
fi
files=(
    --file 'shared/src/domain/**'
    --file 'shared/src/validation/**'
    --file shared/src/keys.rs
    --file shared/src/web/auth.rs
    --file shared/src/web/rate_limit.rs
    --file 'shared/src/fal/breaker.rs'
    --file 'shared/src/fal/guard.rs'
    --file 'shared/src/app/**'
)
for arg in "$@"; do
    if [ "$arg" = "--file" ]; then files=(); fi
done
status=0
cargo mutants --package image2model-shared "${files[@]}" --exclude 'shared/src/app/testing.rs' \
    --output target/mutants --timeout-multiplier 3 --no-shuffle "$@" || status=$?
out=target/mutants/mutants.out
count() { if [ -s "$out/$1.txt" ]; then wc -l < "$out/$1.txt"; else echo 0; fi; }
caught=$(count caught) missed=$(count missed) unviable=$(count unviable) timeout=$(count timeout)
echo "caught $caught, missed $missed, unviable $unviable, timeouts $timeout"
if [ -s "$out/previously_caught.txt" ]; then
    echo "not tested again: $(count previously_caught) caught or unviable in earlier runs"
fi
if [ $((caught + missed)) -gt 0 ]; then
    echo "mutation score of this run: $((100 * caught / (caught + missed))) % caught ($(date -u +%F))"
fi
if [ "$missed" -gt 0 ]; then sed 's/^/  survived: /' "$out/missed.txt"; fi
# cargo-mutants exits 2 when mutants survive: the figures above are the result, not a crash.
[ "$status" -eq 0 ] || [ "$status" -eq 2 ]
