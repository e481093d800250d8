"""The array form every data source returns, and the errors of file-based sources."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetNotFoundError(ValueError):
    """The files of a data set are not where the user pointed (kinkgrad never downloads them)."""


class DatasetFormatError(ValueError):
    """A data file exists but does not have the expected format."""


@dataclass(frozen=True)
class Arrays:
    """A data set as NumPy arrays, before conversion to tensors.

    Attributes:
        x_train, x_test: inputs, shape ``(N, C, ...)``; ``uint8`` pixel levels (divided by ``scale`` on
            conversion) or floats.
        y_train, y_test: integer labels, shape ``(N,)``.
        scale: the divisor turning integer levels into floats in ``[0, 1]`` (255 for 8-bit pixels).
        num_classes: number of classes.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    scale: float
    num_classes: int


def find_files(
    dataset: str, root: str | Path | None, subdirs: Sequence[str], names: Sequence[str], gz: bool = False
) -> list[Path]:
    """Locate ``names`` in the first of ``root/subdir`` (in order) that holds all of them.

    Args:
        dataset: the data set's name, for messages.
        root: the folder the user gave (``data.root``).
        subdirs: relative folders to try, ``""`` for ``root`` itself.
        names: the files needed.
        gz: also accept ``NAME.gz``.

    Raises:
        DatasetNotFoundError: no candidate folder holds every file; the message lists files and folders.
    """
    if root is None:
        raise DatasetNotFoundError(
            f"{dataset} is read from files and data.root is not set: pass --set data.root=FOLDER pointing to "
            f"a folder with {', '.join(names)} (kinkgrad never downloads data)"
        )
    base = Path(root).expanduser()
    tried = []
    for sub in subdirs:
        folder = base / sub if sub else base
        tried.append(str(folder))
        found = []
        for name in names:
            options = [folder / name] + ([folder / (name + ".gz")] if gz else [])
            match = next((p for p in options if p.is_file()), None)
            if match is None:
                break
            found.append(match)
        else:
            return found
    suffix = " (each optionally .gz)" if gz else ""
    raise DatasetNotFoundError(
        f"{dataset} files not found. Expected {', '.join(names)}{suffix} in one of: {', '.join(tried)}. "
        "kinkgrad never downloads data: get the files with torchvision (download=True) or from the data "
        "set's site, then set data.root to their folder"
    )
