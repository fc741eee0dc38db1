"""Build the student and the instructor editions of the book from the reader's edition, without re-executing.

The reader's edition (`make book`) executes every chapter and shows the exercises with the solutions of those
that are not graded, collapsed. The other two editions are made from its executed chapters
(book/_build/jupyter_execute/notebooks/*.ipynb), so that they show the same outputs and cost no execution:

    student      every solution removed (graded ones were never shown), quiz answers removed
    instructor   every solution shown: the graded exercises' solutions and tests (normally hidden), the quiz
                 answers, and a page with the autograders of every chapter (from `make assignments`)

Each edition is a copy of book/ in build/edition-NAME, built with execution off into book/_build/NAME.

    python tools/make_editions.py student
    python tools/make_editions.py instructor
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exercises as ex  # noqa: E402

ROOT = ex.ROOT
BOOK = ROOT / "book"
EXECUTED = BOOK / "_build" / "jupyter_execute" / "notebooks"
# Cells an instructor sees and nobody else: the graded solutions and their tests, the setup they need, the quiz
# answers. They carry `remove-cell` in the source so that the reader's edition hides them.
INSTRUCTOR_TAGS = {"graded", "graded-test", "instructor"}


def executed_chapter(chapter: ex.ChapterExercises):
    """The reader's build of a chapter, checked to be the build of the current source (same cells, same text)."""
    path = EXECUTED / f"{chapter.stem}.ipynb"
    if not path.exists():
        raise SystemExit(f"error: {path.relative_to(ROOT)} is missing: run `make book` first (the editions reuse "
                         "the reader's executed chapters)")
    nb = nbformat.read(path, as_version=4)
    source = [c.source for c in chapter.notebook.cells]
    if [c.source for c in nb.cells] != source:
        raise SystemExit(f"error: {path.relative_to(ROOT)} was built from another version of "
                         f"notebooks/{chapter.stem}.py: run `make book` again")
    return nb


def student(chapter: ex.ChapterExercises, nb):
    drop = {i for e in chapter.exercises for i in e.solution_cells}
    drop |= {i for i, c in enumerate(nb.cells) if INSTRUCTOR_TAGS & set(c.metadata.get("tags", []))}
    nb.cells = [c for i, c in enumerate(nb.cells) if i not in drop]
    return nb


def instructor(chapter: ex.ChapterExercises, nb):
    """Every cell shown; a line before each graded solution and its tests says what they are."""
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if INSTRUCTOR_TAGS & set(tags):
            cell.metadata["tags"] = [t for t in tags if t != "remove-cell"]
    solutions = {e.graded_cell: e for e in chapter.graded}
    tests = {e.test_cells[0]: e for e in chapter.graded}
    out = []
    for i, cell in enumerate(nb.cells):
        if i in solutions:
            out.append(nbformat.v4.new_markdown_cell(
                f"**Solution to {{ref}}`{solutions[i].label}`** (graded: students get the skeleton, in which "
                "`...` replaces the lines between `# BEGIN SOLUTION` and `# END SOLUTION`)."))
        if i in tests:
            e = tests[i]
            hidden = sum("hidden" in nb.cells[k].metadata.get("tags", []) for k in e.test_cells)
            out.append(nbformat.v4.new_markdown_cell(
                f"*Its {len(e.test_cells)} test cells, one point each ({hidden} hidden from students):*"))
        out.append(cell)
    nb.cells = out
    return nb


def autograder_page(dest: Path) -> str:
    """The instructor edition's page of autograders (copied from build/assignments)."""
    assignments = ROOT / "build" / "assignments"
    zips = sorted(assignments.glob("*/autograder/*.zip"))
    if not zips:
        raise SystemExit("error: no autograders in build/assignments: run `make assignments` first")
    static = dest / "_static" / "autograders"
    static.mkdir(parents=True, exist_ok=True)
    lines = ["# Autograders", "",
             "One otter-grader autograder per chapter (hidden tests included), and the student notebook it "
             "grades. Grade a submission locally with `otter run -a AUTOGRADER.zip SUBMISSION.ipynb -o OUT`, or "
             "upload the zip to Gradescope as a programming assignment.", "",
             "| chapter | autograder | student notebook |", "|---|---|---|"]
    for z in zips:
        stem = z.parent.parent.name
        shutil.copy(z, static / f"{stem}-autograder.zip")
        shutil.copy(z.parent.parent / "student" / f"{stem}.ipynb", static / f"{stem}-student.ipynb")
        lines.append(f"| {stem} | {{download}}`{stem}-autograder.zip <_static/autograders/{stem}-autograder.zip>` "
                     f"| {{download}}`{stem}.ipynb <_static/autograders/{stem}-student.ipynb>` |")
    return "\n".join(lines) + "\n"


def build(edition: str) -> Path:
    dest = ROOT / "build" / f"edition-{edition}"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(BOOK, dest, ignore=shutil.ignore_patterns("_build", "notebooks"), symlinks=False)
    (dest / "notebooks").mkdir()
    for path in ex.chapter_paths():
        chapter = ex.read(path)
        nb = executed_chapter(chapter)
        nb = student(chapter, nb) if edition == "student" else instructor(chapter, nb)
        nbformat.write(nb, dest / "notebooks" / f"{chapter.stem}.ipynb")
    config = yaml.safe_load((dest / "_config.yml").read_text(encoding="utf-8"))
    config["title"] = f"{config['title']} ({edition} edition)"
    config["execute"]["execute_notebooks"] = "off"
    config["exclude_patterns"] = [p for p in config["exclude_patterns"] if p != "**.ipynb"]
    # The status page executes to say where the book was built; this edition executes nothing.
    (dest / "status.md").write_text(
        "(book-status)=\n# Build status\n\nThis edition shows the outputs of the reader's edition and executes "
        "nothing; the reader's edition's status page records where the chapters ran and how long each took.\n",
        encoding="utf-8")
    toc = yaml.safe_load((dest / "_toc.yml").read_text(encoding="utf-8"))
    if edition == "instructor":
        (dest / "autograders.md").write_text(autograder_page(dest), encoding="utf-8")
        toc["parts"][-1]["chapters"].insert(0, {"file": "autograders"})
    (dest / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (dest / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    out = BOOK / "_build" / edition
    if out.exists():
        shutil.rmtree(out)
    jb = Path(sys.executable).parent / "jupyter-book"
    subprocess.run([str(jb), "build", str(dest), "--path-output", str(out), "-W", "-n", "--keep-going"],
                   check=True, cwd=ROOT)
    return out / "_build" / "html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("edition", choices=["student", "instructor"])
    args = parser.parse_args(argv)
    try:
        html = build(args.edition)
    except subprocess.CalledProcessError as e:
        print(f"error: the {args.edition} edition did not build (exit {e.returncode}; see above)", file=sys.stderr)
        return 1
    print(f"the {args.edition} edition: {html.relative_to(ROOT)}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
