"""The notebooks readers run outside the book, and the one place that names the repository.

- colab/*.ipynb hold no MyST (roles, directive fences, `(label)=` targets) and no cell tag only the book acts on:
  Jupyter and Colab would show them as raw text.
- The converter turns each MyST construct the chapters use into plain Markdown, checked on a hand-made chapter
  against hand-written output; the sanity check rejects a notebook with a role left in it.
- The chapters' code lines fit in 88 characters (the book's code width).
- The repository's address is written in book/_config.yml and nowhere else but in generated text, and every
  generated link (badges, install cells, README, CITATION.cff) agrees with it and with pyproject's version.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jupytext
import pytest
from notebook_tool import ROOT, mn


SOURCES = sorted((ROOT / "notebooks").glob(mn.CHAPTER_GLOB))
# Every chapter's notebook, and any other notebook found in colab/ (an orphan is checked too).
NOTEBOOKS = sorted({ROOT / "colab" / f"{p.stem}.ipynb" for p in SOURCES} | set((ROOT / "colab").glob("*.ipynb")))
CODE_WIDTH = 88


@pytest.fixture(scope="module")
def project():
    return mn.load_project(ROOT)


# ---------------------------------------------------------------------------------------------------------------
# The generated notebooks


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_myst_left_in_colab_notebooks(ipynb: Path):
    assert ipynb.exists(), f"colab/{ipynb.name} is missing: run `make notebooks`"
    nb = json.loads(ipynb.read_text(encoding="utf-8"))
    problems = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            problems += [f"cell {i}: {p}" for p in mn.leftovers("".join(cell["source"]))]
        book_tags = sorted(set(cell.get("metadata", {}).get("tags", [])) & mn.BOOK_TAGS)
        problems += [f"cell {i}: book-only tags {book_tags}"] if book_tags else []
        problems += [f"cell {i}: myst-nb metadata"] if "mystnb" in cell.get("metadata", {}) else []
    assert not problems, f"colab/{ipynb.name} would show MyST as raw text: {problems[:5]}"


@pytest.mark.parametrize("py", SOURCES, ids=[p.stem for p in SOURCES])
def test_chapter_code_lines_fit_the_code_width(py: Path):
    notebook = jupytext.read(py, fmt="py:percent")
    long = [f"cell {i} ({len(line)} chars): {line[:50]}..."
            for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            for line in cell.source.split("\n") if len(line) > CODE_WIDTH]
    assert not long, f"notebooks/{py.name}: code lines over {CODE_WIDTH} characters: {long[:5]}"


@pytest.mark.parametrize("py", SOURCES, ids=[p.stem for p in SOURCES])
def test_saving_a_chapter_in_jupyterlab_leaves_it_unchanged(py: Path):
    # JupyterLab saves a .py chapter through jupytext (notebooks/jupytext.toml): a chapter must already be in the
    # form jupytext writes, or merely opening and saving it would rewrite lines nobody edited.
    text = py.read_text(encoding="utf-8")
    saved = jupytext.writes(jupytext.reads(text, fmt="py:percent"), fmt="py:percent")
    first = next((a, b) for a, b in zip(text.split("\n") + [""], saved.split("\n") + [""]) if a != b) \
        if saved != text else None
    assert saved == text, f"notebooks/{py.name} changes when saved by jupytext; first differing line: {first}"


# ---------------------------------------------------------------------------------------------------------------
# One place names the repository


def _project_files() -> list[Path]:
    if shutil.which("git") and (ROOT / ".git").exists():
        names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.split("\n")
        return [ROOT / n for n in names if n and (ROOT / n).is_file() and not (ROOT / n).is_symlink()]
    skip = {".git", ".venv", "_build", "__pycache__", ".pytest_cache", ".ipynb_checkpoints"}
    return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def test_repository_is_named_in_one_configuration_file(project):
    org, repo = project.org_repo
    needles = [f"{org}/{repo}".lower(), f"{org}.github.io/{repo}".lower()]
    badges = {mn.badge_line(project, ch.stem) for ch in project.chapters}
    install = set(mn.install_cell(project).split("\n"))
    chapters = {ch.path for ch in project.chapters}
    readme_block = set(mn.readme_block(project).split("\n"))
    found = []
    for path in _project_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel == "book/_config.yml" or rel.startswith("colab/"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.split("\n"), 1):
            if not any(needle in line.lower() for needle in needles):
                continue
            allowed = ((path in chapters and (line in badges or line in install))
                       or (rel == "README.md" and line in readme_block)
                       or (rel == "CITATION.cff" and re.match(r"^(url|repository-code):", line)))
            if not allowed:
                found.append(f"{rel}:{n}")
    assert not found, (f"the repository is named outside book/_config.yml (repository.url) and the generated "
                       f"text: {found[:8]}; use the generated links (`make notebooks`) instead")


def test_generated_links_agree_with_the_configuration(project):
    for ch in project.chapters:
        text = ch.path.read_text(encoding="utf-8")
        assert mn.badge_line(project, ch.stem) in text.split("\n"), f"notebooks/{ch.path.name}: badge is stale"
        assert mn.install_cell(project).rstrip("\n") in text, f"notebooks/{ch.path.name}: install cell is stale"
        ipynb = ROOT / "colab" / f"{ch.stem}.ipynb"
        if ipynb.exists():
            cells = json.loads(ipynb.read_text(encoding="utf-8"))["cells"]
            first_md = "".join(next(c for c in cells if c["cell_type"] == "markdown")["source"])
            first_code = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
            assert project.colab_url(ch.stem) in first_md, f"colab/{ipynb.name}: badge is stale"
            assert project.install_spec in first_code, f"colab/{ipynb.name}: install cell is stale"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if mn.LINKS_START in readme:
        assert mn.readme_block(project) in readme, "README.md's links block is stale: run `make notebooks`"
    citation = ROOT / "CITATION.cff"
    if citation.exists():
        fields = dict(re.findall(r'^(version|repository-code|url):\s*"?([^"\n]*)"?\s*$',
                                 citation.read_text(encoding="utf-8"), re.M))
        for key, value in fields.items():
            assert value == mn.citation_fields(project)[key], f"CITATION.cff {key}: {value!r} is stale"


def test_package_version_is_the_release(project):
    import unlearnlib
    assert unlearnlib.__version__ == project.version, (
        f"unlearnlib.__version__ is {unlearnlib.__version__!r} but pyproject.toml says {project.version!r}")


def test_book_numbers_chapter_nn_as_chapter_nn(project):
    # load_project raises when the table of contents and the file names disagree; here, the numbers themselves.
    for ch in project.chapters:
        assert ch.number == (None if ch.stem.startswith("00") else int(ch.stem[:2])), ch.stem


# ---------------------------------------------------------------------------------------------------------------
# The converter, on a hand-made chapter

BIB = """
@article{smith2020one, author = {Smith, Ann}, title = {One}, year = {2020}}
@article{doe2021two, author = {Doe, John and Poe, Edgar}, title = {Two}, year = {2021}}
@misc{roe2022three, author = {Roe, R. and Tram{\\`e}r, Florian and Lee, K.}, title = {Three}, year = {2022}}
"""

CHAPTER_MD = """\
# A demo chapter

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://example.org/old)

Text citing {cite}`smith2020one` and {cite:p}`smith2020one,doe2021two`; {cite:t}`roe2022three` did it.

(sec-demo)=
## The first section

$$
a = b
$$ (eq-demo-a)

```{math}
:label: eq-demo-b
c = d
```

$$ e = f $$

By {eq}`eq-demo-b` and {eq}`the first one <eq-demo-a>`; see {ref}`sec-demo`, {numref}`sec-demo`,
the {doc}`../glossary`, the {term}`forget set`, {math}`x^2` and {func}`~unlearnlib.grads.per_sample_grads`.

```{note}
A note about {eq}`eq-demo-a`.
```

:::{admonition} Why it works
:class: dropdown
Because $a = b$.
:::

````{dropdown} Code
```python
x = 1  # {eq}`kept-verbatim`
```
````

Inline `{cite}` code stays as it is.

### Not numbered

## The second section
"""

EXPECTED_MD = """\
# 7. A demo chapter

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]\
(https://colab.research.google.com/github/Example-Org/example-book/blob/v9.9.9/colab/07_demo.ipynb)

Text citing [[Smith, 2020](BOOK/bibliography.html)] and [[Smith, 2020](BOOK/bibliography.html); \
[Doe and Poe, 2021](BOOK/bibliography.html)]; Roe et al. [[2022](BOOK/bibliography.html)] did it.

## 7.1. The first section

$$
\\begin{equation*}
a = b \\tag{7.1}
\\end{equation*}
$$

$$
\\begin{equation*}
c = d \\tag{7.2}
\\end{equation*}
$$

$$ e = f $$

By [(7.2)](BOOK/notebooks/07_demo.html#equation-eq-demo-b) and \
[the first one](BOOK/notebooks/07_demo.html#equation-eq-demo-a); see \
[The first section](BOOK/notebooks/07_demo.html#sec-demo), [Section 7.1](BOOK/notebooks/07_demo.html#sec-demo),
the [Glossary of metrics](BOOK/glossary.html), the [forget set](BOOK/glossary.html#term-forget-set), $x^2$ and \
[`per_sample_grads()`](BOOK/api.html#unlearnlib.grads.per_sample_grads).

> **Note**
>
> A note about [(7.1)](BOOK/notebooks/07_demo.html#equation-eq-demo-a).

> **Why it works**
>
> Because $a = b$.

> **Code**
>
> ```python
> x = 1  # {eq}`kept-verbatim`
> ```

Inline `{cite}` code stays as it is.

### Not numbered

## 7.2. The second section"""

BOOK = "https://example-org.github.io/example-book/v9.9.9"


def _markdown_cell(md: str) -> str:
    return "# %% [markdown]\n" + "\n".join(f"# {line}" if line else "#" for line in md.split("\n"))


@pytest.fixture
def demo(tmp_path: Path):
    text = "\n\n".join([
        _markdown_cell(CHAPTER_MD.rstrip("\n")),
        "# %%\nimport sys",
        '# %% tags=["remove-cell"]\nhidden = 1',
        '# %% tags=["hide-input", "raises-exception"]\nraise ValueError("shown")',
    ]) + "\n"
    path = tmp_path / "notebooks" / "07_demo.py"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    chapter = mn.Chapter(path, 7)
    project = mn.Project(tmp_path, "https://github.com/Example-Org/example-book", "9.9.9", [chapter],
                         mn.parse_bib(BIB), {"glossary": "Glossary of metrics"})
    return project, chapter, text


def _convert(project, chapter, text):
    sources = {chapter.path: mn.update_top_cells(text, project, chapter.stem)}
    labels = mn.collect_labels(project, sources)
    converter = mn.Converter(project, chapter, labels, collect=False)
    return mn.convert_notebook(mn.read_chapter(sources[chapter.path]), converter), sources[chapter.path]


def test_converter_turns_myst_into_plain_markdown(demo):
    project, chapter, text = demo
    nb, _ = _convert(project, chapter, text)
    markdown = "".join(nb["cells"][0]["source"])
    assert markdown == EXPECTED_MD.replace("BOOK", BOOK)
    assert mn.leftovers(markdown) == []


def test_converter_drops_book_only_cells_and_tags(demo):
    project, chapter, text = demo
    nb, _ = _convert(project, chapter, text)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    # The install cell was inserted before the first code cell; the remove-cell cell is gone.
    assert [("".join(c["source"]).split("\n")[-1], c["metadata"]) for c in code[1:]] == [
        ("import sys", {}), ('raise ValueError("shown")', {"tags": ["raises-exception"]})]
    assert project.install_spec in "".join(code[0]["source"])


def test_top_cells_are_generated_in_place_and_idempotent(demo):
    project, chapter, text = demo
    once = mn.update_top_cells(text, project, chapter.stem)
    assert mn.update_top_cells(once, project, chapter.stem) == once
    # Only the badge line changed, and the install cell was inserted before the first code cell.
    cell = mn.install_cell(project)
    expected = (text.replace("# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                             "(https://example.org/old)", mn.badge_line(project, chapter.stem))
                .replace("# %%\nimport sys", "# %%\n" + cell.rstrip("\n") + "\n\n# %%\nimport sys"))
    assert once == expected
    # The install cell: silent outside Colab, shows pip's output and says what to do when pip fails.
    cell = mn.install_cell(project)
    assert 'if "google.colab" in sys.modules:' in cell and "capture_output=True" in cell
    assert "print(pip.stdout, pip.stderr" in cell and "raise RuntimeError(" in cell
    assert max(len(line) for line in cell.split("\n")) <= CODE_WIDTH
    namespace = {}
    exec(compile(cell, "install cell", "exec"), namespace)  # outside Colab it must do nothing
    assert "pip" not in namespace


def test_citation_labels():
    bib = mn.parse_bib(BIB + "@book{t2, author = {Tram{\\`e}r, Florian}, year = {2019}}")
    assert [mn.bib_label(bib[k]) for k in ("smith2020one", "doe2021two", "roe2022three", "t2")] == [
        ("Smith", "2020"), ("Doe and Poe", "2021"), ("Roe et al.", "2022"), ("Tram\u00e8r", "2019")]


def test_sanity_check_rejects_leftover_myst():
    assert mn.leftovers("see {eq}`eq-a` here") == ["role '{eq}`eq-a`'"]
    assert mn.leftovers("```{note}\nx\n```") == ["directive '```{note}'"]
    assert mn.leftovers("(sec-a)=\n## A") == ["label target '(sec-a)='"]
    assert mn.leftovers("code `{eq}` and\n```\n{eq}`x`\n```") == []


def test_unknown_references_fail_the_generation(demo):
    project, chapter, text = demo
    broken = text.replace("{eq}`eq-demo-b`", "{eq}`eq-missing`")
    with pytest.raises(mn.GenerationError, match="eq-missing"):
        _convert(project, chapter, broken)
    with pytest.raises(mn.GenerationError, match="nobody2000"):
        _convert(project, chapter, text.replace("smith2020one`", "nobody2000`", 1))


def test_book_check_compares_numbers(demo, tmp_path: Path):
    project, chapter, text = demo
    chapter.path.write_text(mn.update_top_cells(text, project, chapter.stem), encoding="utf-8")
    page = tmp_path / "html" / "notebooks" / "07_demo.html"
    page.parent.mkdir(parents=True)

    def html(eq_b: str) -> str:
        return ('<h1><span class="section-number">7. </span>A demo chapter</h1>'
                '<h2><span class="section-number">7.1. </span>The first section</h2>'
                '<div class="math" id="equation-eq-demo-a"><span class="eqno">(7.1)</span></div>'
                f'<div class="math" id="equation-eq-demo-b">\n<span class="eqno">({eq_b})</span></div>'
                '<h2><span class="section-number">7.2. </span>The second section</h2>')
    page.write_text(html("7.2"), encoding="utf-8")
    assert mn.check_book(project, tmp_path / "html") == []
    page.write_text(html("7.3"), encoding="utf-8")
    assert mn.check_book(project, tmp_path / "html") == [
        "07_demo: equation numbers differ from the book's: [('eq-demo-b', '7.2'), ('eq-demo-b', '7.3')]"]


EXERCISE_CELLS = [
    _markdown_cell("# A demo chapter\n\n## Exercises\n\nSee {ref}`ex-07-demo`."),
    _markdown_cell("```{exercise} A demo\n:label: ex-07-demo\n\n*experiment · about 2 CPU minutes*\n\n"
                   "Measure {math}`x`.\n```"),
    _markdown_cell("```{solution-start} ex-07-demo\n:class: dropdown\n```\nIt is 3."),
    '# %% tags=["skip-execution"]\nslow = 1',
    _markdown_cell("```{solution-end}\n```"),
]


def test_converter_turns_exercises_and_solutions_into_plain_markdown(demo):
    """Exercises are numbered N.k as the book numbers them, references to them become links, a solution keeps its
    title and loses its fences, and a solution cell the book does not execute is not executed by nbval either."""
    project, chapter, _ = demo
    text = "\n\n".join([EXERCISE_CELLS[0], "# %%\nimport sys", *EXERCISE_CELLS[1:]]) + "\n"
    nb, _ = _convert(project, chapter, text)
    cells = ["".join(c["source"]) for c in nb["cells"]]
    page = BOOK + "/notebooks/07_demo.html"
    assert f"See [Exercise 7.1]({page}#ex-07-demo)." in cells[0]
    exercise = next(c for c in cells if "Exercise 7.1 (A demo)" in c)
    assert exercise == ("> **Exercise 7.1 (A demo)**\n>\n> *experiment · about 2 CPU minutes*\n>\n"
                        "> Measure $x$.")
    assert "**Solution to Exercise 7.1 (A demo)**\nIt is 3." in cells
    slow = next(c for c in nb["cells"] if "".join(c["source"]) == "slow = 1")
    assert slow["metadata"] == {"tags": ["nbval-skip"]}
    assert all(mn.leftovers(c) == [] for c in cells)
    assert all(c.strip() for c in cells), "the solution's end leaves no empty cell"
