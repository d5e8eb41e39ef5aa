#!/usr/bin/env bash
# Every format of a model checked by that format's reference tool. Two shared photos go through
# the debug local server as a client would (tests/formats/journey.py: a job asking for glb, usdz
# and obj, then all four downloaded, stl made on its first request), and FAL's multi-mesh
# fixture (tests/fixtures/fal/multi_mesh.glb) is converted by the same converters (the formats
# crate's `convert` example). Then: the Khronos glTF-Validator on each GLB (npm, pinned in
# tests/formats/package-lock.json), Pixar's USD (usd-core: every UsdValidation validator, and
# AR Quick Look's package rules) on each USDZ, trimesh on each OBJ package and STL (pinned in
# tests/formats/requirements.txt, in .venv-formats). The files land in target/formats/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
photos=${PHOTO_FIXTURES:-$root/../shared/fixtures/photos}
venv="$root/.venv-formats"
requirements="$root/tests/formats/requirements.txt"
# shellcheck source=scripts/local_server.sh
source scripts/local_server.sh

if ! cmp -s "$requirements" "$venv/.installed-requirements" 2>/dev/null; then
    echo "== python venv (usd-core, trimesh)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/.installed-requirements"
fi
if ! cmp -s tests/formats/package-lock.json tests/formats/node_modules/.installed-lock 2>/dev/null; then
    echo "== npm ci (gltf-validator)"
    npm ci --prefix tests/formats --no-audit --no-fund --silent
    cp tests/formats/package-lock.json tests/formats/node_modules/.installed-lock
fi
if [ ! -d "$photos" ]; then
    echo "no photos at $photos (set PHOTO_FIXTURES)" >&2
    exit 1
fi
out="$root/target/formats"
rm -rf "$out"
mkdir -p "$out/photos" "$out/fal"

start_local_server formats
echo "== two photos in every format through the local server"
if ! "$venv/bin/python" tests/formats/journey.py "$base" "$user_key" "$out/photos" \
    "$photos/rocket.jpg" "$photos/coffee.png"; then
    echo "the formats journey failed; server log:" >&2
    server_log
    exit 1
fi
echo "== FAL's multi-mesh fixture through the converters"
cargo run --locked --quiet -p image2model-formats --example convert -- \
    tests/fixtures/fal/multi_mesh.glb "$out/fal"

echo "== glTF-Validator (Khronos)"
node tests/formats/check_glb.mjs "$out"/photos/*.glb tests/fixtures/fal/multi_mesh.glb
echo "== usd-core: UsdValidation and AR Quick Look's package rules"
"$venv/bin/python" tests/formats/check_usdz.py "$out"/photos/*.usdz "$out/fal/model.usdz"
echo "== trimesh: OBJ packages"
for stem in rocket coffee; do
    "$venv/bin/python" tests/formats/check_mesh.py obj "$out/photos/$stem.glb" "$out/photos/$stem.obj.zip"
done
"$venv/bin/python" tests/formats/check_mesh.py obj tests/fixtures/fal/multi_mesh.glb "$out/fal/model.obj.zip"
echo "== trimesh: STL"
for stl in "$out"/photos/*.stl "$out/fal/model.stl"; do
    "$venv/bin/python" tests/formats/check_mesh.py stl "$stl" --longest-mm 100
done
