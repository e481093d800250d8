"""kinkgrad's compiled dispatch (``_dispatch.c``): inside a policy, PyTorch calls without a route run from
C, and every other call reaches the mode's Python method. The policy and certification tests that take
the ``dispatch`` fixture check that both ways give the same results; these check which way each call
takes, and what must never change on the way."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch

import kinkgrad
from kinkgrad import _policy, kink_policy

UP = 2.5


@pytest.fixture(autouse=True)
def _built() -> None:
    assert _policy._dispatch is not None, "kinkgrad._dispatch was not built: `make` builds it (C compiler)"


def python_calls(fn: Callable[[], Any]) -> list[Any]:
    """The functions that reach the mode's Python method while ``fn`` runs."""
    code = _policy._PolicyMode.__torch_function__.__code__
    seen: list[Any] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is code:
            seen.append(frame.f_locals["func"])

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return seen


def test_only_routed_calls_reach_python_under_a_policy() -> None:
    x = torch.tensor([-1.0, 0.0, 0.0, 2.0], requires_grad=True)

    def step() -> None:
        y = torch.relu(x.sin()) * UP
        y.sum().backward()
        assert x.grad is not None

    with kink_policy(default=0.5):
        seen = python_calls(step)
    assert seen and all(id(f) in _policy._ROUTES for f in seen), seen
    expected = UP * torch.cos(x.detach()) * torch.tensor([0.0, 0.5, 0.5, 1.0])  # the kinks of relu: sin x = 0
    assert x.grad is not None and torch.equal(x.grad, expected)


def test_a_strict_policy_sends_each_function_to_python_until_it_is_known_smooth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Certification checks every function once; comparisons (decided along the ray) and nonsmooth
    functions without a rule (refused) reach Python on every call."""
    monkeypatch.setattr(_policy, "_STRICT_PLAIN", {})
    x = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)

    def f(x: torch.Tensor) -> torch.Tensor:
        return (torch.relu(x) * x.exp()).sum() + UP * (x * (x > 0)).sum()

    first = python_calls(lambda: kinkgrad.clarke_grad(f, x))
    second = python_calls(lambda: kinkgrad.clarke_grad(f, x))
    assert torch.Tensor.exp in first and torch.Tensor.exp not in second
    assert torch.Tensor.gt in second and torch.relu in second
    up = torch.ones(2, dtype=torch.float64)
    (g,) = kinkgrad.clarke_grad(f, x, direction=up)  # relu and x > 0 take their right branches at 0
    e = torch.exp(x.detach())
    torch.testing.assert_close(g, e + x.detach() * e + UP, rtol=1e-12, atol=0)
    for _ in range(2):
        with pytest.raises(kinkgrad.UnsupportedKinkError, match="floor"):
            kinkgrad.clarke_grad(lambda x: torch.floor(x).sum(), x)
    assert id(torch.floor) not in _policy._STRICT_PLAIN
    assert all(id(f) not in _policy._STRICT_PLAIN for f in (torch.Tensor.gt, torch.relu))


def test_results_errors_and_keywords_are_pytorchs() -> None:
    x = torch.randn(3, 4)
    with kink_policy(default=0.5):
        inside = [torch.sum(x, dim=0, keepdim=True), x.to(dtype=torch.float64), torch.add(x, 1, alpha=2)]
        out = torch.empty(3, 4)
        torch.mul(x, 3, out=out)
        with pytest.raises(RuntimeError) as caught:
            torch.add(torch.ones(2), torch.ones(3))
    with pytest.raises(RuntimeError) as plain:
        torch.add(torch.ones(2), torch.ones(3))
    assert str(caught.value) == str(plain.value)
    outside = [torch.sum(x, dim=0, keepdim=True), x.to(dtype=torch.float64), torch.add(x, 1, alpha=2)]
    for a, b in zip(inside, outside):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert torch.equal(out, x * 3)


def test_a_strict_policy_in_one_thread_leaves_another_threads_policy_alone() -> None:
    x = torch.tensor([0.5, 1.5], dtype=torch.float64, requires_grad=True)
    refused: list[BaseException] = []

    def certify() -> None:
        try:
            kinkgrad.clarke_grad(lambda x: torch.floor(x).sum() + x.sum(), x)
        except kinkgrad.UnsupportedKinkError as error:
            refused.append(error)

    with kink_policy(default=0.5):
        worker = threading.Thread(target=certify)
        worker.start()
        worker.join()
        assert _policy._state.mode.plain is None
        y = torch.floor(x).sum() + torch.relu(x - 0.5).sum()  # not strict here: floor is PyTorch's
        (g,) = torch.autograd.grad(y * UP, x)
    assert len(refused) == 1
    assert g.tolist() == [UP * 0.5, UP]


def test_compiled_code_traces_the_python_method_and_compiles_once(dispatch: str) -> None:
    compiles: list[int] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: Any) -> Any:
        compiles.append(1)
        return torch._dynamo.lookup_backend("aot_eager")(gm, example_inputs)

    torch._dynamo.reset()
    f = torch.compile(
        lambda x: (torch.relu(x) - torch.relu(-x)).sin().sum() * UP, backend=backend, fullgraph=True
    )
    for _ in range(3):
        x = torch.zeros(4, requires_grad=True)
        with kink_policy(default=0.25):  # a new mode on every entry
            f(x).backward()
        assert x.grad is not None and x.grad.tolist() == [UP * 0.5] * 4  # (0.25 + 0.25) · cos 0
    assert len(compiles) == 1
