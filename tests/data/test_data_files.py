"""MNIST, CIFAR-10 and SVHN readers, on tiny fake files written in torchvision's on-disk formats."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from kinkgrad.data import DatasetFormatError, DatasetNotFoundError, load_dataset, read_idx

RNG = np.random.default_rng(0)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def fake_mnist(folder: Path, compress: bool = False) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": RNG.integers(0, 256, (12, 28, 28)),
        "train-labels-idx1-ubyte": RNG.integers(0, 10, 12),
        "t10k-images-idx3-ubyte": RNG.integers(0, 256, (5, 28, 28)),
        "t10k-labels-idx1-ubyte": RNG.integers(0, 10, 5),
    }
    for name, array in arrays.items():
        write_idx(folder / name, array, compress)
    return arrays


@pytest.mark.parametrize(("layout", "compress"), [("MNIST/raw", False), ("MNIST/raw", True), ("", False)])
def test_mnist_idx_files(tmp_path: Path, layout: str, compress: bool) -> None:
    arrays = fake_mnist(tmp_path / layout, compress)
    data = load_dataset("mnist", root=str(tmp_path), dtype=torch.float64)
    assert data.x_train.shape == (12, 1, 28, 28) and data.x_test.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(
        (data.x_train[:, 0] * 255).round().numpy(), arrays["train-images-idx3-ubyte"]
    )
    np.testing.assert_array_equal(data.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert len(load_dataset("mnist", root=tmp_path, train_size=3).y_train) == 3


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DatasetFormatError, match="bad magic number"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(DatasetFormatError, match="does not match"):
        read_idx(short)


def fake_cifar(folder: Path) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = RNG.integers(0, 256, (4, 3072)).astype(np.uint8)
        labels = RNG.integers(0, 10, 4).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": b"x", b"data": data, b"labels": labels, b"filenames": [b"a"] * 4}, f)
        batches[name] = (data, labels)
    return batches


def test_cifar10_python_batches(tmp_path: Path) -> None:
    batches = fake_cifar(tmp_path / "cifar-10-batches-py")
    data = load_dataset("cifar10", root=str(tmp_path))
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (4, 3, 32, 32)
    first, labels = batches["data_batch_1"]
    np.testing.assert_array_equal(
        (data.x_train[0] * 255).round().numpy().astype(np.uint8), first[0].reshape(3, 32, 32)
    )
    assert data.y_train[:4].tolist() == labels


def test_cifar10_refuses_pickles_that_run_code(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    fake_cifar(folder)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": Path("x")}, f)
    with pytest.raises(DatasetFormatError, match="unexpected object"):
        load_dataset("cifar10", root=str(tmp_path) + "/")


def test_svhn_mat_files_map_label_10_to_0(tmp_path: Path) -> None:
    from scipy.io import savemat

    x = RNG.integers(0, 256, (32, 32, 3, 6)).astype(np.uint8)
    y = np.array([[10], [1], [2], [3], [10], [9]], dtype=np.uint8)
    savemat(tmp_path / "train_32x32.mat", {"X": x, "y": y})
    savemat(tmp_path / "test_32x32.mat", {"X": x[..., :2], "y": y[:2]})
    data = load_dataset("svhn", root=str(tmp_path))
    assert data.y_train.tolist() == [0, 1, 2, 3, 0, 9]
    assert data.x_train.shape == (6, 3, 32, 32)
    np.testing.assert_array_equal((data.x_train[1, :, 4, 7] * 255).round().numpy(), x[4, 7, :, 1])


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("mnist", "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte"),
        ("cifar10", "data_batch_1, data_batch_2"),
        ("svhn", "train_32x32.mat, test_32x32.mat"),
    ],
)
def test_missing_files_say_what_is_expected_and_where(tmp_path: Path, name: str, files: str) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, root=str(tmp_path))
    message = str(info.value)
    assert f"{name} files not found. Expected {files}" in message
    assert str(tmp_path) in message and "never downloads" in message
    with pytest.raises(DatasetNotFoundError, match=f"{name} is read from files and data.root is not set"):
        load_dataset(name)
