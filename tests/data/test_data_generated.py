"""Data sets that need no files: digits, MNIST-1D and synthetic MNIST-like images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kinkgrad.data import (
    DATASETS,
    DataConfig,
    generate_mnist1d,
    generate_synthetic_mnist,
    load_dataset,
    mnist1d_templates,
)
from kinkgrad.runner import with_overrides


def nearest_centroid_accuracy(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> float:
    x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    centroids = np.stack([x_train[y_train == c].mean(0) for c in range(10)])
    predicted = ((x_test[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    return float((predicted == y_test).mean())


def test_digits_split_shapes_levels_and_dtype() -> None:
    data = load_dataset("digits", dtype=torch.float64)
    assert (len(data.y_train), len(data.y_test)) == (1437, 360)
    assert data.input_shape == (1, 8, 8) and data.x_train.dtype == torch.float64
    levels = data.x_train * 16
    assert torch.equal(levels, levels.round()) and levels.min() == 0 and levels.max() == 16
    assert data.y_train.dtype == torch.int64 and set(data.y_test.tolist()) == set(range(10))
    other = load_dataset("digits", seed=1)
    assert not torch.equal(other.y_train[:50], data.y_train[:50])


def test_mnist1d_follows_the_recipe() -> None:
    shapes = mnist1d_templates()
    assert shapes.shape == (10, 12)
    assert np.allclose(shapes[:, 0], 0.0) and np.isclose(np.abs(shapes).max(), 1.0)
    assert len({tuple(np.round(t, 6)) for t in shapes}) == 10
    data = load_dataset("mnist1d")
    assert (len(data.y_train), len(data.y_test)) == (4000, 1000) and data.input_shape == (1, 40)
    assert np.bincount(data.y_train.numpy()).tolist() == [400] * 10
    x, _ = generate_mnist1d(600, seed=3)
    again, _ = generate_mnist1d(100, seed=3)
    np.testing.assert_array_equal(x[:100], again)  # a prefix does not depend on how many were made
    assert not np.array_equal(x[:100], generate_mnist1d(100, seed=4)[0])
    accuracy = nearest_centroid_accuracy(
        data.x_train.numpy(), data.y_train.numpy(), data.x_test.numpy(), data.y_test.numpy()
    )
    assert 0.13 < accuracy < 0.6  # learnable, but not linearly easy


def test_synthetic_mnist_is_sparse_quantised_and_learnable() -> None:
    data = load_dataset("synthetic-mnist", train_size=1000, test_size=500, dtype=torch.float64)
    x = data.x_train
    assert data.input_shape == (1, 28, 28)
    zeros = (x == 0).double().mean().item()
    assert 0.77 < zeros < 0.83
    per_image = (x == 0).double().mean(dim=(1, 2, 3))
    assert per_image.min() > 0.7 and per_image.max() < 0.9
    levels = x * 255
    assert torch.equal(levels, levels.round()) and x.max() == 1.0
    assert len(torch.unique(levels)) > 200
    accuracy = nearest_centroid_accuracy(
        data.x_train.numpy(), data.y_train.numpy(), data.x_test.numpy(), data.y_test.numpy()
    )
    assert accuracy > 0.6
    raw, _ = generate_synthetic_mnist(700, seed=0)
    np.testing.assert_array_equal(raw[:600], generate_synthetic_mnist(600, seed=0)[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_argument_rounds_levels_once(dtype: torch.dtype) -> None:
    data = load_dataset("synthetic-mnist", train_size=20, test_size=10, dtype=dtype)
    exact = load_dataset("synthetic-mnist", train_size=20, test_size=10, dtype=torch.float64)
    assert data.x_train.dtype == dtype
    assert torch.equal(data.x_train, exact.x_train.to(dtype))
    assert torch.equal((data.x_train == 0), (exact.x_train == 0))


def test_sizes_and_errors() -> None:
    assert len(load_dataset("digits", train_size=10, test_size=5).y_test) == 5
    with pytest.raises(ValueError, match="train_size=5000 but digits has 1437"):
        load_dataset("digits", train_size=5000)
    with pytest.raises(ValueError, match="unknown data set 'mnist2'; available: synthetic-mnist"):
        load_dataset("mnist2")
    with pytest.raises(ValueError, match="floating dtype"):
        load_dataset("digits", dtype=torch.int64)
    assert set(DATASETS) == {"synthetic-mnist", "mnist1d", "digits", "mnist", "cifar10", "svhn"}


def test_data_config_is_a_settings_group() -> None:
    config = with_overrides(DataConfig(), {"name": "mnist1d", "train_size": "50", "root": "none"})
    assert config == DataConfig(name="mnist1d", train_size=50)
    assert config.load(torch.float16).x_train.shape == (50, 1, 40)
    with pytest.raises(ValueError, match="'imagenet' is not one of: synthetic-mnist, mnist1d, digits"):
        with_overrides(DataConfig(), {"name": "imagenet"})
