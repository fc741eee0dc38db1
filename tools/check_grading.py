"""Prove that a chapter's graded exercises grade: the solutions earn every point, the untouched skeletons earn none
without crashing the grader, and every planted wrong solution loses exactly the points of the test cases it breaks.

The planted wrong solutions ("mutants") of chapter NN are in tests/grading/mutants_NN.py:

    MUTANTS = {"name": {"exercise": LABEL, "fails": [1-based test cells of that exercise], "source": "def ..."}}

A submission is simulated as the student's notebook would run: the setup cell, then every graded cell (the
solution, its skeleton, or for one exercise a mutant), then each test cell on a copy of the resulting namespace,
one point per test case that passes. The test cases are those otter assign wrote into the autograder, run by
otter's own runner; only the kernel is left out, so this takes seconds (tests/test_grading.py also grades
generated notebooks end to end with `otter run`).

    python tools/check_grading.py 5          chapter 5
    python tools/check_grading.py            every chapter
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exercises as ex  # noqa: E402
import make_assignments  # noqa: E402

ROOT = ex.ROOT


def load_mutants(number: int, root: Path = ROOT) -> dict[str, dict]:
    path = root / "tests" / "grading" / f"mutants_{number:02d}.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"mutants_{number:02d}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.MUTANTS)


def _copy_env(env: dict) -> dict:
    """A namespace a test may change without changing the next test's: data copied, modules and functions shared."""
    out = {}
    for k, v in env.items():
        if k == "__builtins__" or isinstance(v, (types.ModuleType, types.FunctionType, type)):
            out[k] = v
            continue
        try:
            out[k] = copy.deepcopy(v)
        except Exception:  # something that cannot be copied (a generator, a file): shared
            out[k] = v
    return out


@dataclass
class Grade:
    score: int
    possible: int
    failed: dict[str, list[int]]  # exercise label -> 1-based test cells that failed

    def __str__(self) -> str:
        return f"{self.score}/{self.possible}"


class Grader:
    """Grades simulated submissions of one chapter.

    With `otter_tests` (question -> the OK-format test spec that otter assign wrote into the autograder notebook's
    metadata) the test cases run through otter's own doctest runner, exactly as the autograder runs them;
    without, each test cell of the source is executed as it is written.
    """

    def __init__(self, chapter: ex.ChapterExercises, otter_tests: dict[str, dict] | None = None):
        self.chapter = chapter
        self.otter_tests = otter_tests
        if chapter.problems:
            raise SystemExit(f"error: notebooks/{chapter.stem}.py: {chapter.problems[0]}")
        self.setup_env: dict = {"__name__": "__main__"}
        if chapter.setup_cell is not None:
            exec(compile(chapter.cell(chapter.setup_cell).source, f"<{chapter.stem} setup>", "exec"),
                 self.setup_env)

    def sources(self, replace: dict[str, str] | None = None, skeleton: bool = False) -> dict[str, str]:
        """The graded cells' sources of a submission: the solutions, or the skeletons, with some replaced."""
        out = {}
        for e in self.chapter.graded:
            src = self.chapter.cell(e.graded_cell).source
            out[e.label] = ex.solution_body(src)[0] if skeleton else src
        out.update(replace or {})
        return out

    def grade(self, sources: dict[str, str]) -> Grade:
        env = _copy_env(self.setup_env)
        for label, src in sources.items():
            try:
                exec(compile(src, f"<{label}>", "exec"), env)
            except Exception:  # a submission whose cell raises still gets graded (its tests fail)
                pass
        score = possible = 0
        failed: dict[str, list[int]] = {}
        for e in self.chapter.graded:
            for k, passed in enumerate(self._run_tests(e, env), start=1):
                possible += 1
                score += passed
                if not passed:
                    failed.setdefault(e.label, []).append(k)
        return Grade(score, possible, failed)

    def _run_tests(self, e: ex.Exercise, env: dict) -> list[bool]:
        if self.otter_tests is None:
            results = []
            for k, i in enumerate(e.test_cells, start=1):
                try:
                    exec(compile(self.chapter.cell(i).source, f"<{e.label} test {k}>", "exec"), _copy_env(env))
                    results.append(True)
                except Exception:
                    results.append(False)
            return results
        from otter.test_files.ok_test import OKTestFile

        spec = self.otter_tests[e.label]
        cases = spec["suites"][0]["cases"]
        if len(cases) != len(e.test_cells):
            raise AssertionError(f"{e.label}: otter has {len(cases)} test cases, the source {len(e.test_cells)}")
        results = []
        for case in cases:  # one case at a time, each on its own copy of the namespace
            single = OKTestFile.from_spec({**spec, "suites": [{**spec["suites"][0], "cases": [case]}]})
            single.run(_copy_env(env))
            results.append(single.test_case_results[0].passed)
        return results


def otter_tests(autograder_notebook: Path) -> dict[str, dict]:
    """The test specs otter assign wrote into an autograder notebook (hidden cases included)."""
    import nbformat

    return dict(nbformat.read(autograder_notebook, as_version=4).metadata["otter"]["tests"])


def check_chapter(chapter: ex.ChapterExercises, mutants: dict[str, dict],
                  tests: dict[str, dict] | None = None) -> list[str]:
    """Problems found (empty: the grader grades this chapter as it should); prints a line per check."""
    problems = []
    t0 = time.perf_counter()
    grader = Grader(chapter, tests)
    solution = grader.grade(grader.sources())
    print(f"{chapter.stem}: solutions {solution}")
    if solution.score != solution.possible:
        problems.append(f"the solutions fail {solution.failed}")
    student = grader.grade(grader.sources(skeleton=True))
    print(f"{chapter.stem}: untouched skeletons {student}")
    if student.score != 0:
        problems.append(f"the untouched skeletons earn {student.score} points (they must earn none)")
    labels = {e.label: e for e in chapter.graded}
    count = {label: 0 for label in labels}
    for name, m in mutants.items():
        if m["exercise"] not in labels:
            problems.append(f"mutant {name!r} names {m['exercise']!r}, not a graded exercise of this chapter")
            continue
        count[m["exercise"]] += 1
        got = grader.grade(grader.sources({m["exercise"]: m["source"]}))
        expected = sorted(m["fails"])
        found = sorted(got.failed.get(m["exercise"], []))
        others = {k: v for k, v in got.failed.items() if k != m["exercise"]}
        ok = found == expected and not others and expected and got.score == solution.possible - len(expected)
        print(f"{chapter.stem}: mutant {name!r}: {got} (fails {found}, expected {expected})"
              + ("" if ok else "  <-- WRONG"))
        if not ok:
            problems.append(f"mutant {name!r} of {m['exercise']} fails cells {found} (and {others or 'nothing'} "
                            f"elsewhere), expected exactly {expected}")
    for label, n in count.items():
        if n < 3:
            problems.append(f"{label} has {n} planted wrong solutions (at least three)")
    print(f"{chapter.stem}: checked in {time.perf_counter() - t0:.1f} s")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter numbers (default: every chapter 1 and later)")
    args = parser.parse_args(argv)
    paths = [ex.chapter_path(n) for n in args.chapters] if args.chapters else ex.chapter_paths()
    failed = False
    for path in paths:
        chapter = ex.read(path)
        if chapter.number < 1 and not chapter.graded:
            continue
        problems = chapter.problems
        if not problems:
            with tempfile.TemporaryDirectory() as tmp:
                make_assignments.OUT = Path(tmp)
                make_assignments.build([chapter])
                tests = otter_tests(Path(tmp) / chapter.stem / "autograder" / f"{chapter.stem}.ipynb")
                problems = check_chapter(chapter, load_mutants(chapter.number), tests)
        for p in problems:
            print(f"error: {chapter.stem}: {p}", file=sys.stderr)
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
