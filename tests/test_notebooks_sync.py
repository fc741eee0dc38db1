"""The committed notebooks/*.ipynb must be exactly what `make notebooks` generates from notebooks/*.py.

The py:percent files are the only source of the chapters; the .ipynb files exist for Colab and nbval and are
never edited by hand. This test regenerates each notebook in memory, with the same jupytext conversion as
`make notebooks` (py:percent -> ipynb), and compares it with the committed file: cells (type, source, metadata,
outputs, execution counts) and notebook metadata. Cell ids are not compared: jupytext gives new cells random ids
(`make notebooks` keeps the ids of unchanged cells only so that git diffs stay small).
"""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9]*.py"))
FIX = "run `make notebooks` and commit the result"


def _normalise(nb: dict) -> dict:
    """The parts of a notebook that must match: everything except the random cell ids."""
    cells = []
    for cell in nb["cells"]:
        cell = {k: v for k, v in cell.items() if k != "id"}
        if isinstance(cell.get("source"), list):  # the JSON on disk splits sources into lines
            cell["source"] = "".join(cell["source"])
        for output in cell.get("outputs", []):
            for key in ("text",):
                if isinstance(output.get(key), list):
                    output[key] = "".join(output[key])
        cells.append(cell)
    return {"cells": cells, "metadata": nb["metadata"], "nbformat": nb["nbformat"]}


def _generated(py: Path) -> dict:
    """What `jupytext --to ipynb py` writes, as parsed JSON."""
    notebook = jupytext.read(py, fmt="py:percent")
    return json.loads(jupytext.writes(notebook, fmt="ipynb"))


def test_chapters_exist():
    assert SOURCES, f"no chapters found in {NOTEBOOKS} (expected notebooks/NN_topic.py files)"


def test_every_source_has_its_notebook_and_back():
    py_stems = {p.stem for p in SOURCES}
    ipynb_stems = {p.stem for p in NOTEBOOKS.glob("[0-9]*.ipynb")}
    missing = sorted(py_stems - ipynb_stems)
    orphans = sorted(ipynb_stems - py_stems)
    assert not missing, f"notebooks/{{{', '.join(missing)}}}.ipynb missing: {FIX}"
    assert not orphans, (f"notebooks/{{{', '.join(orphans)}}}.ipynb have no .py source: delete them "
                         "(the .py files are the only source of the chapters)")


def test_no_chapter_is_named_like_a_test_module():
    # pytest would collect such a file as a test module when it is pointed at notebooks/ for nbval.
    bad = sorted(p.name for p in NOTEBOOKS.glob("*.py")
                 if p.name.startswith("test_") or p.stem.endswith("_test"))
    assert not bad, f"chapter files must be named NN_topic.py, never test_*.py or *_test.py: {bad}"


@pytest.mark.parametrize("py", SOURCES, ids=[p.name for p in SOURCES])
def test_notebook_matches_its_source(py: Path):
    ipynb = py.with_suffix(".ipynb")
    if not ipynb.exists():
        pytest.fail(f"notebooks/{ipynb.name} is missing: {FIX}")
    committed = _normalise(json.loads(ipynb.read_text(encoding="utf-8")))
    expected = _normalise(_generated(py))
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
    pytest.fail(f"notebooks/{ipynb.name} is out of date with notebooks/{py.name}; first difference: {where}. "
                f"The .ipynb files are generated, never edited: {FIX} (if the .ipynb was saved from Jupyter or "
                "Colab with outputs, delete it first).")
