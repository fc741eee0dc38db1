"""The exercise sections of the chapters, read from their one source (notebooks/NN_topic.py).

Every chapter ends with the same markup (the book's instructor guide, book/instructor.md, describes it for
authors): an `## Exercises` section whose exercises are `{exercise}` directives with a label and a first line

    *kind · about N CPU minutes*        or   *code · graded, P points · about N CPU minutes*

(kind: concept, derivation, code, experiment or project); the solution of an exercise that is not graded follows it
between `{solution-start} LABEL` and `{solution-end}` cells (text and code cells, shown collapsed in the book); a
graded exercise is followed instead by one code cell tagged `graded` (the function the student writes, its solution
between `# BEGIN SOLUTION` and `# END SOLUTION`) and by its test cells, tagged `graded-test` (and `hidden` when the
student does not see them), one point each. A code cell tagged `exercise-setup` holds what the graded exercises
need; a `## Quiz` section ends the chapter, its answers in a Markdown cell tagged `instructor`.

This module only reads that markup (tools/make_assignments.py, tools/make_editions.py, tools/check_grading.py and
the tests use it); `problems(chapter)` lists every way a chapter departs from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("concept", "derivation", "code", "experiment", "project")
META_RE = re.compile(r"^\*(?P<kind>concept|derivation|code|experiment|project)"
                     r"(?: · graded, (?P<points>\d+) points?)?"
                     r" · (?:no computing|about (?P<minutes>\d+) CPU minutes?)\*$")
EXERCISE_RE = re.compile(r"^```\{exercise\}[ \t]*(?P<title>.*?)[ \t]*$")
SOLUTION_START_RE = re.compile(r"^```\{solution-start\}[ \t]+(?P<label>\S+)[ \t]*$")
SOLUTION_END_RE = re.compile(r"^```\{solution-end\}")
LABEL_RE = re.compile(r"^:label:[ \t]+(?P<label>\S+)[ \t]*$", re.M)


@dataclass
class Exercise:
    label: str
    title: str
    kind: str
    points: int  # 0 when not graded
    minutes: int  # 0 for "no computing"
    prompt: str  # the Markdown cell (MyST) of the exercise, as written
    index: int  # the exercise cell's position in the notebook
    graded_cell: int | None = None  # position of the `graded` code cell
    test_cells: list[int] = field(default_factory=list)  # positions of its `graded-test` cells, in order
    solution_cells: list[int] = field(default_factory=list)  # positions of the cells of its solution block

    @property
    def graded(self) -> bool:
        return self.points > 0

    @property
    def body(self) -> str:
        """The prompt's text without the fences, the options and the meta line."""
        lines = self.prompt.split("\n")[1:]
        while lines and (lines[0].startswith(":") or not lines[0].strip()):
            lines = lines[1:]
        if lines and META_RE.match(lines[0].strip()):
            lines = lines[1:]
        while lines and (not lines[-1].strip() or lines[-1].strip().startswith("```")):
            lines = lines[:-1]
        return "\n".join(lines).strip("\n")


@dataclass
class ChapterExercises:
    path: Path
    notebook: object  # the jupytext notebook
    exercises: list[Exercise]
    setup_cell: int | None
    section_start: int | None  # position of the `## Exercises` cell
    quiz_cell: int | None
    answers_cell: int | None
    problems: list[str]

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def number(self) -> int:
        return int(self.path.stem[:2])

    def cell(self, i: int):
        return self.notebook.cells[i]

    @property
    def graded(self) -> list[Exercise]:
        return [e for e in self.exercises if e.graded]

    def by_label(self, label: str) -> Exercise:
        for e in self.exercises:
            if e.label == label:
                return e
        raise KeyError(f"{self.stem} has no exercise labelled {label!r}")


def tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def chapter_paths(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))


def chapter_path(number: int | str, root: Path = ROOT) -> Path:
    found = [p for p in chapter_paths(root) if p.stem.startswith(f"{int(number):02d}_")]
    if not found:
        raise SystemExit(f"error: no chapter {number} in notebooks/ (expected notebooks/{int(number):02d}_*.py)")
    return found[0]


def read(path: Path) -> ChapterExercises:
    """Parse one chapter's exercise section."""
    nb = jupytext.read(path, fmt="py:percent")
    problems: list[str] = []
    exercises: list[Exercise] = []
    setup = section = quiz = answers = None
    open_solution: Exercise | None = None
    current: Exercise | None = None
    for i, cell in enumerate(nb.cells):
        src = cell.source
        first = src.split("\n", 1)[0].strip()
        t = tags(cell)
        if cell.cell_type == "markdown" and re.search(r"^## Exercises\s*$", src, re.M):
            section = i
        if cell.cell_type == "markdown" and re.search(r"^## Quiz\s*$", src, re.M):
            quiz = i
            current = None
        if "instructor" in t:
            answers = i
        if "exercise-setup" in t:
            if setup is not None:
                problems.append("more than one cell tagged exercise-setup")
            setup = i
        if open_solution is not None:
            open_solution.solution_cells.append(i)
            if cell.cell_type == "markdown" and SOLUTION_END_RE.match(first):
                open_solution = None
            continue
        # An exercise: a Markdown cell with an {exercise} fence (after a heading such as "### Projects", maybe).
        fence = next((x.strip() for x in src.split("\n") if x.strip().startswith("```{exercise}")), "")
        m = EXERCISE_RE.match(fence) if cell.cell_type == "markdown" else None
        if m:
            src = src[src.index("```{exercise}"):]
            label = LABEL_RE.search(src)
            body = [x.strip() for x in src.split("\n")[1:] if x.strip() and not x.strip().startswith(":")]
            meta = META_RE.match(body[0]) if body else None
            if not label:
                problems.append(f"cell {i}: an exercise without :label:")
                continue
            if not meta:
                problems.append(f"{label.group('label')}: its first line is not the meta line "
                                f"('*kind · about N CPU minutes*'), found {body[:1]}")
                continue
            if src.count("```{exercise}") > 1:
                problems.append(f"{label.group('label')}: one exercise per Markdown cell")
            current = Exercise(label.group("label"), m.group("title"), meta.group("kind"),
                               int(meta.group("points") or 0), int(meta.group("minutes") or 0), src, i)
            exercises.append(current)
            continue
        m = SOLUTION_START_RE.match(first) if cell.cell_type == "markdown" else None
        if m:
            match = [e for e in exercises if e.label == m.group("label")]
            if not match:
                problems.append(f"cell {i}: a solution of {m.group('label')!r}, which no exercise above defines")
                continue
            open_solution = match[0]
            open_solution.solution_cells.append(i)
            if "```{solution-end}" in src:
                open_solution = None
            continue
        if "graded" in t:
            if current is None or not current.graded:
                problems.append(f"cell {i}: a graded cell not after a graded exercise")
            elif current.graded_cell is not None:
                problems.append(f"{current.label}: more than one graded cell")
            else:
                current.graded_cell = i
        if "graded-test" in t:
            if current is None or not current.graded:
                problems.append(f"cell {i}: a graded-test cell not after a graded exercise")
            else:
                current.test_cells.append(i)
    if open_solution is not None:
        problems.append(f"{open_solution.label}: its solution-start has no solution-end")
    chapter = ChapterExercises(path, nb, exercises, setup, section, quiz, answers, problems)
    problems.extend(check(chapter))
    return chapter


def check(ch: ChapterExercises) -> list[str]:
    """Every way the chapter departs from the markup, as sentences (empty when it follows it)."""
    out = []
    if ch.section_start is None:
        return ["no `## Exercises` section"]
    labels = [e.label for e in ch.exercises]
    out += [f"label {x} used twice" for x in sorted({x for x in labels if labels.count(x) > 1})]
    prefix = f"ex-{ch.number:02d}-"
    out += [f"{x}: labels of this chapter start with {prefix}" for x in labels if not x.startswith(prefix)]
    for e in ch.exercises:
        if e.index < ch.section_start:
            out.append(f"{e.label}: outside the Exercises section")
        if e.graded:
            if e.kind != "code":
                out.append(f"{e.label}: only code exercises are graded")
            if e.graded_cell is None:
                out.append(f"{e.label}: graded, but no cell tagged `graded` follows it")
            else:
                src = ch.cell(e.graded_cell).source
                if "# BEGIN SOLUTION" not in src or "# END SOLUTION" not in src:
                    out.append(f"{e.label}: its graded cell has no # BEGIN SOLUTION / # END SOLUTION")
                if "remove-cell" not in tags(ch.cell(e.graded_cell)):
                    out.append(f"{e.label}: its graded cell must be tagged remove-cell too")
            if len(e.test_cells) != e.points:
                out.append(f"{e.label}: {e.points} points announced, {len(e.test_cells)} test cells (one point "
                           "each)")
            public = [i for i in e.test_cells if "hidden" not in tags(ch.cell(i))]
            if not public or len(e.test_cells) - len(public) < 2:
                out.append(f"{e.label}: needs at least one public and two hidden test cells")
            for i in e.test_cells:
                cell = ch.cell(i)
                if "remove-cell" not in tags(cell):
                    out.append(f"{e.label}: test cell {i} must be tagged remove-cell too")
                if re.search(r"\n[ \t]*\n", cell.source.strip()):
                    out.append(f"{e.label}: test cell {i} has a blank line (the grader reads it as a doctest)")
            if e.solution_cells:
                out.append(f"{e.label}: a graded exercise has no solution block (its solution is the graded "
                           "cell)")
        else:
            if not e.solution_cells:
                out.append(f"{e.label}: no solution")
            if e.graded_cell is not None or e.test_cells:
                out.append(f"{e.label}: graded cells after an exercise that is not graded")
    if ch.number >= 1:
        if len(ch.graded) < 2:
            out.append(f"{len(ch.graded)} graded exercises (at least two)")
        if ch.graded and ch.setup_cell is None:
            out.append("graded exercises but no cell tagged exercise-setup")
        if ch.quiz_cell is None:
            out.append("no `## Quiz` section")
        elif ch.answers_cell is None or ch.answers_cell < ch.quiz_cell:
            out.append("the quiz has no answers cell (Markdown, tagged remove-cell and instructor)")
    if ch.answers_cell is not None and "remove-cell" not in tags(ch.cell(ch.answers_cell)):
        out.append("the quiz's answers cell must be tagged remove-cell too")
    projects = [e for e in ch.exercises if e.kind == "project"]
    others = [e for e in ch.exercises if e.kind != "project"]
    if projects and others and min(p.index for p in projects) < max(o.index for o in others):
        out.append("project exercises come last, under `### Projects`")
    return out


def solution_body(source: str) -> tuple[str, str]:
    """The graded cell's source split into (skeleton, solution-only lines): what otter leaves the student."""
    lines = source.split("\n")
    out, inside = [], False
    for line in lines:
        if line.strip() == "# BEGIN SOLUTION":
            inside = True
            out.append(line[:len(line) - len(line.lstrip())] + "...")
            continue
        if line.strip() == "# END SOLUTION":
            inside = False
            continue
        if not inside:
            out.append(line)
    return "\n".join(out), source


def all_chapters(root: Path = ROOT) -> list[ChapterExercises]:
    return [read(p) for p in chapter_paths(root)]
