"""CIFAR-10 from torchvision's on-disk format (the "python version" pickled batches). Never downloaded."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from kinkgrad.data._arrays import Arrays, DatasetFormatError, find_files

FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
SUBDIRS = ("cifar-10-batches-py", "")

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings and NumPy arrays only, so a data file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            if module.startswith("numpy.core") and hasattr(np, "_core"):  # NumPy 2 renamed numpy.core
                module = "numpy._core" + module[len("numpy.core") :]
            return super().find_class(module, name)
        raise DatasetFormatError(f"unexpected object {module}.{name} in a CIFAR-10 batch file")


def _key(batch: dict[Any, Any], name: str) -> Any:
    for key in (name, name.encode()):
        if key in batch:
            return batch[key]
    raise DatasetFormatError(f"CIFAR-10 batch has no {name!r} entry")


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch: images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64."""
    with open(path, "rb") as f:
        try:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError) as err:
            raise DatasetFormatError(f"{path} is not a CIFAR-10 batch: {err}") from None
    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{path} is not a CIFAR-10 batch (expected a dict)")
    data = np.asarray(_key(batch, "data"), dtype=np.uint8)
    labels = np.asarray(_key(batch, "labels"), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DatasetFormatError(f"{path}: data {data.shape} and labels {labels.shape} do not fit CIFAR-10")
    return data.reshape(-1, 3, 32, 32), labels


@functools.lru_cache(maxsize=2)
def load_cifar10_arrays(root: str | None) -> Arrays:
    """CIFAR-10 from ``root`` (torchvision's root, or the ``cifar-10-batches-py`` folder itself)."""
    paths = find_files("cifar10", root, SUBDIRS, FILES)
    train = [read_batch(p) for p in paths[:5]]
    x_test, y_test = read_batch(paths[5])
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return Arrays(x_train, y_train, x_test, y_test, scale=255.0, num_classes=10)
