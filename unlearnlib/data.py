"""Datasets and forgetting scenarios (chapter 01).

Everything is held as tensors in memory: the book's datasets are small, and indexing tensors on the device
avoids the host-device round trips of a ``DataLoader`` in the training loops.

* ``digits``: scikit-learn's 8x8 handwritten digits. It ships with scikit-learn, so the book runs offline.
* ``digits-stress``: a harder 28x28 dataset made from them by elastic distortion (``unlearnlib.stress``).
* ``mnist``, ``fashion-mnist``, ``cifar10``: through torchvision's own classes, downloaded only when asked, from
  ``UNLEARN_DATA_ROOT`` (default ``~/.cache/unlearnlib/data``). ``python -m unlearnlib.data cifar10 --download``
  fetches one once.
* :func:`synthetic_images`: a small deterministic RGB dataset made in memory, for tests and timings on any
  machine (no file, no download).
* any ``.npz`` file with the arrays ``x_train, y_train, x_test, y_test`` (the layout Keras uses for
  ``mnist.npz``): grey ``[N, H, W]`` or colour ``[N, H, W, C]`` / ``[N, C, H, W]``, ``uint8`` or float.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import numbers
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from unlearnlib.errors import UnlearnError

BUILTIN = ("digits", "digits-stress", "mnist", "fashion-mnist", "cifar10")
SCENARIOS = ("random", "class", "mislabeled", "memorized")
#: the seed of the shadow family whose memorisation scores choose the ``memorized`` forget set: fixed, so that the
#: set is a property of the data (like a class), and distinct from the families the audits of chapter 11 train.
MEMORIZATION_SHADOW_SEED = 7_919


@dataclass
class Dataset:
    """A standardised image-classification dataset held as tensors (chapter 01).

    ``x_*`` are float32 ``[N, C, H, W]``, standardised per channel with the training statistics;
    ``y_*`` are int64 labels in ``0 .. num_classes - 1``.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def fingerprint(self) -> str:
        """A short hash of the contents, so that a cached model is never reused on other data."""
        h = hashlib.sha256()
        for t in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def to(self, device) -> "Dataset":
        return Dataset(self.name, self.x_train.to(device), self.y_train.to(device), self.x_test.to(device),
                       self.y_test.to(device), self.num_classes)


def _as_nchw_float(x: np.ndarray, what: str) -> np.ndarray:
    """Grey [N,H,W], channels-last [N,H,W,C] or channels-first [N,C,H,W] -> float32 [N,C,H,W] in a 0-1 scale."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            x = x.transpose(0, 3, 1, 2)
    else:
        raise UnlearnError(f"{what} has shape {x.shape}; expected images [N, H, W], [N, H, W, C] or [N, C, H, W]")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise UnlearnError(f"{what} has dtype {x.dtype}; expected uint8 or float images")
    # Checked before the conversion, so that the message says what the file holds: a float64 value beyond
    # float32's range becomes infinite only in the conversion.
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise UnlearnError(f"{what} contains NaN or infinite values; clean the file first")
    big = float(np.abs(x).max()) if x.size else 0.0
    if big > float(np.finfo(np.float32).max):
        raise UnlearnError(f"{what} has pixel values up to {big:.3g}, beyond the float32 range of the models; "
                           "rescale the images (for example to 0-1) first")
    return x.astype(np.float32)


def _as_labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    y = np.asarray(y).reshape(-1) if np.asarray(y).ndim == 2 and np.asarray(y).shape[1] == 1 else np.asarray(y)
    if y.ndim != 1:
        raise UnlearnError(f"{what} has shape {y.shape}; expected integer class labels [N] (not one-hot)")
    if len(y) != n:
        raise UnlearnError(f"{what} has {len(y)} labels but there are {n} images; the two must match")
    if not np.issubdtype(y.dtype, np.integer):
        # Whole float labels (3.0, as some tools save them) are accepted; anything else is refused rather than
        # cast: 3.5 or NaN have no class, and beyond 2**53 a float no longer holds an exact integer.
        whole = (np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and np.all(np.mod(y, 1) == 0)
                 and (not len(y) or np.abs(y).max() < 2.0**53))
        if not whole:
            raise UnlearnError(f"{what} must hold integer class labels, got dtype {y.dtype}; "
                               "store the labels as integers 0 .. C-1")
        y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise UnlearnError(f"{what} has negative labels; expected classes 0 .. C-1")
    if len(y) and int(y.max()) > np.iinfo(np.int64).max:
        raise UnlearnError(f"{what} has labels up to {int(y.max())}; expected classes 0 .. C-1")
    return y.astype(np.int64)


def _check_classes(ytr: np.ndarray, yte: np.ndarray, num_classes) -> int:
    """The number of classes C, after checking that the training labels are exactly 0 .. C-1 and that every test
    label occurs in training. np.unique, never bincount: a stray label 2**31 - 1 must not allocate 16 GB."""
    present = np.unique(ytr)
    if num_classes is not None:
        if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, numbers.Integral):
            raise UnlearnError(f"num_classes must be an integer, got {num_classes!r}")
        num_classes = int(num_classes)
        if num_classes < 2:
            raise UnlearnError(f"num_classes must be at least 2, got {num_classes}")
        if present[-1] >= num_classes:
            raise UnlearnError(f"y_train has label {int(present[-1])} but num_classes is {num_classes}; "
                               f"labels must lie in 0 .. {num_classes - 1}")
    if len(present) < 2:
        raise UnlearnError(f"y_train holds a single class ({int(present[0])}); classification and unlearning "
                           "need at least two classes")
    c = int(present[-1]) + 1 if num_classes is None else num_classes
    if len(present) != c:
        # Sparse labels (0, 100, ..., 900) or one stray label would build a model with C outputs, most of them
        # never trained, and the chance level 100 / C of the stopping rule would be wrong.
        shown = ", ".join(str(int(v)) for v in present[:6]) + (", ..." if len(present) > 6 else "")
        raise UnlearnError(f"y_train uses {len(present)} distinct labels ({shown}) but they are not 0 .. {c - 1}; "
                           "relabel them to 0 .. C-1, e.g. np.unique(y, return_inverse=True)[1]")
    unseen = np.setdiff1d(np.unique(yte), present)
    if len(unseen):
        raise UnlearnError(f"y_test has label(s) never seen in training ({', '.join(map(str, unseen[:6].tolist()))}"
                           f"{', ...' if len(unseen) > 6 else ''}); every test class must occur in y_train")
    return c


def _standardise(xtr: np.ndarray, xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise per channel with the training statistics only (in float32, as the models compute)."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, as one error line
        mean = xtr.mean(axis=(0, 2, 3), keepdims=True)
        std = xtr.std(axis=(0, 2, 3), keepdims=True) + 1e-6
        a, b = (xtr - mean) / std, (xte - mean) / std
    # Huge finite pixels overflow float32 in the mean or the variance: the result would be NaN, infinite or a
    # constant 0. Checked here rather than computed in float64, so that valid data keeps its exact values.
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and np.isfinite(a).all() and np.isfinite(b).all()):
        raise UnlearnError(f"standardising the images overflows float32 (pixel values up to "
                           f"{float(max(np.abs(xtr).max(), np.abs(xte).max())):.3g}); rescale them, for example "
                           "to 0-1, first")
    return a, b


def from_arrays(name: str, x_train, y_train, x_test, y_test, num_classes: int | None = None) -> Dataset:
    """Build a standardised :class:`Dataset` from NumPy arrays in any of the accepted layouts (chapter 01)."""
    xtr = _as_nchw_float(x_train, "x_train")
    xte = _as_nchw_float(x_test, "x_test")
    if xtr.shape[1:] != xte.shape[1:]:
        raise UnlearnError(f"x_train images are {xtr.shape[1:]} but x_test images are {xte.shape[1:]}; "
                           "train and test images must have the same shape")
    ytr = _as_labels(y_train, len(xtr), "y_train")
    yte = _as_labels(y_test, len(xte), "y_test")
    if len(xtr) == 0 or len(xte) == 0:
        raise UnlearnError("the dataset has an empty train or test split")
    num_classes = _check_classes(ytr, yte, num_classes)
    xtr_s, xte_s = _standardise(xtr, xte)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    return Dataset(name, t(xtr_s), t(ytr), t(xte_s), t(yte), num_classes)


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)  # [1797, 8, 8], pixel values 0..16
    # A fixed stratified split: the dataset must be the same for every chapter and seed.
    xtr, xte, ytr, yte = train_test_split(x, bunch.target, test_size=0.25, random_state=0, stratify=bunch.target)
    return from_arrays("digits", xtr, ytr, xte, yte, num_classes=10)


def _load_digits_stress() -> Dataset:
    from unlearnlib.stress import make_stress

    s = make_stress()
    return from_arrays("digits-stress", s["x_train"], s["y_train"], s["x_test"], s["y_test"], num_classes=10)


#: what each torchvision dataset is called in messages, and the folder torchvision keeps it in under the root.
_TORCHVISION = {"mnist": ("MNIST", "MNIST"), "fashion-mnist": ("Fashion-MNIST", "FashionMNIST"),
                "cifar10": ("CIFAR-10", "cifar-10-batches-py")}


def data_root(root: str | Path | None = None) -> Path:
    """Where torchvision datasets live: ``root`` when given, else ``UNLEARN_DATA_ROOT``, else
    ``~/.cache/unlearnlib/data`` (chapter 01)."""
    if root is None or not str(root).strip():
        root = os.environ.get("UNLEARN_DATA_ROOT", "").strip() or Path.home() / ".cache" / "unlearnlib" / "data"
    return Path(root).expanduser()


class DatasetMissing(UnlearnError):
    """A dataset whose files are absent; the message is the one command that fetches them (chapter 01).

    The command line prints it as one ``error:`` line, as every :class:`~unlearnlib.errors.UnlearnError`. IPython shows an exception
    with a ``_render_traceback_`` method by calling it instead of printing the traceback, so a chapter run in the
    ``full`` profile without the files also stops with that one line.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"error: {self}"]


def _missing_message(name: str, root: Path) -> str:
    title, folder = _TORCHVISION[name]
    where = "" if root == data_root(None) else f" --data-root {shlex.quote(str(root))}"
    state = ("is incomplete or damaged (a file is missing or fails its checksum)" if (root / folder).exists()
             else f"was not found (no {folder} folder there)")
    return (f"{title} under {root} {state}; fetch it with: python -m unlearnlib.data {name} --download{where}   "
            f"(or pass --download to the bench, or set UNLEARN_DATA_ROOT to the folder that holds {folder})")


def _load_torchvision(name: str, root: Path, download: bool) -> Dataset:
    try:
        import torchvision
    except ImportError:  # pragma: no cover - depends on the installation
        raise UnlearnError(f"dataset {name!r} needs torchvision; install it with pip install torchvision") from None
    cls = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST,
           "cifar10": torchvision.datasets.CIFAR10}[name]
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except RuntimeError as exc:
        if not download:
            raise DatasetMissing(_missing_message(name, root)) from None
        raise UnlearnError(f"could not download {name!r} into {root}: {exc}") from None
    except Exception as exc:  # torchvision's readers assert on malformed files
        raise UnlearnError(f"the files of {name!r} under {root} are damaged ({type(exc).__name__}); delete them "
                           "and pass --download to fetch them again") from None
    arrays = []
    for split in (train, test):
        data = split.data.numpy() if hasattr(split.data, "numpy") else np.asarray(split.data)
        arrays += [data, np.asarray(split.targets)]
    return from_arrays(name, arrays[0], arrays[1], arrays[2], arrays[3], num_classes=10)


def synthetic_images(n_train: int = 512, n_test: int = 128, num_classes: int = 10, size: int = 32,
                     channels: int = 3, noise: float = 0.6, seed: int = 0) -> Dataset:
    """A small deterministic RGB dataset of ``size`` x ``size`` images, made in memory (chapter 01).

    Each class has a smooth colour pattern (random values on a 4 x 4 grid, bilinearly upsampled); an image is its
    class's pattern at a random contrast, plus a smooth random pattern of its own and pixel noise, both scaled
    by ``noise``, quantised to bytes like a photograph and standardised like every dataset of the library. The
    classes are learnable but overlap, so a network fits the training set better than the test set: there is
    something to forget. It stands in for CIFAR-10 where the files are absent (tests, and GPU timings, which do
    not depend on the pixel values). The same arguments give the same bytes: NumPy's PCG64 generator and exact
    integer quantisation.
    """
    for what, v, low in (("n_train", n_train, 1), ("n_test", n_test, 1), ("num_classes", num_classes, 2),
                         ("size", size, 4), ("channels", channels, 1)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
            raise UnlearnError(f"synthetic_images: {what} must be an integer of at least {low}, got {v!r}")
    if n_train < num_classes:
        raise UnlearnError(f"synthetic_images: n_train ({n_train}) must be at least num_classes ({num_classes}), "
                           "so that every class occurs in training")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not 0 <= noise < math.inf:
        raise UnlearnError(f"synthetic_images: noise must be a non-negative finite number, got {noise!r}")
    rng = np.random.default_rng(seed)
    # Bilinear interpolation from a 4-point grid to ``size`` points, as a matrix: smooth patterns without a loop.
    pos = np.linspace(0, 3, size)
    up = np.clip(1 - np.abs(pos[:, None] - np.arange(4)[None, :]), 0, None)          # [size, 4]

    def smooth(k):
        grid = rng.standard_normal((k, channels, 4, 4))
        return np.einsum("hi,kcij,wj->kchw", up, grid, up)

    prototypes = smooth(num_classes)
    n = n_train + n_test
    # Labels: every class in turn, then shuffled, so that each class has n / C samples up to one.
    y = rng.permutation(np.arange(n) % num_classes)
    y[:num_classes] = np.arange(num_classes)      # the training split holds every class (from_arrays checks it)
    contrast = rng.uniform(0.6, 1.4, size=(n, 1, 1, 1))
    x = contrast * prototypes[y] + noise * smooth(n) + 0.5 * noise * rng.standard_normal((n, channels, size, size))
    pixels = np.clip(np.rint(127.5 + 40.0 * x), 0, 255).astype(np.uint8)
    return from_arrays(f"synthetic{size}", pixels[:n_train], y[:n_train], pixels[n_train:], y[n_train:],
                       num_classes=num_classes)


#: the padding of the random crop of :func:`crop_flip`: CIFAR-10's standard, 4 pixels on a 32-pixel image.
CROP_PAD = 4


def draw_crop_flip(n: int, generator: torch.Generator, pad: int = CROP_PAD) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crop offsets ``[n, 2]`` in 0 .. 2·pad and horizontal-flip flags ``[n]``, drawn with a CPU generator
    (the same on every device); move them to the device once per pass (chapter 01)."""
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)  # host: CPU generator, moved per pass
    flips = torch.rand(n, generator=generator) < 0.5  # host: as above
    return offsets, flips


def crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int = CROP_PAD) -> torch.Tensor:
    """The standard augmentation of CIFAR-10 on a batch ``[B, C, H, W]``, on its device, without a loop over
    samples (chapter 01): pad by ``pad`` zeros (the mean, after standardisation), crop an H x W window at
    ``offsets[i]`` (row, column), then mirror it left-right where ``flips[i]``. The same as torchvision's
    ``RandomCrop(H, padding=pad)`` followed by ``RandomHorizontalFlip()``, with the randomness given.
    """
    if x.dim() != 4 or offsets.shape != (x.shape[0], 2) or flips.shape != (x.shape[0],):
        raise UnlearnError(f"crop_flip needs images [B, C, H, W], offsets [B, 2] and flips [B]; got "
                           f"{tuple(x.shape)}, {tuple(offsets.shape)}, {tuple(flips.shape)}")
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = offsets[:, :1] + torch.arange(h, device=x.device)                        # [B, H]
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)                        # [B, W]
    cols = torch.where(flips[:, None], cols.flip(1), cols)          # mirrored: the window read right to left
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def _load_npz(path: Path) -> Dataset:
    if not path.is_file():
        raise UnlearnError(f"file {path} does not exist; give the path to an .npz file with "
                           "x_train, y_train, x_test, y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
            if missing:
                raise UnlearnError(f"{path} lacks the array(s) {', '.join(missing)}; an .npz dataset needs "
                                   "x_train, y_train, x_test, y_test (the Keras mnist.npz layout)")
            arrays = [f[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    except UnlearnError:
        raise
    except Exception as exc:
        raise UnlearnError(f"cannot read {path} as an .npz file ({type(exc).__name__}); "
                           "save it with numpy.savez") from None
    return from_arrays(path.stem, *arrays)


def load_dataset(name: str = "digits", root: str | Path | None = None, download: bool = False) -> Dataset:
    """Load a dataset by name (``digits``, ``digits-stress``, ``mnist``, ``fashion-mnist``, ``cifar10``) or ``.npz``
    path (chapter 01).

    Torchvision datasets are read from ``root``, else ``UNLEARN_DATA_ROOT``, else ``~/.cache/unlearnlib/data``
    (:func:`data_root`). Nothing is downloaded unless ``download=True``; a torchvision dataset that is absent
    raises :class:`DatasetMissing`, whose one line is the command that fetches it.
    """
    key = str(name).strip()
    if key.lower() == "digits":
        return _load_digits()
    if key.lower() == "digits-stress":
        return _load_digits_stress()
    if key.lower() in ("mnist", "fashion-mnist", "cifar10"):
        return _load_torchvision(key.lower(), data_root(root), download)
    if key.endswith(".npz") or Path(key).suffix:
        return _load_npz(Path(key).expanduser())
    raise UnlearnError(f"unknown dataset {name!r}; use one of {', '.join(BUILTIN)} or a path to an .npz file")


@dataclass
class UnlearningTask:
    """A dataset split into forget, retain and test sets (chapter 01).

    ``forget_idx`` and ``retain_idx`` index the training set; they are disjoint and cover it. In class-wise
    forgetting the test set holds only the remaining classes (the SalUn convention for TA); the full test set
    stays available as ``x_test_all``. In the ``mislabeled`` scenario ``data`` holds the corrupted training
    labels (what the original model was trained on) and ``y_train_true`` the correct ones (chapter 11).
    """

    data: Dataset
    scenario: str
    forget_idx: torch.Tensor
    retain_idx: torch.Tensor
    seed: int
    forget_fraction: float | None = None
    forget_class: int | None = None
    _test_mask: torch.Tensor | None = field(default=None, repr=False)
    y_train_true: torch.Tensor | None = field(default=None, repr=False)
    #: memorized scenario: the accuracy in % on D_f of shadow models that never trained on it (chapter 11).
    unseen_forget_acc: float | None = None

    @property
    def x_forget(self): return self.data.x_train[self.forget_idx]
    @property
    def y_forget(self): return self.data.y_train[self.forget_idx]
    @property
    def x_retain(self): return self.data.x_train[self.retain_idx]
    @property
    def y_retain(self): return self.data.y_train[self.retain_idx]
    @property
    def x_test(self): return self.data.x_test if self._test_mask is None else self.data.x_test[self._test_mask]
    @property
    def y_test(self): return self.data.y_test if self._test_mask is None else self.data.y_test[self._test_mask]
    @property
    def y_forget_true(self):
        """The correct labels of D_f: for mislabeled samples, the labels they had before they were flipped."""
        return self.y_forget if self.y_train_true is None else self.y_train_true[self.forget_idx]
    @property
    def x_test_all(self): return self.data.x_test
    @property
    def y_test_all(self): return self.data.y_test

    def fingerprint(self) -> str:
        """Hash of the data and the forget set: the cache key of this task's retrain oracle."""
        h = hashlib.sha256(self.data.fingerprint().encode())
        h.update(self.forget_idx.detach().cpu().numpy().astype(np.int64).tobytes())
        return h.hexdigest()[:16]

    def to(self, device) -> "UnlearningTask":
        mask = None if self._test_mask is None else self._test_mask.to(device)
        true = None if self.y_train_true is None else self.y_train_true.to(device)
        return UnlearningTask(self.data.to(device), self.scenario, self.forget_idx.to(device),
                              self.retain_idx.to(device), self.seed, self.forget_fraction, self.forget_class, mask,
                              true, self.unseen_forget_acc)

    def describe(self) -> str:
        what = (f"class {self.forget_class}" if self.scenario == "class"
                else f"{self.scenario} {100 * self.forget_fraction:g} %")
        return (f"{self.data.name}, forget {what}: |D_f| = {len(self.forget_idx)}, |D_r| = {len(self.retain_idx)}, "
                f"|D_t| = {len(self.y_test)} (seed {self.seed})")


def _forget_count(forget_fraction, n: int) -> tuple[float, int]:
    """The fraction, checked, and the number of samples it forgets out of ``n``."""
    if (isinstance(forget_fraction, bool) or not isinstance(forget_fraction, numbers.Real)
            or not 0 < float(forget_fraction) < 1):
        raise UnlearnError(f"forget fraction must lie strictly between 0 and 1, got {forget_fraction}; "
                           "for example 0.1 for 10 %")
    forget_fraction = float(forget_fraction)
    k = int(round(forget_fraction * n))
    if k == 0 or k == n:
        raise UnlearnError(f"a forget fraction of {forget_fraction} of {n} samples leaves "
                           f"{'an empty forget' if k == 0 else 'an empty retain'} set; choose another fraction")
    return forget_fraction, k


def _split(n: int, forget_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    is_f = torch.zeros(n, dtype=torch.bool)
    is_f[forget_idx] = True
    return is_f.nonzero().flatten(), (~is_f).nonzero().flatten()


def flip_labels(data: Dataset, forget_fraction: float, seed: int = 0) -> tuple[Dataset, torch.Tensor]:
    """A copy of ``data`` in which a random ``forget_fraction`` of the training labels is replaced by another
    class, drawn uniformly among the other C - 1; returns it and the sorted indices of the flipped samples
    (chapter 11). The test set is untouched."""
    n = len(data.y_train)
    forget_fraction, k = _forget_count(forget_fraction, n)
    g = torch.Generator().manual_seed(seed)
    flipped = torch.randperm(n, generator=g)[:k].sort().values  # host: drawn like the random split, then moved
    # An offset in 1 .. C-1 added modulo C never gives back the true class.
    offset = torch.randint(1, data.num_classes, (k,), generator=g)  # host: a CPU generator, same on every device
    y = data.y_train.cpu().clone()  # host: labels edited once, when the task is made
    y[flipped] = (y[flipped] + offset) % data.num_classes
    noisy = Dataset(f"{data.name}, {100 * forget_fraction:g} % labels flipped (seed {seed})", data.x_train,
                    y.to(data.y_train.device), data.x_test, data.y_test, data.num_classes)
    return noisy, flipped


def make_task(data: Dataset, scenario: str = "random", forget_fraction: float = 0.1, forget_class: int | None = None,
              seed: int = 0, scores=None, cfg=None) -> UnlearningTask:
    """Split ``data`` into forget and retain sets, deterministically from ``seed`` (chapters 01 and 11).

    ``random``: a uniformly random ``forget_fraction`` of the training set. ``class``: every training sample of
    ``forget_class``; the test set then keeps only the other classes. ``mislabeled`` (corrective unlearning): a
    random ``forget_fraction`` of the training labels is flipped (:func:`flip_labels`) and the forget set is the
    flipped samples; the task's ``data`` holds the flipped labels, its ``y_train_true`` the correct ones.
    ``memorized``: the ``forget_fraction`` of the training samples with the highest memorisation ``scores``
    (when not given, :func:`unlearnlib.shadows.memorization_scores` estimates them with the recipe ``cfg``, by
    default the profile's, over the shadow family :data:`MEMORIZATION_SHADOW_SEED`, and the task then carries
    ``unseen_forget_acc``, the accuracy on D_f of the shadows that never trained on it); the set is the same for
    every ``seed``, which then only names the run (the original model, the oracle, the method's randomness).
    """
    n = len(data.y_train)
    if scenario == "random":
        forget_fraction, k = _forget_count(forget_fraction, n)
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(n, generator=g)
        forget_idx, retain_idx = perm[:k].sort().values, perm[k:].sort().values
        device = data.y_train.device
        return UnlearningTask(data, scenario, forget_idx.to(device), retain_idx.to(device), seed,
                              forget_fraction=forget_fraction)
    if scenario == "mislabeled":
        noisy, flipped = flip_labels(data, forget_fraction, seed)
        forget_idx, retain_idx = _split(n, flipped)
        device = data.y_train.device
        return UnlearningTask(noisy, scenario, forget_idx.to(device), retain_idx.to(device), seed,
                              forget_fraction=float(forget_fraction), y_train_true=data.y_train)
    if scenario == "memorized":
        forget_fraction, k = _forget_count(forget_fraction, n)
        unseen, from_shadows = None, scores is None
        if scores is None:
            from unlearnlib.config import get_profile
            from unlearnlib.shadows import leave_out_accuracy, memorization_scores
            from unlearnlib.train import TrainConfig

            cfg = cfg if cfg is not None else TrainConfig.from_profile(get_profile())
            scores = memorization_scores(data, cfg, seed=MEMORIZATION_SHADOW_SEED, progress=False)
        scores = torch.as_tensor(np.asarray(scores, dtype=np.float64))
        if scores.shape != (n,) or not bool(torch.isfinite(scores).all()):
            raise UnlearnError(f"memorisation scores must be {n} finite numbers, one per training sample; got "
                               f"shape {tuple(scores.shape)}")
        # A stable sort: ties (rare with real-valued scores) go to the lower index, the same on every machine.
        order = torch.sort(-scores, stable=True).indices
        forget_idx, retain_idx = _split(n, order[:k])
        if cfg is not None and from_shadows:
            # What the shadow models that never saw D_f get right on it: the oracle-free stopping target.
            from unlearnlib.shadows import leave_out_accuracy

            unseen = leave_out_accuracy(data, cfg, forget_idx, seed=MEMORIZATION_SHADOW_SEED, progress=False)
        device = data.y_train.device
        return UnlearningTask(data, scenario, forget_idx.to(device), retain_idx.to(device), seed,
                              forget_fraction=forget_fraction, unseen_forget_acc=unseen)
    if scenario == "class":
        if forget_class is None:
            raise UnlearnError("class-wise forgetting needs a class; pass --forget-class C (forget_class=C)")
        present = sorted(set(data.y_train.tolist()))
        # A bool is an int to Python (True == 1), and int(nan) raises: both are refused here by name.
        whole = (isinstance(forget_class, numbers.Real) and not isinstance(forget_class, (bool, np.bool_))
                 and math.isfinite(forget_class) and int(forget_class) == forget_class)
        if not whole or int(forget_class) not in present:
            raise UnlearnError(f"class {forget_class!r} does not exist in {data.name}; "
                               f"choose one of {present[0]}..{present[-1]}")
        forget_class = int(forget_class)
        is_f = data.y_train.cpu() == forget_class
        forget_idx, retain_idx = is_f.nonzero().flatten(), (~is_f).nonzero().flatten()
        if len(retain_idx) == 0:
            raise UnlearnError(f"forgetting class {forget_class} leaves an empty retain set")
        test_mask = data.y_test != forget_class
        if not bool(test_mask.any()):
            raise UnlearnError(f"forgetting class {forget_class} leaves an empty test set (the test set holds only "
                               "that class); use a test set with other classes too")
        return UnlearningTask(data, scenario, forget_idx.to(data.y_train.device),
                              retain_idx.to(data.y_train.device), seed, forget_class=forget_class,
                              _test_mask=test_mask)
    raise UnlearnError(f"unknown scenario {scenario!r}; use one of {', '.join(SCENARIOS)}")


def minibatches(n: int, batch_size: int, generator: torch.Generator | None = None, device=None,
                drop_last: bool = False):
    """Yield index tensors of a shuffled pass over ``range(n)`` (chapter 01). No generator: in order."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise UnlearnError(f"the number of samples must be a non-negative integer, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise UnlearnError(f"batch_size must be a positive integer, got {batch_size!r}")
    if n == 0:
        raise UnlearnError("cannot iterate over an empty set; check that the forget and retain sets are non-empty")
    # A CPU generator draws the order (the same on every device); it is then moved to the device once per pass.
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n, device=device)
    order = order.to(device) if device is not None else order
    stop = n - (n % batch_size) if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def cycle_batches(n: int, batch_size: int, generator: torch.Generator, device=None):
    """An endless stream of shuffled index batches, reshuffled at every pass (chapter 02)."""
    while True:
        yield from minibatches(n, batch_size, generator, device)


def main(argv=None) -> int:
    """``python -m unlearnlib.data NAME [--data-root DIR] [--download]``: check that a dataset loads, fetching a
    torchvision one first with ``--download`` (chapter 01). Exit status 0, or 2 with one ``error:`` line."""
    p = argparse.ArgumentParser(prog="python -m unlearnlib.data",
                                description="Load a dataset once (and download it with --download) to check it.")
    p.add_argument("name", help=f"one of {', '.join(BUILTIN)}, or a path to an .npz file")
    p.add_argument("--data-root", default=None,
                   help="where torchvision datasets live (default $UNLEARN_DATA_ROOT or ~/.cache/unlearnlib/data)")
    p.add_argument("--download", action="store_true", help="download a torchvision dataset that is absent")
    args = p.parse_args(argv)
    try:
        d = load_dataset(args.name, args.data_root, args.download)
    except UnlearnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = f" in {data_root(args.data_root)}" if args.name.strip().lower() in _TORCHVISION else ""
    print(f"{d.name}: {len(d.y_train)} training and {len(d.y_test)} test images of shape {d.input_shape}, "
          f"{d.num_classes} classes{where}")
    return 0


if __name__ == "__main__":  # run through the package's module, so that its classes are the ones imported elsewhere
    from unlearnlib.data import main as _main

    sys.exit(_main())
