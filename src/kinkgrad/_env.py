"""The environment record written by ``kinkgrad env`` and into every run folder."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

import torch

import kinkgrad
from kinkgrad import _native, _policy


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, str]:
    """Versions, platform and numeric settings, as strings.

    Example:
        >>> info = environment()
        >>> info["kinkgrad"] == kinkgrad.__version__
        True
    """
    built = {True: "yes", False: "no (built without a C compiler)"}
    return {
        "kinkgrad": kinkgrad.__version__,
        "kinkgrad_compiled_passes": built[_native.available()],
        "kinkgrad_compiled_dispatch": built[_policy._dispatch is not None],
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "jax": _version("jax"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "torch_interop_threads": str(torch.get_num_interop_threads()),
        "default_dtype": str(torch.get_default_dtype()),
        "cuda": torch.version.cuda or "none",
        "cuda_available": str(torch.cuda.is_available()),
        "deterministic_algorithms": str(torch.are_deterministic_algorithms_enabled()),
    }
