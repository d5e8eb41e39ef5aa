#!/usr/bin/env bash
# Type-checks the web client against the API's contract, so a change of the OpenAPI document
# that breaks the page fails the suite: regenerates the types of functions/health/openapi.json
# with openapi-typescript and fails if they differ from the committed infra/local/web/api.d.ts,
# checks that the vendored openapi-fetch (infra/local/web/vendor/openapi-fetch/) is the pinned
# package's own files and imports nothing, then runs `tsc --noEmit` over app.js
# (infra/local/web/tsconfig.json). The tools are pinned in tests/browser/package-lock.json and
# installed here when missing. `UPDATE=1 bash scripts/typecheck_web.sh` rewrites api.d.ts and
# the vendored files instead of failing on them, then type-checks.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.installed-lock 2>/dev/null; then
    echo "== npm ci (tests/browser: playwright-core, openapi-typescript, openapi-fetch, typescript)"
    (cd tests/browser && npm ci --silent --no-audit --no-fund && cp package-lock.json node_modules/.installed-lock)
fi
modules=tests/browser/node_modules
web=infra/local/web
document=functions/health/openapi.json
update=${UPDATE:-}
stale=0
refresh="refresh with: UPDATE=1 bash scripts/typecheck_web.sh (and commit the result)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$modules/.bin/openapi-typescript" "$document" --output "$work/api.d.ts" > /dev/null
if [ -n "$update" ]; then
    cp "$work/api.d.ts" "$web/api.d.ts"
elif ! cmp -s "$work/api.d.ts" "$web/api.d.ts"; then
    echo "$web/api.d.ts is not what openapi-typescript makes of $document:" >&2
    diff -u "$web/api.d.ts" "$work/api.d.ts" | head -40 >&2 || true
    stale=1
fi

# The page loads index.mjs as it is (served by infra/local/src/web_client.rs); tsc reads its
# declarations, index.d.mts.
package=$modules/openapi-fetch
version=$(node -p "require('./$package/package.json').version")
for file in dist/index.mjs dist/index.d.mts LICENSE; do
    vendored=$web/vendor/openapi-fetch/$(basename "$file")
    if [ -n "$update" ]; then
        cp "$package/$file" "$vendored"
    elif ! cmp -s "$package/$file" "$vendored"; then
        echo "$vendored is not openapi-fetch@$version's $file" >&2
        stale=1
    fi
done
if grep -nE "^\s*import\b|\bfrom\s*['\"]|\bimport\s*\(" "$web/vendor/openapi-fetch/index.mjs" >&2; then
    echo "openapi-fetch@$version's index.mjs imports other modules, which the page does not serve" >&2
    exit 1
fi
if [ "$stale" = 1 ]; then
    echo "$refresh" >&2
    exit 1
fi

echo "== tsc --noEmit (app.js against api.d.ts)"
"$modules/.bin/tsc" --noEmit -p "$web/tsconfig.json"
echo "web client types: ok"
