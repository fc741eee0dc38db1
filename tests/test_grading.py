"""The course edition grades: every chapter follows the exercise markup, and its otter-grader assignment gives the
solutions full marks, the untouched student notebook zero, and every planted wrong solution (tests/grading/) the
score of exactly the test cases it breaks.

The assignments are generated once (tools/make_assignments.py, into a temporary folder); the planted solutions are
graded in-process with otter's own test runner (tools/check_grading.py: seconds per chapter), and two chapters are
graded end to end with `otter run` on the generated notebooks, as an instructor would grade them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import check_grading  # noqa: E402
import exercises as ex  # noqa: E402
import make_assignments  # noqa: E402

CHAPTERS = ex.chapter_paths(ROOT)
GRADED_CHAPTERS = [p for p in CHAPTERS if int(p.stem[:2]) >= 1]
# Graded end to end with `otter run` (a kernel per notebook, about 15 s each): the first and the last chapter.
END_TO_END = [GRADED_CHAPTERS[0], GRADED_CHAPTERS[-1]]


@pytest.fixture(scope="session")
def assignments(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("assignments")
    saved = make_assignments.OUT
    make_assignments.OUT = out
    try:
        for path in GRADED_CHAPTERS:
            chapter = ex.read(path)
            if not chapter.problems:  # a chapter off the markup fails its own tests, not everyone's
                make_assignments.build([chapter])
    finally:
        make_assignments.OUT = saved
    return out


def _built(assignments: Path, chapter: ex.ChapterExercises) -> Path:
    where = assignments / chapter.stem
    assert where.exists(), f"no assignment for {chapter.stem}: " + "; ".join(chapter.problems)
    return where


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_follows_the_exercise_markup(path):
    chapter = ex.read(path)
    assert chapter.problems == [], f"{path.name}: " + "; ".join(chapter.problems)
    assert chapter.exercises, f"{path.name} has no exercises"


def test_exercise_labels_are_unique_in_the_book():
    labels = [e.label for p in CHAPTERS for e in ex.read(p).exercises]
    assert len(labels) == len(set(labels))


def test_markup_check_catches_departures(tmp_path):
    """The checker is not vacuous: a chapter with a graded exercise lacking tests, a solution-less exercise and a
    wrong meta line is refused, naming each problem."""
    src = '''# %% [markdown]
# ## Exercises

# %% tags=["exercise-setup"]
ex_a = 1

# %% [markdown]
# ```{exercise} One
# :label: ex-01-one
#
# *code · graded, 3 points · about 1 CPU minute*
#
# Do it.
# ```

# %% tags=["remove-cell", "graded"]
def f():
    # BEGIN SOLUTION
    return 1
    # END SOLUTION

# %% tags=["remove-cell", "graded-test"]
assert f() == 1

# %% [markdown]
# ```{exercise} Two
# :label: ex-01-two
#
# *experiment · about 3 CPU minutes*
#
# Measure.
# ```

# %% [markdown]
# ```{exercise} Three
# :label: ex-01-three
#
# *essay · no computing*
#
# Write.
# ```
'''
    path = tmp_path / "01_fake.py"
    path.write_text(src, encoding="utf-8")
    problems = " | ".join(ex.read(path).problems)
    assert "ex-01-one: 3 points announced, 1 test cells" in problems
    assert "ex-01-two: no solution" in problems
    assert "ex-01-three: its first line is not the meta line" in problems
    assert "no `## Quiz` section" in problems


@pytest.mark.parametrize("path", GRADED_CHAPTERS, ids=lambda p: p.stem)
def test_grader_grades_solutions_skeletons_and_planted_errors(path, assignments):
    chapter = ex.read(path)
    tests = check_grading.otter_tests(_built(assignments, chapter) / "autograder" / f"{chapter.stem}.ipynb")
    problems = check_grading.check_chapter(chapter, check_grading.load_mutants(chapter.number, ROOT), tests)
    assert problems == [], "; ".join(problems)


@pytest.mark.parametrize("path", GRADED_CHAPTERS, ids=lambda p: p.stem)
def test_student_notebook_hides_solutions_and_hidden_tests(path, assignments):
    chapter = ex.read(path)
    student = nbformat.read(_built(assignments, chapter) / "student" / f"{chapter.stem}.ipynb", as_version=4)
    title = student.cells[0].source.split("\n")
    assert title[0].startswith(f"# Chapter {chapter.number}, exercises: ") and len(title) < 5, title[:3]
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "instructor" not in json.dumps(student.metadata)
    for e in chapter.graded:
        solution = chapter.cell(e.graded_cell).source
        inside = solution.split("# BEGIN SOLUTION", 1)[1].split("# END SOLUTION", 1)[0]
        for line in (x.strip() for x in inside.split("\n")):
            if len(line) > 12 and line not in solution.split("# BEGIN SOLUTION", 1)[0]:
                assert line not in text, f"{e.label}: the student notebook shows the solution line {line!r}"
        public = student.metadata["otter"]["tests"][e.label]["suites"][0]["cases"]
        assert all(not c["hidden"] for c in public)
        assert len(public) == sum("hidden" not in ex.tags(chapter.cell(i)) for i in e.test_cells)
    if chapter.answers_cell is not None:
        answers = chapter.cell(chapter.answers_cell).source
        assert answers.split("\n")[0] not in text


@pytest.mark.parametrize("path", END_TO_END, ids=lambda p: p.stem)
def test_otter_run_end_to_end(path, assignments, tmp_path):
    """`otter run` (a kernel, the autograder zip) gives the solutions full marks and the untouched student notebook
    zero on every graded exercise."""
    chapter = ex.read(path)
    where = _built(assignments, chapter)
    zipped = where / "autograder" / f"{chapter.stem}-autograder.zip"
    total = sum(e.points for e in chapter.graded)
    for notebook, expected in ((where / "autograder" / f"{chapter.stem}.ipynb", total),
                               (where / "student" / f"{chapter.stem}.ipynb", 0)):
        out = tmp_path / notebook.parent.name
        out.mkdir()
        run = subprocess.run([str(Path(sys.executable).parent / "otter"), "run", "-a", str(zipped), str(notebook),
                              "-o", str(out)], capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        results = json.loads((out / "results.json").read_text())
        scores = {t["name"]: t.get("score") for t in results["tests"] if t["name"] != "Public Tests"}
        assert set(scores) == {e.label for e in chapter.graded}
        assert sum(scores.values()) == expected, f"{notebook.name}: {scores}"
