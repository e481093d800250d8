"""One function to get any data set as tensors, and the config group experiments embed (``data.*``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import torch

from kinkgrad.data._arrays import Arrays
from kinkgrad.data._cifar10 import load_cifar10_arrays
from kinkgrad.data._digits import load_digits_arrays
from kinkgrad.data._mnist import load_mnist_arrays
from kinkgrad.data._mnist1d import load_mnist1d_arrays
from kinkgrad.data._svhn import load_svhn_arrays
from kinkgrad.data._synthetic import load_synthetic_mnist_arrays

DatasetName = Literal["synthetic-mnist", "mnist1d", "digits", "mnist", "cifar10", "svhn"]
"""Names accepted by :func:`load_dataset`."""

DATASETS: dict[str, str] = {
    "synthetic-mnist": "generated 28x28 images, 8-bit levels, ~80% exact zeros (10000 train / 2000 test)",
    "mnist1d": "generated MNIST-1D sequences of length 40 (4000 train / 1000 test)",
    "digits": "scikit-learn's bundled 8x8 digits, levels k/16 (1437 train / 360 test)",
    "mnist": "MNIST IDX files under data.root (torchvision layout), 28x28, levels k/255",
    "cifar10": "CIFAR-10 python batches under data.root (torchvision layout), 3x32x32",
    "svhn": "SVHN train_32x32.mat / test_32x32.mat under data.root (torchvision layout), 3x32x32",
}
"""Each data set's name and a one-line description."""

_GENERATED = {"synthetic-mnist", "mnist1d"}


@dataclass(frozen=True, repr=False, eq=False)
class Dataset:
    """A data set as tensors, split into training and test sets.

    Attributes:
        name: the data set's name.
        x_train, x_test: inputs of shape ``(N, C, ...)`` in the requested dtype; images hold their exact
            pixel levels (``k / 255``, or ``k / 16`` for digits).
        y_train, y_test: ``int64`` class labels of shape ``(N,)``.
        num_classes: number of classes.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input, such as ``(1, 28, 28)``."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, dtype={self.x_train.dtype}, num_classes={self.num_classes})"
        )


def _to_tensor(x: np.ndarray, scale: float, dtype: torch.dtype) -> torch.Tensor:
    """Divide in float64 when asked for float64, else in float32, then round once to ``dtype``."""
    work = torch.float64 if dtype == torch.float64 else torch.float32
    tensor = torch.tensor(x, dtype=work)
    if scale != 1.0:
        tensor = tensor / scale
    return tensor.to(dtype)


def _take(n: int | None, available: int, what: str, name: str) -> int:
    if n is None:
        return available
    if n < 1 or n > available:
        raise ValueError(f"{what}={n} but {name} has {available} examples there (use 1..{available})")
    return n


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    dtype: torch.dtype = torch.float32,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a data set by name as tensors; nothing is ever downloaded.

    Args:
        name: one of :data:`DATASETS`: ``synthetic-mnist``, ``mnist1d`` and ``digits`` need no files;
            ``mnist``, ``cifar10`` and ``svhn`` are read from torchvision's on-disk format under ``root``.
        root: the folder holding the files of a file-based data set.
        dtype: floating dtype of the inputs (``torch.float16`` keeps 8-bit levels up to float16 rounding).
        train_size: keep the first ``train_size`` training examples (generated sets generate that many).
        test_size: likewise for the test set.
        seed: seed of the generated sets and of the digits split.

    Returns:
        A :class:`Dataset`.

    Raises:
        ValueError: unknown name, bad sizes, or (as ``DatasetNotFoundError``) missing files, with a message
            that lists the files expected and the folders searched.

    Example:
        >>> data = load_dataset("digits", dtype=torch.float64, train_size=100)
        >>> data.x_train.shape, data.x_train.dtype, data.num_classes
        (torch.Size([100, 1, 8, 8]), torch.float64, 10)
        >>> bool(((data.x_train * 16).round() == data.x_train * 16).all())  # exact levels k/16
        True
    """
    root = None if root is None else os.fspath(root)
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    loaders: dict[str, Callable[[], Arrays]] = {
        "digits": lambda: load_digits_arrays(seed),
        "mnist": lambda: load_mnist_arrays(root),
        "cifar10": lambda: load_cifar10_arrays(root),
        "svhn": lambda: load_svhn_arrays(root),
    }
    if name in _GENERATED:
        defaults = {"synthetic-mnist": (10_000, 2_000), "mnist1d": (4_000, 1_000)}[name]
        for value, what in ((train_size, "train_size"), (test_size, "test_size")):
            if value is not None and value < 1:
                raise ValueError(f"{what} must be at least 1, got {value}")
        n_train, n_test = train_size or defaults[0], test_size or defaults[1]
        generate = load_synthetic_mnist_arrays if name == "synthetic-mnist" else load_mnist1d_arrays
        arrays = generate(n_train, n_test, seed)
    else:
        arrays = loaders[name]()
    n_train = _take(train_size, len(arrays.y_train), "train_size", name)
    n_test = _take(test_size, len(arrays.y_test), "test_size", name)
    return Dataset(
        name=name,
        x_train=_to_tensor(arrays.x_train[:n_train], arrays.scale, dtype),
        y_train=torch.tensor(arrays.y_train[:n_train], dtype=torch.int64),
        x_test=_to_tensor(arrays.x_test[:n_test], arrays.scale, dtype),
        y_test=torch.tensor(arrays.y_test[:n_test], dtype=torch.int64),
        num_classes=arrays.num_classes,
    )


@dataclass(frozen=True)
class DataConfig:
    """The ``data.*`` settings group for experiment configs.

    Example:
        >>> DataConfig(name="digits", train_size=64).load(torch.float16).x_train.dtype
        torch.float16
    """

    name: DatasetName = field(
        default="synthetic-mnist", metadata={"help": "data set: " + ", ".join(DATASETS)}
    )
    root: str | None = field(
        default=None,
        metadata={"help": "folder with torchvision-format files (mnist, cifar10, svhn); never downloads"},
    )
    train_size: int | None = field(default=None, metadata={"help": "use the first N training examples"})
    test_size: int | None = field(default=None, metadata={"help": "use the first N test examples"})
    seed: int = field(default=0, metadata={"help": "seed of generated data sets and of the digits split"})

    def __post_init__(self) -> None:
        if self.name not in get_args(DatasetName):
            raise ValueError(f"unknown data set {self.name!r}; available: {', '.join(DATASETS)}")

    def load(self, dtype: torch.dtype = torch.float32) -> Dataset:
        """Load the configured data set (see :func:`load_dataset`)."""
        return load_dataset(dtype=dtype, **dataclasses.asdict(self))
