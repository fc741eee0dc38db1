#!/usr/bin/env bash
# Student rehearsal: does an assignment work where a student does it, away from this repository?
#
#   .ci/student_rehearsal.sh [CHAPTER]      (default 05_gradient_surgery)
#
# In a fresh virtual environment in a temporary folder, with the torch release that requirements.txt pins, the
# wheel of unlearnlib built from the sources and otter-grader (what the student notebook's first cell installs in
# Colab):
#   1. the student notebook of the chapter (tools/make_assignments.py), alone in an empty folder, untouched, is
#      executed cold: it must run to the end, and every `grader.check` cell must report a failing test (the
#      skeletons return nothing), not an error;
#   2. the solved notebook is graded with the chapter's autograder zip by `otter run`, as an instructor grades a
#      submission: it must earn every point.
# Everything is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

chapter=${1:-05_gradient_surgery}
python=${REHEARSAL_PYTHON:-python3}
torch_pin=$(sed -n 's/^torch==\([^ ;#]*\).*/\1/p' requirements.txt)
otter_pin=$(sed -n 's/^otter-grader==\([^ ;#]*\).*/\1/p' requirements.txt)
[[ -n $torch_pin && -n $otter_pin ]] || { echo "error: requirements.txt pins no torch or otter-grader" >&2; exit 1; }
[[ -x .venv/bin/python ]] || { echo "error: run make venv first (the assignment is built with .venv)" >&2; exit 1; }

base=${TMPDIR:-/tmp}
if [[ -d /dev/shm && -w /dev/shm ]] && (( $(df --output=avail -k /dev/shm | tail -n 1) > 12 * 1024 * 1024 )); then
    base=/dev/shm  # a CUDA build of torch is 5 GB of files: written and deleted far faster in memory
fi
root=$(mktemp -d "$base/student-rehearsal.XXXXXX")
venv=$root/venv
log=$root/log.txt
t0=$SECONDS
trap 'rm -rf "$root"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() {  # step LABEL COMMAND...: run COMMAND with its output in the log (shown on failure), print its time
    local label=$1 start=$SECONDS rc=0
    shift
    "$@" >"$log" 2>&1 || rc=$?
    if (( rc != 0 )); then
        grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -n 60 >&2
        echo "::: student rehearsal: $label FAILED (exit $rc) after $((SECONDS - start)) s" >&2
        return "$rc"
    fi
    echo "::: student rehearsal: $label in $((SECONDS - start)) s"
}

assignment=$root/assignment
step "assignment of $chapter built" env -u PYTHONPATH .venv/bin/python - "$chapter" "$assignment" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "tools")
import exercises, make_assignments
make_assignments.OUT = Path(sys.argv[2])
make_assignments.build([exercises.read(Path("notebooks") / f"{sys.argv[1]}.py")])
PY

pip=("$venv/bin/python" -m pip --disable-pip-version-check)
step "fresh virtual environment" "$python" -m venv "$venv"
step "torch==$torch_pin preinstalled" "${pip[@]}" install --no-compile "torch==$torch_pin"
mkdir -p "$root/src" "$root/dist"
cp -R pyproject.toml README.md unlearnlib "$root/src/"
cp LICENSE* "$root/src/" 2>/dev/null || true
find "$root/src" -name __pycache__ -type d -prune -exec rm -rf {} +
step "wheel of unlearnlib built" "${pip[@]}" wheel --no-deps "$root/src" -w "$root/dist"
wheels=("$root"/dist/unlearnlib-*.whl)
step "wheel, otter-grader==$otter_pin and the notebook runner installed" \
    "${pip[@]}" install --no-compile "${wheels[0]}" "otter-grader==$otter_pin" ipykernel nbconvert

mkdir -p "$root/student" "$root/solved" "$root/out" "$root/cache" "$root/jupyter"
cp "$assignment/$chapter/student/$chapter.ipynb" "$root/student/"
cp "$assignment/$chapter/autograder/$chapter.ipynb" "$root/solved/"
run_env=(env -u PYTHONPATH -u MPLBACKEND -u UNLEARN_PROFILE -u UNLEARN_DEVICE -u VIRTUAL_ENV
         PATH="$venv/bin:$PATH" UNLEARN_CACHE="$root/cache" JUPYTER_DATA_DIR="$root/jupyter"
         OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}")

start=$SECONDS
(cd "$root/student" && "${run_env[@]}" jupyter nbconvert --to notebook --execute --output run.ipynb "$chapter.ipynb") \
    >"$log" 2>&1 || { tail -n 60 "$log" >&2; echo "error: the untouched student notebook did not run" >&2; exit 1; }
echo "::: student rehearsal: the untouched student notebook ran cold, outside the repository, in $((SECONDS - start)) s"
"${run_env[@]}" python - "$root/student/run.ipynb" <<'PY'
import sys
import nbformat

checks = [c for c in nbformat.read(sys.argv[1], as_version=4).cells
          if c.cell_type == "code" and "grader.check(" in c.source]
if not checks:
    sys.exit("error: the student notebook has no grader.check cell")
for cell in checks:
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)
    if "Test case failed" not in text or any(o.get("output_type") == "error" for o in cell.outputs):
        sys.exit(f"error: {cell.source.strip()} should report a failing test on the untouched skeleton, got: "
                 f"{text[:300]!r}")
print(f"::: student rehearsal: each of the {len(checks)} grader.check cells reports a failing test, no error")
PY

start=$SECONDS
(cd "$root/solved" && "${run_env[@]}" otter run -a "$assignment/$chapter/autograder/$chapter-autograder.zip" \
    "$chapter.ipynb" -o "$root/out") >"$log" 2>&1 || { tail -n 60 "$log" >&2; echo "error: otter run failed" >&2; exit 1; }
"${run_env[@]}" python - "$root/out/results.json" <<'PY'
import json
import sys

tests = [t for t in json.load(open(sys.argv[1]))["tests"] if t["name"] != "Public Tests"]
got, possible = sum(t["score"] for t in tests), sum(t["max_score"] for t in tests)
if not tests or got != possible:
    sys.exit(f"error: the solved notebook earned {got} of {possible} points: {tests}")
print(f"::: student rehearsal: otter run gives the solved notebook {got:g}/{possible:g} points")
PY
echo "::: student rehearsal: graded in $((SECONDS - start)) s; $((SECONDS - t0)) s in all"
