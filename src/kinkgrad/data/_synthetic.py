"""Synthetic MNIST-like images: 28×28, 8-bit pixel levels k/255, about 80% exact zeros, ten learnable classes.

Real MNIST matters to kink studies because its inputs are sparse and quantised: about 81% of pixels are
exactly 0 and the rest are multiples of 1/255, so pre-activations hit exact ties far more often than with
continuous data. This generator keeps those two properties without any download.

Each class is a fixed pen stroke (a polyline through five control points, drawn from a class-specific
stream). An example jitters the control points, shifts and scales the stroke, draws it with a random pen
width as a soft ink profile, zeroes every pixel below a random quantile of its ink (so 74% to 86% of the
pixels are exactly zero), and quantises the rest to levels 1..255.
"""

from __future__ import annotations

import functools

import numpy as np

from kinkgrad.data._arrays import Arrays

SIZE = 28
_POINTS = 5
_BLOCK = 500
_PROTOTYPE_SEED = 20_211_206


def prototypes() -> np.ndarray:
    """The ten class strokes, shape ``(10, 5, 2)``: control points (row, column) in pixel units."""
    rng = np.random.default_rng(_PROTOTYPE_SEED)
    return rng.uniform(6.0, 21.0, size=(10, _POINTS, 2))


def _segment_distance(grid: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from each grid point ``(P, 2)`` to segments ``a -> b`` ``(B, S, 2)``: shape ``(B, S, P)``."""
    px, py = grid[:, 0], grid[:, 1]
    ax, ay = a[..., 0:1], a[..., 1:2]
    dx, dy = b[..., 0:1] - ax, b[..., 1:2] - ay
    qx, qy = px - ax, py - ay
    t = np.clip((qx * dx + qy * dy) / np.maximum(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
    return np.hypot(qx - t * dx, qy - t * dy)


def _block(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    n = len(labels)
    rows, cols = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    grid = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float32)
    points = prototypes()[labels] + rng.normal(0.0, 1.0, size=(n, _POINTS, 2))
    centre = points.mean(axis=1, keepdims=True)
    scale = rng.uniform(0.85, 1.15, size=(n, 1, 1))
    shift = rng.uniform(-2.0, 2.0, size=(n, 1, 2))
    points = ((points - centre) * scale + centre + shift).astype(np.float32)
    distance = _segment_distance(grid, points[:, :-1], points[:, 1:]).min(axis=1)
    width = rng.uniform(1.0, 1.8, size=(n, 1))
    ink = np.exp(-((distance / width) ** 2)) * rng.uniform(0.8, 1.0, size=(n, 1))
    ink = ink + 0.02 * rng.random(ink.shape)  # paper texture, so the cut below is never a tie
    zero_fraction = rng.uniform(0.74, 0.86, size=(n, 1))
    rank = np.ceil(zero_fraction * (ink.shape[1] - 1)).astype(np.int64)
    cut = np.take_along_axis(np.sort(ink, axis=1), rank, axis=1)
    top = ink.max(axis=1, keepdims=True)
    levels = np.where(ink < cut, 0.0, np.clip(np.round(255.0 * (ink - cut) / (top - cut)), 1.0, 255.0))
    return levels.astype(np.uint8).reshape(n, 1, SIZE, SIZE)


def generate_synthetic_mnist(n: int, *, seed: int = 0, split: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic images as ``uint8`` levels ``(n, 1, 28, 28)`` and balanced labels ``(n,)``.

    Images come in blocks of 500 with their own random stream, so the first ``k`` of ``n`` images do not
    depend on ``n``; ``split`` (0 train, 1 test) selects disjoint streams.

    Example:
        >>> x, y = generate_synthetic_mnist(50)
        >>> x.shape, x.dtype.name, 0.7 < float((x == 0).mean()) < 0.9
        ((50, 1, 28, 28), 'uint8', True)
    """
    xs, ys = [], []
    for block in range((n + _BLOCK - 1) // _BLOCK):
        rng = np.random.default_rng([seed, split, block])
        labels = rng.permutation(np.arange(block * _BLOCK, (block + 1) * _BLOCK) % 10)
        xs.append(_block(rng, labels))
        ys.append(labels)
    if not xs:
        return np.zeros((0, 1, SIZE, SIZE), np.uint8), np.zeros(0, np.int64)
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n].astype(np.int64)


@functools.lru_cache(maxsize=4)
def load_synthetic_mnist_arrays(n_train: int = 10_000, n_test: int = 2_000, seed: int = 0) -> Arrays:
    """Synthetic MNIST-like data as :class:`Arrays` (levels divided by 255 on conversion)."""
    x_train, y_train = generate_synthetic_mnist(n_train, seed=seed, split=0)
    x_test, y_test = generate_synthetic_mnist(n_test, seed=seed, split=1)
    return Arrays(x_train, y_train, x_test, y_test, scale=255.0, num_classes=10)
