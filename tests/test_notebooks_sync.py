"""The generated files must be exactly what `make notebooks` (tools/make_notebooks.py) writes.

The py:percent chapters notebooks/NN_topic.py are the only source. From them the generator writes the notebooks
for Colab and Jupyter, colab/NN_topic.ipynb, and, from the repository and release named in book/_config.yml and
pyproject.toml, the "Open in Colab" badge and install cell at the top of each chapter, CITATION.cff's url and
version fields and README's links block. This test regenerates everything in memory and compares: notebooks cell
by cell (cell ids are not compared; they only keep git diffs small), the other files exactly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from notebook_tool import ROOT, mn


SOURCES = sorted((ROOT / "notebooks").glob(mn.CHAPTER_GLOB))
FIX = "run `make notebooks` and commit the result"


@pytest.fixture(scope="module")
def project():
    return mn.load_project(ROOT)


@pytest.fixture(scope="module")
def generated(project):
    return mn.generate(project)


def test_chapters_exist():
    assert SOURCES, f"no chapters found in {ROOT / 'notebooks'} (expected notebooks/NN_topic.py files)"


def test_every_chapter_has_its_colab_notebook_and_back():
    py_stems = {p.stem for p in SOURCES}
    ipynb_stems = {p.stem for p in (ROOT / "colab").glob("*.ipynb")}
    missing = sorted(py_stems - ipynb_stems)
    orphans = sorted(ipynb_stems - py_stems)
    assert not missing, f"colab/{{{', '.join(missing)}}}.ipynb missing: {FIX}"
    assert not orphans, (f"colab/{{{', '.join(orphans)}}}.ipynb have no notebooks/*.py source: {FIX} "
                         "(it deletes them; the .py files are the only source of the chapters)")


def test_no_chapter_is_named_like_a_test_module():
    # pytest would collect such a file as a test module.
    bad = sorted(p.name for p in (ROOT / "notebooks").glob("*.py")
                 if p.name.startswith("test_") or p.stem.endswith("_test"))
    assert not bad, f"chapter files must be named NN_topic.py, never test_*.py or *_test.py: {bad}"


@pytest.mark.parametrize("py", SOURCES, ids=[p.stem for p in SOURCES])
def test_colab_notebook_matches_its_source(py: Path, generated):
    ipynb = ROOT / "colab" / f"{py.stem}.ipynb"
    if not ipynb.exists():
        pytest.fail(f"colab/{ipynb.name} is missing: {FIX}")
    committed = mn.normalise(json.loads(ipynb.read_text(encoding="utf-8")))
    expected = mn.normalise(json.loads(generated[ipynb]))
    if committed == expected:
        return
    # Say where they differ, to spare a diff of two JSON files.
    where = "notebook metadata"
    if len(committed["cells"]) != len(expected["cells"]):
        where = f"number of cells ({len(committed['cells'])} committed, {len(expected['cells'])} expected)"
    else:
        for i, (a, b) in enumerate(zip(committed["cells"], expected["cells"])):
            if a != b:
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                where = f"cell {i} ({', '.join(keys)})"
                break
    pytest.fail(f"colab/{ipynb.name} is out of date with notebooks/{py.name}; first difference: {where}. "
                f"The colab/ notebooks are generated, never edited: {FIX}.")


@pytest.mark.parametrize("py", SOURCES, ids=[p.stem for p in SOURCES])
def test_generated_top_cells_are_current(py: Path, generated):
    assert py.read_text(encoding="utf-8") == generated[py], (
        f"the badge or the install cell of notebooks/{py.name} does not match book/_config.yml and "
        f"pyproject.toml: {FIX}")


def test_citation_and_readme_links_are_current(generated):
    for name in ("CITATION.cff", "README.md"):
        path = ROOT / name
        if path in generated:
            assert path.read_text(encoding="utf-8") == generated[path], f"{name}'s generated fields are stale: {FIX}"


def test_readme_has_the_links_block():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert mn.LINKS_START in text and mn.LINKS_END in text, (
        f"README.md needs the markers {mn.LINKS_START} and {mn.LINKS_END}; `make notebooks` writes the links "
        "to the book and to Colab between them")


def test_lab_pairs_are_not_committed():
    # notebooks/NN_topic.ipynb are JupyterLab's local pairs (with outputs); the committed notebooks are colab/.
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "notebooks/*.ipynb"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert not tracked, f"remove them from git (`git rm --cached {' '.join(tracked)}`): they are local files"


def test_generator_is_idempotent(tmp_path: Path):
    # A copy of the project with two chapters: the second run must change nothing, and --check must agree.
    for name in ("book/_config.yml", "book/_toc.yml", "book/references.bib", "pyproject.toml", "README.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    for md in (ROOT / "book").glob("*.md"):
        shutil.copy(md, tmp_path / "book" / md.name)
    (tmp_path / "notebooks").mkdir()
    for py in SOURCES[:2]:
        shutil.copy(py, tmp_path / "notebooks" / py.name)
    toc = (tmp_path / "book" / "_toc.yml").read_text(encoding="utf-8")
    keep = {f"notebooks/{p.stem}" for p in SOURCES[:2]}
    toc = "\n".join(line for line in toc.split("\n")
                    if "file: notebooks/" not in line or line.split("file:")[1].strip() in keep)
    (tmp_path / "book" / "_toc.yml").write_text(toc, encoding="utf-8")
    project = mn.load_project(tmp_path)
    first = mn.write(project)
    assert any(c.startswith("colab/") for c in first)
    assert mn.write(mn.load_project(tmp_path)) == []
    assert mn.stale(mn.load_project(tmp_path)) == []
    assert mn.main(["--check", "--root", str(tmp_path)]) == 0
    # A stale notebook is named by --check.
    nb = tmp_path / "colab" / f"{SOURCES[0].stem}.ipynb"
    nb.write_text(nb.read_text(encoding="utf-8").replace("#", "##", 1), encoding="utf-8")
    assert mn.stale(mn.load_project(tmp_path)) == [f"colab/{nb.name}"]
    assert mn.main(["--check", "--root", str(tmp_path)]) == 1
