"""MNIST from torchvision's on-disk format: the four IDX files, optionally gzipped. Never downloaded."""

from __future__ import annotations

import functools
import gzip
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from kinkgrad.data._arrays import Arrays, DatasetFormatError, find_files

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SUBDIRS = ("MNIST/raw", "MNIST", "raw", "")

_IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format; ``.gz`` is decompressed).

    The header is two zero bytes, a type code, the number of dimensions, then each dimension as a
    big-endian 32-bit integer; the data follow in C order.

    Raises:
        DatasetFormatError: the header or the size does not match.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DatasetFormatError(f"{path} is not an IDX file (bad magic number)")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFormatError(f"{path} is truncated (IDX header)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != math.prod(shape) * dtype.itemsize:
        raise DatasetFormatError(f"{path}: header says shape {shape}, but the data size does not match")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


@functools.lru_cache(maxsize=2)
def load_mnist_arrays(root: str | None) -> Arrays:
    """MNIST from ``root`` (torchvision's root, its ``MNIST/raw`` folder, or a folder with the files)."""
    paths = find_files("mnist", root, SUBDIRS, FILES, gz=True)
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    for images, labels, split in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetFormatError(
                f"mnist {split} files disagree: images {images.shape}, labels {labels.shape}"
            )
    return Arrays(
        x_train[:, None].astype(np.uint8),
        y_train.astype(np.int64),
        x_test[:, None].astype(np.uint8),
        y_test.astype(np.int64),
        scale=255.0,
        num_classes=10,
    )
