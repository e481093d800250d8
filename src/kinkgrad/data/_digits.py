"""scikit-learn's bundled 8×8 handwritten digits (1797 images, levels 0..16), split 80/20 by a seed."""

from __future__ import annotations

import functools

import numpy as np

from kinkgrad.data._arrays import Arrays

TRAIN_FRACTION = 0.8


@functools.lru_cache(maxsize=4)
def load_digits_arrays(seed: int = 0) -> Arrays:
    """The digits as ``uint8`` levels 0..16 in shape ``(N, 1, 8, 8)``, split 1437 / 360 by ``seed``.

    Needs scikit-learn (the data ship inside it; nothing is downloaded).
    """
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError:
        raise ValueError(
            "the digits data set needs scikit-learn: pip install 'kinkgrad[experiments]'"
        ) from None
    bunch = load_digits()
    x = np.asarray(bunch.images, dtype=np.uint8).reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(TRAIN_FRACTION * len(y))
    train, test = order[:cut], order[cut:]
    return Arrays(x[train], y[train], x[test], y[test], scale=16.0, num_classes=10)
