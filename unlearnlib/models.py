"""The networks of the book: an MLP, a small CNN and ResNet-18 for small images (chapter 01).

Every model normalises with GroupNorm, never BatchNorm. A BatchNorm layer in training mode mixes the samples of
a batch, so "the gradient of one sample" is not defined; GroupNorm normalises each sample on its own, so
per-sample gradients (chapter 04) are well defined and their mean equals the batch gradient in any mode.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from unlearnlib.errors import UnlearnError

MODELS = ("mlp", "cnn", "cnn-wide", "resnet18")


def _groups(channels: int) -> int:
    """The largest of 8, 4, 2, 1 that divides ``channels``."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class MLP(nn.Module):
    """Two hidden layers of ReLU units on the flattened image (chapter 01)."""

    def __init__(self, input_shape, num_classes: int, hidden: int = 128):
        super().__init__()
        d = 1
        for s in input_shape:
            d *= s
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.net(x)


class SmallCNN(nn.Module):
    """Three 3x3 convolutions with GroupNorm, global average pooling and a linear head (chapter 01)."""

    def __init__(self, input_shape, num_classes: int, width: int = 32):
        super().__init__()
        c = input_shape[0]

        def block(cin, cout, stride):
            return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.GroupNorm(_groups(cout), cout),
                    nn.ReLU()]

        self.features = nn.Sequential(*block(c, width, 1), *block(width, 2 * width, 2), *block(2 * width, 2 * width, 1),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = nn.GroupNorm(_groups(cout), cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.GroupNorm(_groups(cout), cout))

    def forward(self, x):
        out = torch.relu(self.n1(self.conv1(x)))
        return torch.relu(self.n2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs (3x3 stem, no max-pool) with GroupNorm in place of BatchNorm (chapter 01).

    The CIFAR variant of He et al. (arXiv 1512.03385) used throughout the unlearning literature; GroupNorm
    (Wu & He, arXiv 1803.08494) keeps per-sample gradients well defined.
    """

    def __init__(self, input_shape, num_classes: int, width: int = 64):
        super().__init__()
        c = input_shape[0]
        self.stem = nn.Sequential(nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.GroupNorm(_groups(width), width), nn.ReLU())
        layers, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**i
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def make_model(name: str, input_shape, num_classes: int, seed: int | None = None) -> nn.Module:
    """Build a model by name (``mlp``, ``cnn``, ``cnn-wide``, ``resnet18``), initialised from ``seed`` (chapter 01)."""
    key = str(name).lower()
    if key not in MODELS:
        raise UnlearnError(f"unknown model {name!r}; use one of {', '.join(MODELS)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise UnlearnError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise UnlearnError(f"input_shape must be a tuple of sizes such as (1, 8, 8), got {input_shape!r}") from None
    if not shape or min(shape) < 1 or (key != "mlp" and len(shape) != 3):
        raise UnlearnError(f"input_shape {input_shape!r} does not fit model {key!r}; give (C, H, W) of one image "
                           "with positive sizes (data.input_shape)")
    num_classes = int(num_classes)
    if seed is not None:
        torch.manual_seed(seed)
    if key == "mlp":
        return MLP(input_shape, num_classes)
    if key == "cnn":
        return SmallCNN(input_shape, num_classes, width=16)
    if key == "cnn-wide":
        return SmallCNN(input_shape, num_classes, width=64)
    if key == "resnet18":
        return ResNet18(input_shape, num_classes)
    raise UnlearnError(f"unknown model {name!r}; use one of {', '.join(MODELS)}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters P (chapter 04)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
