#!/usr/bin/env bash
# Colab rehearsal: does a chapter run where a reader runs it, away from this repository?
#
#   .ci/colab_rehearsal.sh [NOTEBOOK]      (default colab/01_unlearning_problem.ipynb)
#
# Colab comes with its own torch. So, in a fresh virtual environment in a temporary folder:
#   1. install the torch release that requirements.txt pins, as Colab has it before the reader arrives;
#   2. build the wheel of unlearnlib from the sources and install it the way a reader does, `pip install`, with
#      the dependency ranges of pyproject.toml, then check that torch was kept (same version as before);
#   3. add what Colab runs notebooks with (ipykernel, nbclient, nbconvert);
#   4. copy one generated notebook alone into an empty folder outside the repository and execute it there, with
#      a cold model cache, no PYTHONPATH and none of CI's UNLEARN_* or MPLBACKEND settings, so that no repository
#      file is read and no import works only from the repository root. Its wall-clock time, cold, must stay
#      under REHEARSAL_LIMIT_S (default 600 s, 10 minutes).
# Everything is removed afterwards. Each step prints its time.
set -euo pipefail
cd "$(dirname "$0")/.."

notebook=${1:-${REHEARSAL_NOTEBOOK:-colab/01_unlearning_problem.ipynb}}
# The generated notebooks lived in notebooks/ before colab/ existed.
if [[ ! -f $notebook && $notebook == colab/* && ! -d colab ]]; then
    notebook=notebooks/${notebook#colab/}
fi
[[ -f $notebook ]] || { echo "error: notebook $notebook does not exist" >&2; exit 1; }
limit_s=${REHEARSAL_LIMIT_S:-600}
python=${REHEARSAL_PYTHON:-python3}

pin() {  # pin NAME: the exact version requirements.txt gives NAME
    sed -n "s/^$1==\([^ ;#]*\).*/\1/p" requirements.txt
}
torch_pin=$(pin torch)
ipykernel_pin=$(pin ipykernel)
[[ -n $torch_pin && -n $ipykernel_pin ]] || { echo "error: requirements.txt pins no torch or ipykernel" >&2; exit 1; }
# nbclient and nbconvert come into the project's own environment through jupyter-book; use the same releases
# there when that environment exists, so that the rehearsal changes only what it means to change.
runner=(ipykernel=="$ipykernel_pin" nbclient nbconvert)
if [[ -x .venv/bin/python ]]; then
    mapfile -t runner < <(.venv/bin/python - "$ipykernel_pin" <<'PY'
import sys
from importlib.metadata import version
print(f"ipykernel=={sys.argv[1]}")
for name in ("nbclient", "nbconvert"):
    print(f"{name}=={version(name)}")
PY
)
    (( ${#runner[@]} == 3 )) || { echo "error: could not read nbclient and nbconvert's versions from .venv" >&2; exit 1; }
fi

# The environment holds a CUDA build of torch (about 5 GB in many files). On a disk mounted with `discard`,
# deleting that many files takes minutes; in memory it is instant, and writing is faster too. Use /dev/shm when
# it has room to spare, the usual temporary folder otherwise.
base=${TMPDIR:-/tmp}
if [[ -d /dev/shm && -w /dev/shm ]] && (( $(df --output=avail -k /dev/shm | tail -n 1) > 12 * 1024 * 1024 )); then
    base=/dev/shm
fi
root=$(mktemp -d "$base/colab-rehearsal.XXXXXX")
venv=$root/venv
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
log=$root/log.txt

t0=$SECONDS
cleanup() {
    local start=$SECONDS
    rm -rf "$root"
    echo "::: rehearsal: removed the temporary environment in $((SECONDS - start)) s"
}
trap cleanup EXIT
# Interrupted or stopped, still clean up: a venv left in /dev/shm would hold 5 GB of memory.
trap 'exit 130' INT
trap 'exit 143' TERM

step() {  # step LABEL COMMAND...: run COMMAND with its output in the log (shown on failure), print its time
    local label=$1 start=$SECONDS rc=0
    shift
    "$@" >"$log" 2>&1 || rc=$?
    if (( rc != 0 )); then
        grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -n 60 >&2
        echo "::: rehearsal: $label FAILED (exit $rc) after $((SECONDS - start)) s" >&2
        return "$rc"
    fi
    echo "::: rehearsal: $label in $((SECONDS - start)) s"
}

echo "::: rehearsal: $notebook in $root (torch==$torch_pin preinstalled; runner: ${runner[*]})"

# 1. The reader's starting point: a Python with torch and nothing of ours. --no-compile skips byte-compiling
# torch's thousands of modules at install time; Python compiles the few it imports when it imports them.
step "fresh virtual environment" "$python" -m venv "$venv"
step "torch==$torch_pin preinstalled" "${pip[@]}" install --no-compile "torch==$torch_pin"
torch_before=$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("torch"))')

# 2. The wheel, built from a copy of the sources (a build in place would leave build/ in the repository).
mkdir -p "$root/src" "$root/dist"
cp -R pyproject.toml README.md unlearnlib "$root/src/"
cp LICENSE* "$root/src/" 2>/dev/null || true
find "$root/src" -name __pycache__ -type d -prune -exec rm -rf {} +
step "wheel of unlearnlib built" "${pip[@]}" wheel --no-deps "$root/src" -w "$root/dist"
wheels=("$root"/dist/unlearnlib-*.whl)
step "wheel installed with its dependency ranges, and the notebook runner" \
    "${pip[@]}" install --no-compile "${wheels[0]}" "${runner[@]}"

torch_after=$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("torch"))')
if [[ $torch_after != "$torch_before" ]]; then
    echo "error: installing unlearnlib replaced torch $torch_before by $torch_after: the ranges in pyproject.toml" \
         "must accept the torch a Colab runtime already has" >&2
    exit 1
fi
echo "::: rehearsal: torch kept at $torch_after"
step "pip check" "${pip[@]}" check

# 3. The chapter, alone in an empty folder. JUPYTER_DATA_DIR points at an empty folder so that the only kernel
# found is the one of this environment (a user-wide kernel named python3 would otherwise win).
work=$root/work
mkdir -p "$work" "$root/cache" "$root/jupyter"
cp "$notebook" "$work/"
name=$(basename "$notebook")
run_env=(env -u PYTHONPATH -u MPLBACKEND -u UNLEARN_PROFILE -u UNLEARN_DEVICE -u VIRTUAL_ENV
         PATH="$venv/bin:$PATH" UNLEARN_CACHE="$root/cache" JUPYTER_DATA_DIR="$root/jupyter"
         OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}")

where=$(cd "$work" && "${run_env[@]}" "$venv/bin/python" -c 'import unlearnlib; print(unlearnlib.__file__)')
if [[ $where != "$venv"/* ]]; then
    echo "error: unlearnlib was imported from $where, not from the installed wheel" >&2
    exit 1
fi
kernel=$(cd "$work" && "${run_env[@]}" "$venv/bin/jupyter" kernelspec list --json |
         "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["kernelspecs"]["python3"]["resource_dir"])')
if [[ $kernel != "$venv"/* ]]; then
    echo "error: the python3 kernel would come from $kernel, not from the rehearsal environment" >&2
    exit 1
fi

overhead=$((SECONDS - t0))
start=$SECONDS
rc=0
(cd "$work" && "${run_env[@]}" timeout $((limit_s + 60)) "$venv/bin/jupyter" nbconvert --to notebook --execute \
    --ExecutePreprocessor.timeout="$limit_s" --output executed.ipynb "$name") >"$log" 2>&1 || rc=$?
chapter_s=$((SECONDS - start))
if (( rc != 0 )); then
    tail -n 80 "$log" >&2
    echo "error: $name failed (exit $rc) after $chapter_s s, run cold from $work" >&2
    exit 1
fi
echo "::: rehearsal: $name executed cold, outside the repository, in $chapter_s s (limit $limit_s s)"
if (( chapter_s > limit_s )); then
    echo "error: the cold start of $name took $chapter_s s, over the $limit_s s a Colab reader is asked to wait" >&2
    exit 1
fi
echo "::: rehearsal: $overhead s of set-up before the chapter"
