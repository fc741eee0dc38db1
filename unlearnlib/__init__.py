"""unlearnlib: the helper library of *Machine Unlearning: an executable textbook*.

Every public function names, in its docstring, the chapter that derives it. The library is flat on purpose:
one module per job (``config``, ``data``, ``models``, ``train``, ``metrics``, ``grads``, ``diagnostics``,
``methods``, ``cost``, ``experiment``, ``plots``, ``bench``, and for the evaluation ``shadows``, ``audits``,
``relearn``, ``records``), so that each file can be read top to bottom next to its chapter.
"""

from importlib.metadata import PackageNotFoundError, version

from unlearnlib.config import apply_onednn_setting
from unlearnlib.errors import UnlearnError

apply_onednn_setting()

__all__ = ["UnlearnError"]
try:  # the release is written once, in pyproject.toml
    __version__ = version("unlearnlib")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
