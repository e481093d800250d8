import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic_seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(params=["compiled", "pytorch"])
def passes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once with kinkgrad's compiled passes (``kinkgrad._native``) and once with the PyTorch
    operators it falls back to without them."""
    from kinkgrad import _native

    if request.param == "pytorch":
        monkeypatch.setattr(_native, "_kernels", None)
    else:
        assert _native.available(), "kinkgrad._kernels was not built: `make` builds it with a C compiler"
    return str(request.param)
