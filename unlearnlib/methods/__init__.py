"""Unlearning methods and their registry (contract item 2).

Every method is a function ``(model, task, **hyperparameters) -> model`` that returns a new model and never
mutates its input. ``REGISTRY`` maps the contract's names to them; ``get_method`` also resolves the masked
add-on ``masked:<base>`` once Part II provides it.
"""

from __future__ import annotations

from unlearnlib.errors import UnlearnError
from unlearnlib.methods.baselines import finetune, ga, neggrad_plus, random_label, retrain
from unlearnlib.methods.orthograd import orthograd
from unlearnlib.methods.stronger import l1_sparse, salun, saliency_mask, scrub
from unlearnlib.methods.surgery import implicit_surgery, pcgrad, unilateral_surgery

REGISTRY = {
    "retrain": retrain,
    "finetune": finetune,
    "ga": ga,
    "neggrad_plus": neggrad_plus,
    "random_label": random_label,
    "scrub": scrub,
    "salun": salun,
    "l1_sparse": l1_sparse,
    "pcgrad": pcgrad,
    "unilateral_surgery": unilateral_surgery,
    "implicit_surgery": implicit_surgery,
    "orthograd": orthograd,
}

PART_I = ("retrain", "finetune", "ga", "neggrad_plus", "random_label", "scrub", "salun", "l1_sparse")
PART_II_SURGERY = ("pcgrad", "unilateral_surgery", "implicit_surgery", "orthograd")


def get_method(name: str):
    """The method registered under ``name`` (chapter 02); a clear error lists the known names."""
    if name in REGISTRY:
        return REGISTRY[name]
    raise UnlearnError(f"unknown method {name!r}; known methods: {', '.join(REGISTRY)}")


__all__ = ["REGISTRY", "PART_I", "PART_II_SURGERY", "get_method", "saliency_mask"] + list(REGISTRY)
