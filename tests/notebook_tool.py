"""The notebook generator, tools/make_notebooks.py, loaded for the tests that check its outputs.

It is a script in tools/, not a package, so it is loaded by path, once, and shared by the test modules.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if "make_notebooks" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "tools" / "make_notebooks.py")
    sys.modules["make_notebooks"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["make_notebooks"])
mn = sys.modules["make_notebooks"]
