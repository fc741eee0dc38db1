"""The table and the two-method comparisons of :class:`unlearnlib.experiment.Comparison` (chapter 02)."""

from __future__ import annotations

import math

import pytest

from unlearnlib.errors import UnlearnError
from unlearnlib.experiment import Comparison, format_table


def _comparison(a_gaps, b_gaps) -> Comparison:
    rows = [{"method": "a", "seed": s, "gap": g, "UA": 100.0} for s, g in enumerate(a_gaps)]
    rows += [{"method": "b", "seed": s, "gap": g, "UA": 100.0} for s, g in enumerate(b_gaps)]
    refs = [{"UA": 100.0, "RA": 99.0, "TA": 98.0, "MIA": 100.0} for _ in a_gaps]
    return Comparison(scenario="class", seeds=list(range(len(a_gaps))), rows=rows, references=refs)


def test_paired_difference_is_taken_seed_by_seed():
    # b = a + 1 on every seed, with a large spread over seeds: the paired difference is exactly -1 with no
    # spread, although the two unpaired intervals overlap.
    c = _comparison([1.0, 5.0, 9.0], [2.0, 6.0, 10.0])
    mean, se = c.paired("a", "b")
    assert mean == pytest.approx(-1.0) and se == pytest.approx(0.0, abs=1e-12)
    assert c.within_noise("a", "b") and not c.above("b", "a") and not c.below("a", "b")
    # A planted mistake: comparing the sorted values of another pairing would not give zero spread.
    c2 = _comparison([1.0, 5.0, 9.0], [10.0, 2.0, 6.0])
    assert c2.paired("a", "b")[1] > 1.0


def test_above_and_below_use_the_other_methods_interval():
    c = _comparison([10.0, 11.0, 12.0], [1.0, 1.5, 2.0])
    assert c.above("a", "b") and c.below("b", "a") and not c.within_noise("a", "b")
    # The 95 % half-width of b: t(0.975, 2) * s / sqrt(3), s = 0.5.
    assert c.ci95("b", "gap") == pytest.approx(4.302653 * 0.5 / math.sqrt(3), rel=1e-5)


def test_paired_needs_two_seeds():
    with pytest.raises(UnlearnError, match="at least two seeds"):
        _comparison([1.0], [2.0]).paired("a", "b")


def test_table_fits_the_books_content_column():
    c = _comparison([1.0, 5.0, 9.0], [2.0, 6.0, 10.0])
    summary = dict(c.summary)
    # The widest row the chapters print: the longest label, and every metric at its widest (time in seconds).
    widest = {k: {"mean": 100.0, "std": 1.0, "ci95": 20.8} for k in ("UA", "RA", "TA", "MIA", "gap")}
    summary["implicit_surgery (ε=0)"] = {**widest, "time_s": {"mean": 12.3, "std": 1.0, "ci95": 4.5}}
    table = format_table(summary, c.reference)
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 88
    assert lines[0].split() == ["method", "UA", "RA", "TA", "MIA", "gap", "time_s"]
    assert "100.0±20.8" in table and lines[1].startswith("(retrain oracle)")
