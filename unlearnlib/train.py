"""Training: the seeded loop, the original model, the retrain oracle, and the on-disk cache (chapter 01).

The original model and the retrain oracle are the two expensive objects of every chapter. Both are cached under
a hash of everything that determines them (data, forget set, model, recipe, seed), written atomically (a
temporary file renamed into place, so a crash never leaves half a file under the real name) and loaded with
``torch.load(..., weights_only=True)``. A cache file that is corrupt, truncated or of another configuration is
detected, deleted and rebuilt: never a crash, never a wrong model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm  # text bars: they work in terminals, notebooks and the built book alike

from unlearnlib import config
from unlearnlib.data import Dataset, UnlearningTask, minibatches
from unlearnlib.models import make_model


@dataclass(frozen=True)
class TrainConfig:
    """The recipe shared by the original model and the retrain oracle (chapter 01)."""

    model: str = "cnn"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4

    @classmethod
    def from_profile(cls, profile: config.Profile) -> "TrainConfig":
        return cls(model=profile.model, epochs=profile.train_epochs, batch_size=profile.train_batch_size,
                   lr=profile.train_lr)


def train_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, seed: int = 0,
                progress: bool = True, desc: str = "train") -> nn.Module:
    """Train ``model`` in place with SGD + momentum, weight decay and a cosine schedule (chapter 01)."""
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(y) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    model.train()
    for _ in tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False, delay=5):
        for idx in minibatches(len(y), cfg.batch_size, g, device):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


def _key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def save_atomic(obj, path: Path) -> None:
    """Write ``obj`` with ``torch.save`` to a temporary file in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checked(path: Path, key: str, model: nn.Module) -> dict | None:
    """Load a cache entry into ``model`` if it is intact and of configuration ``key``; else delete it, ``None``.

    Safe loading (``weights_only=True``) refuses anything but tensors and plain containers; a truncated or
    corrupt file raises inside ``torch.load``; a file of another configuration (a hash collision of file names,
    or a hand-copied file) has the wrong ``key``; a file of another architecture fails ``load_state_dict``.
    """
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("key") != key:
            raise ValueError("configuration key mismatch")
        model.load_state_dict(blob["state_dict"], strict=True)
        return blob.get("meta", {})
    except Exception:
        path.unlink(missing_ok=True)
        return None


def _cached_train(key_parts: dict, name: str, build, x, y, cfg: TrainConfig, seed: int, device, progress: bool,
                  use_cache: bool):
    key = _key(**key_parts)
    path = config.cache_dir() / f"{name}-{key}.pt"
    model = build().to(device)
    meta = load_checked(path, key, model) if use_cache else None
    if meta is not None:
        model.eval()
        model.train_time_s = float(meta.get("train_time_s", float("nan")))
        return model
    torch.manual_seed(seed)
    model = build().to(device)
    start = time.perf_counter()
    train_model(model, x, y, cfg, seed=seed, progress=progress, desc=name)
    config.synchronize(device)
    elapsed = time.perf_counter() - start
    model.train_time_s = elapsed
    if use_cache:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        save_atomic({"key": key, "state_dict": state, "meta": {"train_time_s": elapsed}}, path)
    return model


def original_model(data: Dataset, cfg: TrainConfig, seed: int = 0, device=None, progress: bool = True,
                   use_cache: bool = True) -> nn.Module:
    """The model trained on the whole training set D (chapter 01); cached. ``.train_time_s`` holds its cost."""
    device = config.get_device(device)
    parts = dict(kind="original", data=data.fingerprint(), cfg=asdict(cfg), seed=seed)
    build = lambda: make_model(cfg.model, data.input_shape, data.num_classes, seed=seed)
    return _cached_train(parts, "original", build, data.x_train, data.y_train, cfg, seed, device, progress, use_cache)


def retrained_model(task: UnlearningTask, cfg: TrainConfig, seed: int = 0, device=None, progress: bool = True,
                    use_cache: bool = True) -> nn.Module:
    """The retrain oracle: the same recipe on the retain set D_r only (chapter 01); cached.

    The seed of the initialisation and of the batch order is offset from the original model's, so that the
    oracle is an independent training run, as retraining from scratch would be.
    """
    device = config.get_device(device)
    data = task.data
    parts = dict(kind="retrain", task=task.fingerprint(), cfg=asdict(cfg), seed=seed)
    build = lambda: make_model(cfg.model, data.input_shape, data.num_classes, seed=seed + 10_000)
    return _cached_train(parts, "retrain", build, task.x_retain, task.y_retain, cfg, seed + 10_000, device,
                         progress, use_cache)
