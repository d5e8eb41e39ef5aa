#!/usr/bin/env bash
# Longer fuzzing runs than the test command's: every generated-input property (the API routes
# in-process, image validation, signed URLs and form policies, webhook signatures, ids) with
# CASES cases each (default 20000), then prints how many executions ran. A failure proptest finds
# is kept under proptest-regressions/ beside the test and replayed by every later run: commit it.
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${CASES:-20000}
export PROPTEST_CASES=$cases
# Every property test (proptest) of the workspace: the routes in-process, then the units.
properties=(
    made_up_urls_and_forms_never_verify signed_urls_and_forms_verify_only_as_signed
    arbitrary_strings_never_panic_and_only_canonical_parse random_walks_respect_the_state_machine
    arbitrary_bytes_never_panic arbitrary_bytes_behind_a_png_signature_never_panic
    mutated_images_never_panic_and_only_whole_images_pass output_is_always_safe
    grid_respects_any_face_limit tampering_never_verifies
)
filter='binary(fuzz)'
for name in "${properties[@]}"; do
    filter="$filter | test(/$name$/)"
done
started=$(date +%s)
cargo nextest run --workspace --locked -E "$filter" --no-fail-fast
count=$(cargo nextest list --workspace --locked -E "$filter" --message-format oneline 2>/dev/null | wc -l)
echo "fuzzed: $count properties x $cases cases = $((count * cases)) executions in $(( $(date +%s) - started )) s"
