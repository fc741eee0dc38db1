"""Training: the seeded loop, the original model, the retrain oracle, and the on-disk cache (chapter 01).

The original model and the retrain oracle are the two expensive objects of every chapter. Both are cached under
a hash of everything that determines them (data, forget set, model, recipe, seed), written atomically (a
temporary file renamed into place, so a crash never leaves half a file under the real name) and loaded with
``torch.load(..., weights_only=True)``. Each file stores the SHA-256 of its weights (:func:`state_digest`), checked
on load. A cache file that is corrupt, truncated, changed in a single bit, of another configuration or holding NaN
weights is detected, deleted and rebuilt: never a crash, never a wrong model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm  # text bars: they work in terminals, notebooks and the built book alike

from unlearnlib import config
from unlearnlib.data import CROP_PAD, Dataset, UnlearningTask, crop_flip, draw_crop_flip, minibatches
from unlearnlib.errors import UnlearnError
from unlearnlib.models import make_model


#: the augmentations :class:`TrainConfig` knows: none, or CIFAR-10's random crop (4-pixel padding) and flip.
AUGMENTS = ("none", "crop-flip")
#: ``fp32``, or ``mixed``: the forward pass and the loss under ``torch.autocast`` on CUDA (bfloat16 where the GPU
#: has it, float16 with a gradient scaler otherwise); the weights, their gradients and the optimiser stay float32.
PRECISIONS = ("fp32", "mixed")


@dataclass(frozen=True)
class TrainConfig:
    """The recipe shared by the original model and the retrain oracle (chapter 01).

    ``augment`` and ``precision`` (see :data:`AUGMENTS`, :data:`PRECISIONS`) are used by the ``full`` profile
    (CIFAR-10, ResNet-18). Mixed precision applies on CUDA only: on the CPU the same recipe trains in float32, so
    that it runs anywhere (the cache key, like the rest of the recipe, does not depend on the device).
    """

    model: str = "cnn"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: str = "none"
    precision: str = "fp32"

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise UnlearnError(f"TrainConfig.{name} must be a positive integer, got {v!r}")
        # ``not (0 < lr < inf)`` also catches NaN, which every ordinary comparison lets through.
        if isinstance(self.lr, bool) or not isinstance(self.lr, numbers.Real) or not 0 < self.lr < math.inf:
            raise UnlearnError(f"TrainConfig.lr must be a positive finite number, got {self.lr!r}")
        for name in ("momentum", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v < math.inf:
                raise UnlearnError(f"TrainConfig.{name} must be a non-negative finite number, got {v!r}")
        if self.augment not in AUGMENTS:
            raise UnlearnError(f"TrainConfig.augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if self.precision not in PRECISIONS:
            raise UnlearnError(f"TrainConfig.precision must be one of {', '.join(PRECISIONS)}, "
                               f"got {self.precision!r}")

    @classmethod
    def from_profile(cls, profile: config.Profile) -> "TrainConfig":
        return cls(model=profile.model, epochs=profile.train_epochs, batch_size=profile.train_batch_size,
                   lr=profile.train_lr, augment=profile.train_augment, precision=profile.train_precision)

    def key_dict(self) -> dict:
        """The recipe as it enters the cache key of a trained model (chapter 01): every field, except the fields
        added after the first models were cached (``augment``, ``precision``) while they keep their default. A
        recipe that existed before they were added therefore keeps its key, and its cached models stay valid."""
        parts = asdict(self)
        for name in _KEYED_WHEN_SET:
            if parts[name] == TrainConfig.__dataclass_fields__[name].default:
                del parts[name]
        return parts


#: fields of :class:`TrainConfig` that enter the cache key only when they differ from their default.
_KEYED_WHEN_SET = ("augment", "precision")


def _autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``cfg`` on ``device``: None (float32) unless mixed precision on CUDA; bfloat16 on GPUs
    that compute in it natively (compute capability 8.0 and above), else float16."""
    if cfg.precision != "mixed" or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16


def train_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, seed: int = 0,
                progress: bool = True, desc: str = "train") -> nn.Module:
    """Train ``model`` in place with SGD + momentum, weight decay and a cosine schedule (chapter 01).

    With ``cfg.augment == "crop-flip"`` every epoch crops and flips every image afresh
    (:func:`~unlearnlib.data.crop_flip`, on the device), with draws from their own CPU generator so that the batch
    order is the one of the same recipe without augmentation. With ``cfg.precision == "mixed"`` on CUDA the
    forward pass and the loss run under ``torch.autocast`` (``_autocast_dtype``); float16 needs a gradient
    scaler, whose check for overflow costs one host synchronisation per step (bfloat16 needs neither).
    """
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    check_labels(model, x, y)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(y) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    augment = cfg.augment == "crop-flip"
    if augment and x.dim() != 4:
        raise UnlearnError(f"crop-flip augmentation needs images [N, C, H, W], got inputs of shape {tuple(x.shape)}")
    # A generator of its own, so that the batch order drawn from ``g`` is the same with and without augmentation.
    g_aug = torch.Generator().manual_seed(seed + 0x5EED_0DD) if augment else None
    amp = _autocast_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
    model.train()
    for _ in tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False, delay=5):
        if augment:   # one draw and one copy to the device per epoch, none per step
            offsets, flips = draw_crop_flip(len(y), g_aug, CROP_PAD)
            offsets, flips = offsets.to(device), flips.to(device)
        for idx in minibatches(len(y), cfg.batch_size, g, device):
            xb = crop_flip(x[idx], offsets[idx], flips[idx], CROP_PAD) if augment else x[idx]
            with torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext():
                loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            sched.step()
    model.eval()
    if bool(has_nonfinite(model)):  # one host synchronisation per training run, never per step
        raise UnlearnError(f"training diverged: the model has NaN or infinite weights after {cfg.epochs} epochs "
                           f"at lr {cfg.lr}; lower the learning rate")
    return model


def has_nonfinite(model: nn.Module) -> torch.Tensor:
    """A 0-d bool tensor: does any parameter or floating buffer hold a NaN or an infinity? (No host sync.)"""
    flags = [~torch.isfinite(t).all() for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    return torch.stack(flags).any() if flags else torch.zeros((), dtype=torch.bool)


def check_labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse labels that do not fit the model's outputs, before any training (chapter 01).

    Cross-entropy with a label outside 0 .. C-1 is an index error on the CPU and a device-side assert on a GPU;
    a float label tensor is read as class probabilities. One forward pass of one sample in eval mode (no running
    statistics change, no dropout mask is drawn, so the training that follows is unchanged) gives C.
    """
    if x.dim() < 2 or y.dim() != 1 or x.shape[0] != y.shape[0] or len(y) == 0:
        raise UnlearnError(f"training needs a batch of inputs [N, ...] and one label per sample [N], got x of shape "
                           f"{tuple(x.shape)} and y of shape {tuple(y.shape)}")
    if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        raise UnlearnError(f"labels must be integer classes (torch.long), got dtype {y.dtype}")
    modes = [(m, m.training) for m in model.modules()]  # restored module by module: a mix stays a mix
    model.eval()
    with torch.no_grad():
        out = model(x[:1])
    for m, mode in modes:
        m.training = mode
    if out.dim() != 2:
        raise UnlearnError(f"the model's outputs have shape {tuple(out.shape)}; expected logits [N, C]")
    if bool((y.min() < 0) | (y.max() >= out.shape[1])):
        raise UnlearnError(f"labels must lie in 0 .. {out.shape[1] - 1} (the model has {out.shape[1]} outputs); "
                           "the class count of the data and of the model must match")


def _key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict: every entry's name, dtype, shape and raw bytes, in sorted order (chapter 01).

    Stored beside the weights in a cache file and recomputed on load: a flipped bit inside a tensor is not seen
    by ``torch.load`` (its archive format keeps no checksum of the tensor data) and would silently change every
    number computed from the model.
    """
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).cpu().numpy().tobytes())
    return h.hexdigest()


def save_atomic(obj, path: Path) -> None:
    """Write ``obj`` with ``torch.save`` to a temporary file in the same folder, flush it to disk, then rename it
    into place: readers see the old file or the whole new one, never half of it."""
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
    corrupt archive raises inside ``torch.load``; a file of another configuration (a hash collision of file names,
    or a hand-copied file) has the wrong ``key``; changed tensor bytes fail the SHA-256 of :func:`state_digest`
    (a file written without one, by an older version, is rebuilt too); NaN or infinite weights, which no trained
    model of the cache can have, are evicted as well; a file of another architecture fails ``load_state_dict``.
    """
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("key") != key:
            raise ValueError("configuration key mismatch")
        state = blob["state_dict"]
        if not isinstance(state, dict) or blob.get("sha256") != state_digest(state):
            raise ValueError("checksum mismatch")
        if any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in state.values()):
            raise ValueError("non-finite weights")
        model.load_state_dict(state, strict=True)
        return blob.get("meta", {})
    except Exception:
        path.unlink(missing_ok=True)
        return None


def _cache_folder() -> Path:
    try:
        return config.cache_dir()
    except OSError as exc:  # UNLEARN_CACHE names a file, or a path below a file, or an unwritable place
        raise UnlearnError(f"the model cache {exc.filename or '(UNLEARN_CACHE)'} is not a usable folder "
                           f"({type(exc).__name__}); set UNLEARN_CACHE to a folder") from None


def _cached_train(key_parts: dict, name: str, build, x, y, cfg: TrainConfig, seed: int, device, progress: bool,
                  use_cache: bool):
    key = _key(**key_parts)
    path = _cache_folder() / f"{name}-{key}.pt" if use_cache else None
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
        save_atomic({"key": key, "state_dict": state, "sha256": state_digest(state),
                     "meta": {"train_time_s": elapsed}}, path)
    return model


def original_model(data: Dataset, cfg: TrainConfig, seed: int = 0, device=None, progress: bool = True,
                   use_cache: bool = True) -> nn.Module:
    """The model trained on the whole training set D (chapter 01); cached. ``.train_time_s`` holds its cost."""
    device = config.get_device(device)
    parts = dict(kind="original", data=data.fingerprint(), cfg=cfg.key_dict(), seed=seed)
    build = lambda: make_model(cfg.model, data.input_shape, data.num_classes, seed=seed)
    return _cached_train(parts, "original", build, data.x_train, data.y_train, cfg, seed, device, progress, use_cache)


def retrained_model(task: UnlearningTask, cfg: TrainConfig, seed: int = 0, device=None, progress: bool = True,
                    use_cache: bool = True, replica: int = 0) -> nn.Module:
    """The retrain oracle: the same recipe on the retain set D_r only (chapter 01); cached.

    The seed of the initialisation and of the batch order is offset from the original model's, so that the
    oracle is an independent training run, as retraining from scratch would be. ``replica`` j > 0 gives another
    independent retraining of the same task (another initialisation and batch order): replica 1 is the second
    oracle of the noise floor, replicas 0 .. N-1 the retrained models of the competition's score (chapter 11).
    """
    if isinstance(replica, bool) or not isinstance(replica, numbers.Integral) or replica < 0:
        raise UnlearnError(f"replica must be a non-negative integer, got {replica!r}")
    device = config.get_device(device)
    data = task.data
    parts = dict(kind="retrain", task=task.fingerprint(), cfg=cfg.key_dict(), seed=seed)
    if replica:  # replica 0 keeps the key the oracle always had
        parts["replica"] = int(replica)
    train_seed = seed + 10_000 + 100_003 * int(replica)
    build = lambda: make_model(cfg.model, data.input_shape, data.num_classes, seed=train_seed)
    return _cached_train(parts, "retrain", build, task.x_retain, task.y_retain, cfg, train_seed, device,
                         progress, use_cache)


def subset_model(data: Dataset, idx: torch.Tensor, cfg: TrainConfig, seed: int, device=None, progress: bool = False,
                 use_cache: bool = True) -> nn.Module:
    """A model trained with the book's recipe on the training samples ``idx`` of ``data`` only: the shadow models
    of memorisation scores and of per-example attacks (chapter 11); cached by the data, the subset, the recipe
    and the seed."""
    device = config.get_device(device)
    idx = torch.as_tensor(idx, dtype=torch.long).cpu().sort().values
    if len(idx) == 0:
        raise UnlearnError("a shadow model needs at least one training sample; the subset is empty")
    digest = hashlib.sha256(idx.cpu().numpy().astype("int64").tobytes()).hexdigest()[:16]
    parts = dict(kind="subset", data=data.fingerprint(), subset=digest, cfg=cfg.key_dict(), seed=seed)
    build = lambda: make_model(cfg.model, data.input_shape, data.num_classes, seed=seed)
    dev_idx = idx.to(data.y_train.device)
    return _cached_train(parts, "subset", build, data.x_train[dev_idx], data.y_train[dev_idx], cfg, seed, device,
                         progress, use_cache)
