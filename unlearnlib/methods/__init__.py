"""Unlearning methods and their registry (contract item 2).

Every method is a function ``(model, task, **hyperparameters) -> model`` that returns a new model and never
mutates its input. ``REGISTRY`` maps the contract's names to them; ``get_method`` also resolves the masked
add-on ``masked:<base>`` once Part II provides it.
"""

from __future__ import annotations

from unlearnlib.errors import UnlearnError
from unlearnlib.methods.baselines import finetune, ga, neggrad_plus, random_label, retrain
from unlearnlib.methods.implicit import implicit_surgery, implicit_surgery_rl
from unlearnlib.methods.lookahead import lur
from unlearnlib.methods.meta_learning import ltu, ltu_ascent
from unlearnlib.methods.feasible import masked
from unlearnlib.methods.orthogonal import orthograd
from unlearnlib.methods.stronger import l1_sparse, salun, saliency_mask, scrub
from unlearnlib.methods.surgery import pcgrad, unilateral_surgery, unilateral_surgery_rl

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
    "unilateral_surgery_rl": unilateral_surgery_rl,
    "implicit_surgery_rl": implicit_surgery_rl,
    "orthograd": orthograd,
    "ltu": ltu,
    "ltu_ascent": ltu_ascent,
    "lur": lur,
}
#: bases of the masked add-on: every method built on the shared loop (retrain is not).
MASKABLE = ("finetune", "ga", "neggrad_plus", "random_label", "scrub", "salun", "l1_sparse", "pcgrad",
            "unilateral_surgery", "implicit_surgery", "unilateral_surgery_rl", "implicit_surgery_rl", "orthograd",
            "ltu", "ltu_ascent", "lur")
# The three bases the masked chapter studies are registered by name, each with the learning rate chosen for it as
# for every other default (the mask shrinks the step, so its base's learning rate is too small); get_method
# builds the other bases on demand with their own defaults.
MASKED_LR = {"ga": 5e-3, "neggrad_plus": 0.07, "random_label": 1e-3}
REGISTRY.update({f"masked:{b}": masked(REGISTRY[b], lr=lr) for b, lr in MASKED_LR.items()})

for _fn in REGISTRY.values():
    _fn.modality = "vision"
#: the modalities a registry entry may carry (contract item 5): the benchmark's default method list is the one of
#: its dataset's modality, so that language-model methods never run on images or the reverse.
MODALITIES = ("vision", "language")

PART_I = ("retrain", "finetune", "ga", "neggrad_plus", "random_label", "scrub", "salun", "l1_sparse")
# ``*_rl``: the classification setting of the official code of arXiv 2510.22124 (random labels, ε ≥ 0, clip 1);
# ``ltu`` uses the paper's membership-inference signal, ``ltu_ascent`` our ascent variant (chapters 05, 06, 08).
PART_II_SURGERY = ("pcgrad", "unilateral_surgery", "implicit_surgery", "unilateral_surgery_rl",
                   "implicit_surgery_rl", "orthograd")
PART_II_META = ("ltu", "ltu_ascent", "lur", "masked:ga", "masked:neggrad_plus", "masked:random_label")


def registry(modality: str = "vision") -> dict:
    """The methods of one modality: ``REGISTRY`` for images (chapters 01-12), the language-model methods of
    chapter 15 (:data:`unlearnlib.methods.language.LANGUAGE_REGISTRY`) for ``"language"``."""
    if modality == "vision":
        return REGISTRY
    if modality == "language":
        from unlearnlib.methods.language import LANGUAGE_REGISTRY  # imported on demand: it needs the LM modules

        return LANGUAGE_REGISTRY
    raise UnlearnError(f"unknown modality {modality!r}; use one of {', '.join(MODALITIES)}")


def get_method(name: str, modality: str = "vision"):
    """The method registered under ``name`` for ``modality``, or ``masked:<base>`` for any maskable base
    (chapter 02; the language-model methods: chapter 15)."""
    if modality == "language":
        from unlearnlib.methods.language import get_language_method

        return get_language_method(name)
    if modality != "vision":
        registry(modality)  # the error names the modalities
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith("masked:") and name[len("masked:"):] in MASKABLE:
        method = masked(REGISTRY[name[len("masked:"):]])
        method.modality = "vision"
        return method
    if name in registry("language"):
        raise UnlearnError(f"{name!r} is a language-model method (chapter 15); it runs on --dataset facts, not on "
                           "images")
    raise UnlearnError(f"unknown method {name!r}; known methods: {', '.join(REGISTRY)}")


__all__ = ["REGISTRY", "MODALITIES", "registry", "PART_I", "PART_II_SURGERY", "PART_II_META", "MASKABLE", "get_method", "masked",
           "saliency_mask"] + [n for n in REGISTRY if ":" not in n]
