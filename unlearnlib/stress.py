"""``digits-stress``: a harder offline dataset, made from scikit-learn's digits (chapter 01).

Why it exists: on the 8x8 digits every unlearning method of the book keeps a near-perfect model, so a method that
would wreck the model on a harder dataset looks as good as one that would not. On real 28x28 handwritten digits
some methods collapse the model to chance on the retain set while others keep it. ``digits-stress`` reproduces that
harder regime offline: each 8x8 digit is drawn at 28x28 resolution, several times, under a different elastic
distortion each time (random displacement fields smoothed by a Gaussian, Simard, Steinkraus & Platt, *Best
Practices for Convolutional Neural Networks Applied to Visual Document Analysis*, ICDAR 2003), a small random
affine map and pixel noise. It is made, not downloaded: the same arrays on every run, in about a second.

The original digits are split into train and test exactly as the ``digits`` dataset splits them, and each side is
distorted on its own (with its own random stream), so that no test image is a distortion of a training image.

Everything is computed in float64 NumPy from a NumPy ``Generator`` (PCG64) with element-wise operations, einsum
contractions and gathers, without trigonometric or library-specific vector kernels, so that the arrays do not
depend on the thread count.
"""

from __future__ import annotations

import math

import numpy as np

#: the fixed seed of the distortions: the dataset is a constant of the book, like the digits split.
SEED = 20_031
#: distorted copies of each original image: 1,347 training digits give 8,082 training images.
COPIES = 6
#: the digit occupies the central SIZE - 2 * MARGIN pixels, as in MNIST (20x20 in a 28x28 frame).
SIZE, MARGIN = 28, 4
#: Simard et al.'s elastic parameters for 28x28 digits: displacements uniform in [-1, 1], smoothed by a Gaussian of
#: width SIGMA pixels, scaled by ALPHA pixels (a root-mean-square displacement of about 1.3 pixels per axis).
ALPHA, SIGMA = 34.0, 4.0
#: the affine jitter: the 2x2 linear part is the identity plus entries uniform in [-AFFINE, AFFINE] (rotation, shear
#: and scale of up to about 12 %, with no trigonometry), the shift uniform in [-SHIFT, SHIFT] pixels.
AFFINE, SHIFT = 0.12, 2.0
#: standard deviation of the Gaussian pixel noise on the 0-1 scale, added after the distortion and clipped to 0-1.
NOISE = 0.1


def digits_split():
    """The 8x8 digits in 0-1 and their train/test split, the same as the ``digits`` dataset's (chapter 01):
    ``(x_train, y_train, idx_train, x_test, y_test, idx_test)``, ``idx_*`` the indices into scikit-learn's order."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)
    # The same call as unlearnlib.data._load_digits: the split depends only on the labels and random_state, so
    # passing the indices along gives back the same permutation.
    xtr, xte, ytr, yte, itr, ite = train_test_split(x, bunch.target, np.arange(len(x)), test_size=0.25,
                                                    random_state=0, stratify=bunch.target)
    return xtr, ytr, itr, xte, yte, ite


def _gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """The n x n matrix of a 1-D Gaussian filter with zero padding (scipy's mode "constant"), truncated at 4 sigma.
    The weights come from math.exp (the same bits everywhere)."""
    radius = int(4 * sigma + 0.5)
    w = np.array([math.exp(-0.5 * (k / sigma) ** 2) for k in range(-radius, radius + 1)])
    w /= w.sum()
    g = np.zeros((n, n))
    for i in range(n):
        for k in range(-radius, radius + 1):
            if 0 <= i + k < n:
                g[i, i + k] = w[k + radius]
    return g


def _bilinear(src: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample the images ``src`` [N, h, w] at the real-valued pixel coordinates ``rows``, ``cols`` [N, H, W]
    (pixel centres at integers), zero outside the image."""
    n, h, w = src.shape
    pad = 2  # a zero border two pixels wide: a coordinate clipped into it samples zeros only
    padded = np.zeros((n, h + 2 * pad, w + 2 * pad))
    padded[:, pad:pad + h, pad:pad + w] = src
    r = np.clip(rows + pad, 0.0, h + 2 * pad - 1.000001)
    c = np.clip(cols + pad, 0.0, w + 2 * pad - 1.000001)
    r0, c0 = np.floor(r).astype(np.int64), np.floor(c).astype(np.int64)
    fr, fc = r - r0, c - c0
    flat = padded.reshape(n, -1)
    base = np.arange(n)[:, None, None] * flat.shape[1]
    stride = w + 2 * pad
    at = lambda rr, cc: flat.reshape(-1)[base + rr * stride + cc]
    return ((1 - fr) * ((1 - fc) * at(r0, c0) + fc * at(r0, c0 + 1))
            + fr * ((1 - fc) * at(r0 + 1, c0) + fc * at(r0 + 1, c0 + 1)))


def distort(images: np.ndarray, rng: np.random.Generator, alpha: float = ALPHA, sigma: float = SIGMA,
            affine: float = AFFINE, shift: float = SHIFT, noise: float = NOISE) -> np.ndarray:
    """One distorted 28x28 copy of every 8x8 image in ``images`` [N, 8, 8] (0-1), float32 [N, 28, 28] in 0-1
    (chapter 01). ``alpha = affine = shift = 0`` gives the plain upscaled images (plus noise).

    Every output pixel p (in 28x28 coordinates, centre c) is read from the point q = c + A (p - c) + t + alpha d(p),
    with A the affine part, t the shift and d the smoothed displacement field, mapped into the 8x8 image, whose
    pixels cover the central 20x20 pixels of the frame.
    """
    n, h, w = images.shape
    field = rng.uniform(-1.0, 1.0, size=(n, 2, SIZE, SIZE))
    g = _gaussian_matrix(SIZE, sigma)
    # The separable Gaussian as two contractions (rows, then columns): elastic displacements in pixels.
    field = np.einsum("ia,nkab->nkib", g, field)
    field = alpha * np.einsum("nkib,jb->nkij", field, g)
    a = np.eye(2) + rng.uniform(-affine, affine, size=(n, 2, 2))
    t = rng.uniform(-shift, shift, size=(n, 2))
    centre = (SIZE - 1) / 2
    grid = np.arange(SIZE) - centre
    pr, pc = np.meshgrid(grid, grid, indexing="ij")  # [28, 28] row and column offsets from the centre
    qr = centre + a[:, 0, 0, None, None] * pr + a[:, 0, 1, None, None] * pc + t[:, 0, None, None] + field[:, 0]
    qc = centre + a[:, 1, 0, None, None] * pr + a[:, 1, 1, None, None] * pc + t[:, 1, None, None] + field[:, 1]
    # 28x28 coordinates to 8x8 ones: the 8 source pixels span the 20 central output pixels (pixel-centre convention).
    scale = h / (SIZE - 2 * MARGIN)
    out = _bilinear(images.astype(np.float64), (qr + 0.5 - MARGIN) * scale - 0.5, (qc + 0.5 - MARGIN) * scale - 0.5)
    out = out + noise * rng.standard_normal(out.shape)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def make_stress(seed: int = SEED, copies: int = COPIES, **distortion):
    """The arrays of ``digits-stress`` (chapter 01): a dict with ``x_train, y_train, src_train, x_test, y_test,
    src_test``; ``x_*`` float32 [N, 28, 28] in 0-1, ``src_*`` the index (in scikit-learn's order) of the 8x8 digit
    each image was drawn from. ``copies`` distorted copies per digit, copy by copy; train and test draw from
    separate streams of ``seed``. Keyword arguments go to :func:`distort`."""
    xtr, ytr, itr, xte, yte, ite = digits_split()
    out = {}
    for stream, (side, x, y, idx) in enumerate((("train", xtr, ytr, itr), ("test", xte, yte, ite))):
        rng = np.random.default_rng([seed, stream])
        out[f"x_{side}"] = np.concatenate([distort(x, rng, **distortion) for _ in range(copies)])
        out[f"y_{side}"] = np.tile(np.asarray(y, dtype=np.int64), copies)
        out[f"src_{side}"] = np.tile(idx, copies)
    return out
