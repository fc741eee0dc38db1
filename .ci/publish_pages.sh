#!/usr/bin/env bash
# Publishes a built book into one folder of the gh-pages branch, leaving every other folder as it is.
#
#   .ci/publish_pages.sh HTML_DIR FOLDER [--latest]
#
# FOLDER is `dev` or a release tag vX.Y.Z. With --latest the same build is also copied to latest/. The branch's
# root gets an index.html that sends readers to latest/ (to dev/ while there is no release) and a .nojekyll file
# (GitHub Pages would otherwise hide Sphinx's _static/ folder). Called by .github/workflows/book.yml; it needs a
# checkout whose `git push` to the remote is allowed. PAGES_REMOTE (default origin) and PAGES_BRANCH (default
# gh-pages) name the target, so that the script can be tried against a local bare repository.
set -euo pipefail

html=${1:?usage: publish_pages.sh HTML_DIR FOLDER [--latest]}
folder=${2:?usage: publish_pages.sh HTML_DIR FOLDER [--latest]}
latest=${3:-}
remote=${PAGES_REMOTE:-origin}
branch=${PAGES_BRANCH:-gh-pages}

[[ -f $html/index.html ]] || { echo "error: $html/index.html does not exist: build the book first" >&2; exit 1; }
# One path segment, and never a folder this script manages itself.
[[ $folder =~ ^(dev|v[0-9]+\.[0-9]+\.[0-9]+[A-Za-z0-9.+-]*)$ ]] ||
    { echo "error: folder '$folder' is neither dev nor a release tag vX.Y.Z" >&2; exit 1; }
[[ -z $latest || $latest == --latest ]] || { echo "error: unknown option '$latest'" >&2; exit 1; }

site=$(mktemp -d)
rmdir "$site"
cleanup() { git worktree remove --force "$site" 2>/dev/null || rm -rf "$site"; }
trap cleanup EXIT

if git ls-remote --exit-code --heads "$remote" "$branch" >/dev/null; then
    git fetch --quiet --depth=1 "$remote" "$branch"
    git worktree add --quiet --detach "$site" FETCH_HEAD
else  # first publication: an empty branch with no history of its own
    git worktree add --quiet --detach "$site" HEAD
    git -C "$site" checkout --quiet --orphan "pages-$$"
    git -C "$site" rm -rfq .
fi

rm -rf "${site:?}/$folder"
cp -R "$html" "$site/$folder"
if [[ $latest == --latest ]]; then
    rm -rf "${site:?}/latest"
    cp -R "$html" "$site/latest"
fi
target=dev
[[ -d $site/latest ]] && target=latest
cat > "$site/index.html" <<HTML
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Machine Unlearning: an executable textbook</title>
<meta http-equiv="refresh" content="0; url=$target/">
<link rel="canonical" href="$target/">
</head>
<body>
<p>The book is at <a href="$target/">$target/</a>. Each release has its own folder, vX.Y.Z/; dev/ follows the main branch.</p>
</body>
</html>
HTML
touch "$site/.nojekyll"

git -C "$site" add -A
if git -C "$site" diff --cached --quiet; then
    echo "gh-pages: nothing changed in $folder/"
    exit 0
fi
git -C "$site" commit --quiet -m "Publish $folder${latest:+ (and latest)} from $(git rev-parse --short HEAD)"
git -C "$site" push --quiet "$remote" "HEAD:refs/heads/$branch"
echo "gh-pages: published $folder/${latest:+ and latest/}; the root sends readers to $target/"
