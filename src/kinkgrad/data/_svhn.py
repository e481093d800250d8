"""SVHN (cropped digits) from torchvision's on-disk format: ``train_32x32.mat`` and ``test_32x32.mat``.

Label 10 in the files means digit 0; it is mapped to 0, as torchvision does. Never downloaded.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from kinkgrad.data._arrays import Arrays, DatasetFormatError, find_files

FILES = ("train_32x32.mat", "test_32x32.mat")
SUBDIRS = ("", "svhn", "SVHN")


def read_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN split: images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 in 0..9."""
    try:
        from scipy.io import loadmat
    except ModuleNotFoundError:
        raise ValueError("reading SVHN needs scipy: pip install 'kinkgrad[experiments]'") from None
    try:
        mat = loadmat(str(path))
    except (ValueError, OSError) as err:
        raise DatasetFormatError(f"{path} is not a MATLAB file: {err}") from None
    if "X" not in mat or "y" not in mat:
        raise DatasetFormatError(f"{path} has no 'X' and 'y' arrays")
    x = np.asarray(mat["X"])
    y = np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise DatasetFormatError(f"{path}: X {x.shape} and y {y.shape} do not fit SVHN (32, 32, 3, N)")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8), y % 10


@functools.lru_cache(maxsize=2)
def load_svhn_arrays(root: str | None) -> Arrays:
    """SVHN from ``root`` (the folder torchvision's ``SVHN(root)`` reads)."""
    train_path, test_path = find_files("svhn", root, SUBDIRS, FILES)
    x_train, y_train = read_mat(train_path)
    x_test, y_test = read_mat(test_path)
    return Arrays(x_train, y_train, x_test, y_test, scale=255.0, num_classes=10)
