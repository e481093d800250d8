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


@pytest.fixture(params=["fused", "general"])
def relu_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once through each eager relu rule of a policy: the fused one (``_ReluRule``, which
    serves tensors from a size on; here every size) and the general one (``_EagerRule``)."""
    from kinkgrad.ops import _elementwise

    monkeypatch.setattr(_elementwise, "_FUSED_RELU_MIN", 0 if request.param == "fused" else 2**62)
    return str(request.param)


@pytest.fixture(params=["compiled", "python"])
def dispatch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once through each way a policy's mode runs calls: kinkgrad's compiled dispatch (the
    default where it is built) and the mode's Python method alone (kinkgrad built without a C compiler)."""
    from kinkgrad import _policy

    if request.param == "python":
        monkeypatch.setattr(_policy, "_dispatch", None)
    else:
        assert _policy._dispatch is not None, (
            "kinkgrad._dispatch was not built: `make` builds it (C compiler)"
        )
    return str(request.param)
