#!/usr/bin/env bash
# Validates CITATION.cff against the Citation File Format 1.2.0 schema with cffconvert (pinned), and checks that
# its version is the one pyproject.toml declares. Called by .ci/run. cffconvert lives in its own environment in
# the user's cache, reused while the pin is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

cffconvert_pin=2.0.0
dir="${XDG_CACHE_HOME:-$HOME/.cache}/unlearn-book-ci/cffconvert-$cffconvert_pin"
if [[ ! -f $dir/.installed ]]; then
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "cffconvert==$cffconvert_pin" 2>&1 |
        { grep -v "is ignored: it is neither a file nor a directory" || true; }
    touch "$dir/.installed"
fi
"$dir/bin/cffconvert" --validate -i CITATION.cff

version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
cff_version=$(sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' CITATION.cff)
if [[ $cff_version != "$version" ]]; then
    echo "error: CITATION.cff says version $cff_version, pyproject.toml says $version" >&2
    exit 1
fi
echo "CITATION.cff: version $cff_version, as in pyproject.toml"
