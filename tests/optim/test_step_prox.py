"""The fused gradient step + prox of ``_rules.step_prox_`` (slice by slice on CPU) against the plain path.

The plain path is a whole-tensor ``add_`` followed by the operator's ``prox_``; the oracle is the closed
form of soft thresholding written out here with elementwise arithmetic. Slices are made tiny (by
patching ``SLICE_BYTES``) so that every parameter below is cut into many slices, the last one partial.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from optim_cases import closure_for, make_problem
from torch import Tensor

from kinkgrad import prox as P
from kinkgrad.optim import ProxSGD, Subgradient, _rules

OPERATORS = {
    "l1": P.L1(0.3),
    "elastic": P.ElasticNet(0.3, 0.5),
    "l0": P.L0(0.2),
    "nonneg": P.NonNegative(),
    "box": P.Box(-0.4, 0.7),
    "box-0d": P.Box(torch.tensor(-0.4), 0.7),
    "box-tensor": P.Box(torch.full((1,), -0.4), 0.7),  # not elementwise: whole-tensor path
    "group": P.GroupL1(0.3, dim=0),  # not elementwise: whole-tensor path
    "ball": P.L2Ball(2.0),
}


def tensors(dtype: torch.dtype, seed: int = 0) -> tuple[list[Tensor], list[Tensor]]:
    """Parameters of several sizes and layouts, with exact zeros, and their directions."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(7, 13), (200,), (3,), (5, 13)]
    params = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in shapes]
    params[0][0, :5] = 0.0
    params.append(torch.randn(13, 9, generator=g, dtype=torch.float64).to(dtype).T)  # not contiguous
    directions = [torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype) for p in params]
    directions[0][0, :3] = 0.0  # zeros that stay zeros under L1
    directions[3] = directions[3].T.contiguous().T  # a strided direction for a contiguous parameter
    return params, directions


def plain(
    params: list[Tensor], directions: list[Tensor], alpha: float, op: P.Prox, step: float
) -> list[Tensor]:
    out = [p.clone() for p in params]
    for p, d in zip(out, directions):
        p.add_(d, alpha=alpha)
        op.prox_(p, step)
    return out


@pytest.mark.parametrize("slice_bytes", [64, 40, 8, 1 << 21])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", list(OPERATORS))
@pytest.mark.parametrize("foreach", [False, True])
def test_slices_equal_the_whole_tensor_path(
    monkeypatch: pytest.MonkeyPatch, name: str, dtype: torch.dtype, slice_bytes: int, foreach: bool
) -> None:
    monkeypatch.setattr(_rules, "SLICE_BYTES", slice_bytes)
    op = OPERATORS[name]
    params, directions = tensors(dtype)
    expected = plain(params, directions, -0.25, op, 0.5)
    ptrs = [p.data_ptr() for p in params]
    _rules.step_prox_(params, directions, -0.25, op, 0.5, foreach)
    for p, e, ptr in zip(params, expected, ptrs):
        assert p.data_ptr() == ptr  # in place
        torch.testing.assert_close(p, e, rtol=0, atol=0)


def test_l1_slices_match_the_soft_threshold_formula_with_exact_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_rules, "SLICE_BYTES", 64)
    params, directions = tensors(torch.float64, seed=3)
    lam, lr = 0.3, 0.5
    ys = [p - lr * d for p, d in zip(params, directions)]
    want = [torch.sign(y) * torch.clamp(y.abs() - lam * lr, min=0.0) for y in ys]
    _rules.step_prox_(params, directions, -lr, P.L1(lam), lr, foreach=True)
    n_zeros = 0
    for p, w, y in zip(params, want, ys):
        torch.testing.assert_close(p, w, rtol=1e-15, atol=1e-15)
        shrunk = y.abs() <= lam * lr
        assert bool((p[shrunk] == 0.0).all()) and bool((p[~shrunk] != 0.0).all())
        n_zeros += int(shrunk.sum())
    assert n_zeros > 20
    assert bool((params[0][0, :3] == 0.0).all())  # zero stayed exactly zero


def test_without_a_prox_it_is_the_gradient_step() -> None:
    params, directions = tensors(torch.float64)
    expected = [p + 0.25 * d for p, d in zip(params, directions)]
    _rules.step_prox_(params, directions, 0.25, None, 0.25, foreach=False)
    for p, e in zip(params, expected):
        torch.testing.assert_close(p, e, rtol=0, atol=0)


def run(make: Callable[[list[Tensor]], torch.optim.Optimizer], steps: int = 6) -> list[Tensor]:
    params, loss_fn = make_problem()
    opt = make(params)
    for _ in range(steps):
        opt.step(closure_for(opt, loss_fn))
    return [p.detach().clone() for p in params]


MAKERS: dict[str, Callable[[list[Tensor]], torch.optim.Optimizer]] = {
    "proxsgd-l1": lambda ps: ProxSGD(ps, lr=0.05, prox=P.L1(0.1)),
    "proxsgd-l1-foreach": lambda ps: ProxSGD(ps, lr=0.05, prox=P.L1(0.1), foreach=True),
    "proxsgd-nesterov-elastic": lambda ps: ProxSGD(
        ps, lr=0.05, momentum=0.5, nesterov=True, prox=P.ElasticNet(0.05, 0.1), foreach=True
    ),
    "proxsgd-momentum-l0-maximize": lambda ps: ProxSGD(
        ps, lr=0.05, momentum=0.9, prox=P.L0(1e-3), maximize=True
    ),
    "subgradient-sqrt-box": lambda ps: Subgradient(ps, lr=0.2, schedule="sqrt", projection=P.Box(-0.5, 0.5)),
    "subgradient-polyak-nonneg": lambda ps: Subgradient(
        ps, lr=1.0, schedule="polyak", f_min=0.0, projection=P.NonNegative(), foreach=True
    ),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_optimizers_take_the_same_steps_sliced_or_not(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    whole = run(MAKERS[name])
    monkeypatch.setattr(_rules, "SLICE_BYTES", 16)  # two float64 coordinates per slice
    sliced = run(MAKERS[name])
    for a, b in zip(whole, sliced):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
