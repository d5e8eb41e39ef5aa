# shellcheck shell=bash
# Sourced by the scripts that need Python tools: `ensure_venv DIR REQUIREMENTS` makes the venv
# DIR from the pinned REQUIREMENTS, again whenever that file changed since it was installed.
ensure_venv() {
    local dir=$1 requirements=$2
    if ! cmp -s "$requirements" "$dir/.installed-requirements" 2>/dev/null; then
        echo "== python venv ${dir##*/} (${requirements#"$root"/})"
        python3 -m venv "$dir"
        "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
        cp "$requirements" "$dir/.installed-requirements"
    fi
}
