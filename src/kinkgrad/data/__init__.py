"""Data sets that need no network: generated, bundled with scikit-learn, or read from the user's files.

* ``synthetic-mnist``: 28×28 images with MNIST's sparsity (about 80% exact zeros) and 8-bit levels.
* ``mnist1d``: MNIST-1D, generated locally by kinkgrad's implementation of the published recipe.
* ``digits``: scikit-learn's bundled 8×8 digits.
* ``mnist``, ``cifar10``, ``svhn``: read from torchvision's on-disk format under a folder you give
  (``--set data.root=...``); kinkgrad never downloads anything.

Example:
    >>> from kinkgrad.data import load_dataset
    >>> data = load_dataset("mnist1d", train_size=500, test_size=100)
    >>> data
    Dataset(name='mnist1d', train=500, test=100, input_shape=(1, 40), dtype=torch.float32, num_classes=10)
"""

from kinkgrad.data._arrays import DatasetFormatError, DatasetNotFoundError
from kinkgrad.data._cifar10 import read_batch as read_cifar10_batch
from kinkgrad.data._dataset import DATASETS, DataConfig, Dataset, DatasetName, load_dataset
from kinkgrad.data._mnist import read_idx
from kinkgrad.data._mnist1d import MNIST1DRecipe, generate_mnist1d
from kinkgrad.data._mnist1d import templates as mnist1d_templates
from kinkgrad.data._svhn import read_mat as read_svhn_mat
from kinkgrad.data._synthetic import generate_synthetic_mnist

__all__ = [
    "DATASETS",
    "DataConfig",
    "Dataset",
    "DatasetFormatError",
    "DatasetName",
    "DatasetNotFoundError",
    "MNIST1DRecipe",
    "generate_mnist1d",
    "generate_synthetic_mnist",
    "load_dataset",
    "mnist1d_templates",
    "read_cifar10_batch",
    "read_idx",
    "read_svhn_mat",
]
