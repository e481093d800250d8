"""MNIST-1D, generated locally: ten 1-D digit-like templates, randomly padded, shifted, scaled, sheared, noised.

This follows the published recipe of Greydanus & Kobak, "Scaling down deep learning with MNIST-1D" (ICML
2024), with kinkgrad's own templates and code (the ``mnist1d`` package is not used, and nothing is
downloaded). Each example is made from the template of its class by

1. padding it with a random number of zeros (36 to 60) and stretching the result to 72 points, so the
   template's width varies;
2. scaling its amplitude by a random factor in ``[0.8, 1.2]``;
3. rotating it by a random shift (0 to 47 points);
4. filling the background (the exact zeros from padding) with Gaussian-smoothed noise, then adding small
   i.i.d. noise everywhere;
5. adding a random linear trend (shear), and resampling to 40 points.

Linear classifiers reach roughly a third of the test set; small nonlinear models do much better, which is
what makes the set useful for studying training at tiny scale.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from kinkgrad.data._arrays import Arrays

_BLOCK = 500

# Ten 12-point patterns, one per digit, loosely after the strokes of the written digit.
_RAW_TEMPLATES = np.array(
    [
        [0.0, 2.5, 4.5, 5.5, 5.0, 4.0, 4.0, 5.0, 5.5, 4.5, 2.5, 0.0],  # 0: a loop
        [0.0, 0.0, 0.0, 0.5, 2.0, 6.0, 6.0, 2.0, 0.5, 0.0, 0.0, 0.0],  # 1: one thin stroke
        [5.0, 5.5, 4.5, 3.0, 1.5, 0.5, 0.0, 0.0, 1.0, 3.0, 5.0, 6.0],  # 2: down, along, up
        [3.0, 5.0, 3.0, 1.0, 3.0, 5.0, 3.0, 1.0, 3.0, 5.0, 3.0, 1.0],  # 3: three arcs
        [0.0, 0.0, 4.0, 4.0, 4.0, 4.0, -3.0, -3.0, 4.0, 4.0, 0.0, 0.0],  # 4: a crossing
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0],  # 5: rise, then fall
        [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 1.0, 2.0, 3.0, 3.0, 2.0, 1.0],  # 6: long fall, small loop
        [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # 7: bar, then drop
        [2.0, 4.0, 5.0, 4.0, 2.0, 0.0, 0.0, 2.0, 4.0, 5.0, 4.0, 2.0],  # 8: two loops
        [5.0, 6.0, 5.0, 3.0, 1.0, 0.0, -1.0, -1.5, -2.0, -2.0, -2.0, -2.0],  # 9: loop, then a tail
    ]
)


def templates() -> np.ndarray:
    """The ten class templates, shape ``(10, 12)``, each standardised to mean 0 and standard deviation 1."""
    centred = _RAW_TEMPLATES - _RAW_TEMPLATES.mean(axis=1, keepdims=True)
    return centred / centred.std(axis=1, keepdims=True)


@dataclass(frozen=True)
class MNIST1DRecipe:
    """The generator's parameters (defaults follow the published recipe).

    Attributes:
        length: points per final example.
        padding: range of zeros appended to a template before stretching.
        scale: amplitude factor drawn from ``1 ± scale / 2``.
        max_translation: shifts are drawn from ``0 .. max_translation - 1``.
        corr_noise: scale of the smoothed background noise.
        iid_noise: scale of the i.i.d. noise.
        shear: slope of the random linear trend drawn from ``± shear / 2``.
        smoothing: standard deviation (in points) of the Gaussian that correlates the background noise.
    """

    length: int = 40
    padding: tuple[int, int] = (36, 60)
    scale: float = 0.4
    max_translation: int = 48
    corr_noise: float = 0.25
    iid_noise: float = 0.02
    shear: float = 0.75
    smoothing: float = 2.0


def _resample(x: np.ndarray, n: int) -> np.ndarray:
    return np.interp(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, len(x)), x)


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(x, radius, mode="symmetric")
    return np.convolve(padded, kernel, mode="valid")


def _example(template: np.ndarray, rng: np.random.Generator, recipe: MNIST1DRecipe) -> np.ndarray:
    low, high = recipe.padding
    x = np.concatenate([template + 1e-8, np.zeros(int(rng.integers(low, high + 1)))])
    x = _resample(x, len(template) + high)
    x = x * (1.0 + recipe.scale * (rng.random() - 0.5))
    x = np.roll(x, int(rng.integers(recipe.max_translation)))
    noise = _smooth(recipe.corr_noise * rng.standard_normal(len(x)), recipe.smoothing)
    x = np.where(x == 0.0, noise, x)
    x = x + recipe.iid_noise * rng.standard_normal(len(x))
    x = x - recipe.shear * (rng.random() - 0.5) * np.linspace(-0.5, 0.5, len(x))
    return _resample(x, recipe.length)


def generate_mnist1d(
    n: int, *, seed: int = 0, split: int = 0, recipe: MNIST1DRecipe | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MNIST-1D examples and labels (balanced classes).

    Examples come in blocks of 500 with their own random stream, so the first ``k`` of ``n`` examples do not
    depend on ``n``.

    Args:
        n: number of examples.
        seed: the data seed.
        split: stream id (0 for training, 1 for test data), so the splits never share examples.
        recipe: generator parameters.

    Returns:
        ``(x, y)`` with ``x`` of shape ``(n, recipe.length)`` (float32) and ``y`` of shape ``(n,)`` (int64).

    Example:
        >>> x, y = generate_mnist1d(20, seed=1)
        >>> x.shape, y.dtype.name, sorted(set(y.tolist())) == list(range(10))
        ((20, 40), 'int64', True)
    """
    recipe = recipe or MNIST1DRecipe()
    shapes = templates()
    xs, ys = [], []
    for block in range((n + _BLOCK - 1) // _BLOCK):
        rng = np.random.default_rng([seed, split, block])
        labels = rng.permutation(np.arange(block * _BLOCK, (block + 1) * _BLOCK) % 10)
        xs.append(np.stack([_example(shapes[label], rng, recipe) for label in labels]))
        ys.append(labels)
    if not xs:
        return np.zeros((0, recipe.length), np.float32), np.zeros(0, np.int64)
    x = np.concatenate(xs)[:n].astype(np.float32)
    y = np.concatenate(ys)[:n].astype(np.int64)
    return x, y


@functools.lru_cache(maxsize=4)
def load_mnist1d_arrays(n_train: int = 4000, n_test: int = 1000, seed: int = 0) -> Arrays:
    """MNIST-1D as :class:`Arrays`, shape ``(N, 1, 40)``; default sizes follow the published 5000-example set."""
    x_train, y_train = generate_mnist1d(n_train, seed=seed, split=0)
    x_test, y_test = generate_mnist1d(n_test, seed=seed, split=1)
    return Arrays(x_train[:, None, :], y_train, x_test[:, None, :], y_test, scale=1.0, num_classes=10)
