"""Profiles, device choice and seeding: one object tells a chapter its sizes (chapter 00, the preface).

``UNLEARN_PROFILE=ci|full|auto`` selects the profile (the sizes); ``auto``, the default, means ``ci`` on every
machine, so that ``full`` runs only when asked for. ``UNLEARN_DEVICE=auto|cpu|cuda`` selects the device,
independently of the profile: ``auto`` means CUDA when it is available, the CPU otherwise. A Colab GPU therefore
runs the chapters at ``ci`` sizes on the GPU, and ``UNLEARN_DEVICE=cpu`` keeps everything on the CPU whatever
the profile. The text of a chapter never branches on CPU versus GPU: it reads the sizes from :func:`get_profile`
and the device from :func:`get_device`.

``UNLEARN_ONEDNN=0`` turns off PyTorch's oneDNN (mkldnn) kernels when the library is imported. Different CPUs run
different kernels; the tests and the chapters pass both ways, so that no check depends on one machine's
arithmetic (see :func:`apply_onednn_setting`).
"""

from __future__ import annotations

import math
import numbers
import os
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from unlearnlib.errors import UnlearnError

PROFILE_NAMES = ("ci", "full", "auto")
DEVICE_NAMES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Profile:
    """Sizes of every experiment in the book (chapter 00).

    ``dataset`` and ``model`` name what :func:`unlearnlib.data.load_dataset` and
    :func:`unlearnlib.models.make_model` build; ``train_*`` describe the recipe shared by the original model and
    the retrain oracle (``train_augment`` and ``train_precision``: see :class:`unlearnlib.train.TrainConfig`);
    ``seeds`` is how many seeds a multi-seed claim averages over.
    """

    name: str
    dataset: str
    model: str
    train_epochs: int
    train_batch_size: int
    train_lr: float
    seeds: int
    unlearn_batch_size: int
    #: shadow models (each trained on a random half of D) behind memorisation scores and the U-LiRA audit, and
    #: unlearned and retrained replicas behind the competition's score (chapter 11).
    shadow_models: int = 16
    audit_replicas: int = 8
    train_augment: str = "none"
    train_precision: str = "fp32"


_PROFILES = {
    # Sized so that every chapter executes in a minute or two on a 2-core CPU.
    "ci": Profile(name="ci", dataset="digits", model="cnn", train_epochs=30, train_batch_size=64,
                  train_lr=0.05, seeds=3, unlearn_batch_size=32),
    # The setting of the papers the book follows: CIFAR-10 and ResNet-18 (GroupNorm, see unlearnlib.models),
    # trained with SGD + momentum 0.9, weight decay 5e-4, a cosine schedule from lr 0.1 at batch 128, random
    # crops and flips, in mixed precision on a GPU, for 40 epochs (the papers train for 100-200: a shorter cosine
    # schedule is the usual choice on a budget, and its accuracy with GroupNorm is not measured here). It needs
    # CIFAR-10's files (``python -m unlearnlib.data cifar10 --download``) and a GPU: on a CPU one model takes
    # hours. The audits of chapter 11 train ``shadow_models`` + ``audit_replicas`` models per seed, the scale of
    # the attacks' papers.
    "full": Profile(name="full", dataset="cifar10", model="resnet18", train_epochs=40, train_batch_size=128,
                    train_lr=0.1, seeds=5, unlearn_batch_size=32, shadow_models=64, audit_replicas=32,
                    train_augment="crop-flip", train_precision="mixed"),
}


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The profile named ``name`` or by ``UNLEARN_PROFILE`` (chapter 00). Keyword overrides replace fields.

    ``auto`` means ``ci`` on every machine, a GPU included: ``full`` runs only when it is asked for.
    """
    name = (name or os.environ.get("UNLEARN_PROFILE") or "auto").strip().lower()
    if name not in PROFILE_NAMES:
        raise UnlearnError(f"unknown profile {name!r}; use one of: {', '.join(PROFILE_NAMES)} "
                           "(for example UNLEARN_PROFILE=ci)")
    if name == "auto":
        name = "ci"
    profile = _PROFILES[name]
    unknown = set(overrides) - set(profile.__dataclass_fields__)
    if unknown:
        raise UnlearnError(f"unknown profile field(s) {sorted(unknown)}; "
                           f"known fields: {', '.join(profile.__dataclass_fields__)}")
    for field, value in overrides.items():
        _check_profile_field(field, value)
    return replace(profile, **overrides)


_COUNT_FIELDS = ("train_epochs", "train_batch_size", "seeds", "unlearn_batch_size", "shadow_models",
                 "audit_replicas")
_TEXT_FIELDS = ("name", "dataset", "model", "train_augment", "train_precision")


def _check_profile_field(field: str, value) -> None:
    """Refuse an override that would make every chapter compute nonsense (no seeds, a NaN learning rate)."""
    if field in _COUNT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise UnlearnError(f"profile field {field} must be a positive integer, got {value!r}")
    elif field == "train_lr":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < value < math.inf):
            raise UnlearnError(f"profile field train_lr must be a positive finite number, got {value!r}")
    elif field in _TEXT_FIELDS:
        if not isinstance(value, str) or not value.strip():
            raise UnlearnError(f"profile field {field} must be a non-empty string, got {value!r}")


def get_device(spec: str | torch.device | None = None) -> torch.device:
    """The device named by ``spec``, or by ``UNLEARN_DEVICE`` when ``spec`` is None (chapter 00).

    ``auto`` (the default) picks CUDA when present, else the CPU. Asking for CUDA without it is an error.
    """
    if isinstance(spec, torch.device):
        return spec
    if spec is None:
        spec = os.environ.get("UNLEARN_DEVICE") or "auto"
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UnlearnError("CUDA was requested but is not available; use --device cpu (or auto). "
                               "In Colab: Runtime > Change runtime type > GPU")
        return torch.device(spec)
    if spec == "cpu":
        return torch.device("cpu")
    raise UnlearnError(f"unknown device {spec!r}; use auto, cpu or cuda (for example UNLEARN_DEVICE=cpu)")


def apply_onednn_setting() -> bool:
    """Turn PyTorch's oneDNN kernels off when ``UNLEARN_ONEDNN=0``; return whether they are on (chapter 00).

    Called once when :mod:`unlearnlib` is imported. oneDNN (formerly mkldnn) supplies the CPU convolutions on
    x86 machines, and which of its kernels runs depends on the CPU's instruction set: an Intel Xeon and an AMD
    EPYC round differently. Running the tests and the chapters with it off (the plain ATen kernels) stands in
    for another CPU, and shows that no check relies on one machine's rounding.
    """
    value = os.environ.get("UNLEARN_ONEDNN", "").strip().lower()
    if value in ("0", "off", "false", "no"):
        torch.backends.mkldnn.enabled = False
    elif value not in ("", "1", "on", "true", "yes"):
        raise UnlearnError(f"UNLEARN_ONEDNN={value!r} is not understood; use 0 (off) or 1 (on, the default)")
    return bool(torch.backends.mkldnn.enabled)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a wall-clock time measures the work and not its launch
    (CUDA runs asynchronously; on the CPU this does nothing) (chapter 02)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same way (chapter 01)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def cache_dir() -> Path:
    """Where trained models are cached: ``UNLEARN_CACHE`` or ``~/.cache/unlearnlib`` (chapter 01)."""
    root = os.environ.get("UNLEARN_CACHE")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "unlearnlib"
    path.mkdir(parents=True, exist_ok=True)
    return path
