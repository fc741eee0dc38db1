"""Build the student edition's assignments: one otter-grader assignment per chapter, from the chapter's source.

For each chapter notebooks/NN_topic.py this tool writes build/assignments/NN_topic/:

    master/NN_topic.ipynb      the otter "master" notebook made from the chapter's exercise section (solutions
                               and every test in it; generated, never edited)
    student/NN_topic.ipynb     what students get: the prompts, the setup cell, a skeleton (`...`) where each graded
                               solution was, the public tests behind `grader.check(...)`, the quiz without answers
    autograder/NN_topic.ipynb  the same with the solutions (the notebook that must earn full marks)
    autograder/NN_topic-autograder.zip   the autograder (hidden tests included) for `otter run` or Gradescope

Grade a submission locally, without Docker:

    otter run -a build/assignments/05_gradient_surgery/autograder/05_gradient_surgery-autograder.zip \
        submission.ipynb -o OUT

    python tools/make_assignments.py            every chapter (what `make assignments` runs)
    python tools/make_assignments.py 5 7        chapters 5 and 7
    python tools/make_assignments.py --master   only the master notebooks (no otter assign)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import re
import shutil
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exercises as ex  # noqa: E402
import make_notebooks as mn  # noqa: E402

ROOT = ex.ROOT
OUT = ROOT / "build" / "assignments"

# otter converts each test cell into a doctest; this header gives the case its visibility and its one point.
TEST_CONFIG = '""" # BEGIN TEST CONFIG\nhidden: {hidden}\npoints: 1\n""" # END TEST CONFIG\n'


def _converter(project: mn.Project, stem: str, labels: mn.Labels) -> mn.Converter:
    chapter = next(c for c in project.chapters if c.stem == stem)
    return mn.Converter(project, chapter, labels, collect=False)


OTTER_SPEC = "otter-grader==7.0.0"


def grader_cell(project: mn.Project, stem: str) -> str:
    """The first code cell: in Colab, installs the book's library of this release and the grader; everywhere,
    starts the grader (otter reads the public tests from this notebook's metadata)."""
    return f'''\
# Colab only: install the book's library, unlearnlib, of this release, and the grader, otter-grader.
import sys

if "google.colab" in sys.modules:
    import subprocess

    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q",
         "{project.install_spec}", "{OTTER_SPEC}"],
        capture_output=True, text=True,
    )
    if pip.returncode != 0:
        print(pip.stdout, pip.stderr, sep="\\n")
        raise RuntimeError("pip could not install unlearnlib and otter-grader (see above)")

import otter

grader = otter.Notebook("{stem}.ipynb")
'''


def master_notebook(chapter: ex.ChapterExercises, project: mn.Project, labels: mn.Labels):
    """The otter master notebook of one chapter (nbformat object)."""
    if chapter.problems:
        raise SystemExit(f"error: notebooks/{chapter.stem}.py does not follow the exercise markup: "
                         f"{chapter.problems[0]} (see the instructor guide, book/instructor.md)")
    conv = _converter(project, chapter.stem, labels)
    # Number the exercises as the book does: run the converter over the chapter's Markdown in order.
    prompts: dict[str, str] = {}
    by_index = {e.index: e for e in chapter.exercises}
    title = ""
    for i, cell in enumerate(chapter.notebook.cells):
        if cell.cell_type != "markdown" or "remove-cell" in ex.tags(cell):
            continue
        text = conv.convert_cell(cell.source)
        if not title and text.startswith("# "):
            title = text.split("\n", 1)[0][2:].strip()
        if i in by_index:
            prompts[by_index[i].label] = text
    quiz_text = conv.convert_cell(chapter.cell(chapter.quiz_cell).source) if chapter.quiz_cell is not None else ""

    cells = []
    raw = nbformat.v4.new_raw_cell
    md = nbformat.v4.new_markdown_cell
    code = nbformat.v4.new_code_cell
    requirements = OUT / "requirements.txt"
    cells.append(raw(
        "# ASSIGNMENT CONFIG\n"
        f"name: {chapter.stem}\n"
        f"requirements: {requirements}\n"
        "overwrite_requirements: true\n"
        "init_cell: false\n"
        "check_all_cell: false\n"
        "export_cell: false\n"
        "run_tests: false\n"
        "generate: true\n"))
    page = project.page_url(f"notebooks/{chapter.stem}")
    numbered = re.match(r"^(\d+)\.\s+(.*)$", title)
    heading = f"Chapter {numbered.group(1)}, exercises: {numbered.group(2)}" if numbered else f"Exercises: {title}"
    cells.append(md(
        f"# {heading}\n\n"
        f"The exercises of [this chapter of the book]({page}). Run the first two code cells first (the grader, "
        "and the inputs of the graded exercises). Graded exercises "
        "(marked *graded*) ask for a function: replace each `...` by your code, then run "
        "`grader.check(\"LABEL\")` below it to run the public tests. The hidden tests run when your notebook "
        "is graded. The other exercises are answered in text or code cells of your own."))
    cells.append(code(grader_cell(project, chapter.stem)))
    cells.append(code(chapter.cell(chapter.setup_cell).source if chapter.setup_cell is not None else ""))
    for e in chapter.exercises:
        prompt = prompts[e.label]
        if not e.graded:
            cells.append(md(prompt))
            cells.append(md("*Your answer.*") if e.kind in ("concept", "derivation") else code(""))
            continue
        cells.append(raw(f"# BEGIN QUESTION\nname: {e.label}\npoints: {e.points}"))
        cells.append(md(prompt))
        cells.append(raw("# BEGIN SOLUTION"))
        cells.append(code(chapter.cell(e.graded_cell).source))
        cells.append(raw("# END SOLUTION"))
        cells.append(raw("# BEGIN TESTS"))
        for i in e.test_cells:
            hidden = "hidden" in ex.tags(chapter.cell(i))
            cells.append(code(TEST_CONFIG.format(hidden=str(hidden).lower()) + chapter.cell(i).source))
        cells.append(raw("# END TESTS"))
        cells.append(raw("# END QUESTION"))
    if quiz_text:
        cells.append(md(quiz_text))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def build(chapters: list[ex.ChapterExercises], master_only: bool = False) -> list[Path]:
    project = mn.load_project(ROOT)
    labels = mn.collect_labels(project, mn.chapter_sources(project))
    OUT.mkdir(parents=True, exist_ok=True)
    # What the autograder installs on a grading server (Gradescope): the book's library of this release, which
    # brings torch and the rest.
    (OUT / "requirements.txt").write_text(project.install_spec + "\n", encoding="utf-8")
    written = []
    from otter.assign import main as otter_assign
    for chapter in chapters:
        where = OUT / chapter.stem
        if where.exists():
            shutil.rmtree(where)
        where.mkdir(parents=True)
        master = where / "master" / f"{chapter.stem}.ipynb"
        master.parent.mkdir()
        nbformat.write(master_notebook(chapter, project, labels), master)
        written.append(master)
        if master_only:
            continue
        dist = where / "dist"
        log = io.StringIO()
        logging.getLogger("otter").setLevel(logging.WARNING)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            otter_assign(str(master), str(dist), no_pdfs=True, no_run_tests=True)
        for part in ("student", "autograder"):
            target = where / part
            shutil.move(str(dist / part), target)
        # otter names the zip after the time it was made; one stable name per chapter instead.
        (zipped,) = (where / "autograder").glob("*.zip")
        zipped.rename(where / "autograder" / f"{chapter.stem}-autograder.zip")
        dist.rmdir()
        written.append(where / "student" / f"{chapter.stem}.ipynb")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter numbers (default: every chapter with exercises)")
    parser.add_argument("--master", action="store_true", help="write the master notebooks only")
    args = parser.parse_args(argv)
    paths = [ex.chapter_path(n) for n in args.chapters] if args.chapters else ex.chapter_paths()
    chapters = [c for c in (ex.read(p) for p in paths) if c.number >= 1 or args.chapters]
    written = build(chapters, master_only=args.master)
    for path in written:
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
