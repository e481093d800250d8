"""The torch.optim contract, checked once for every registered optimizer configuration."""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from optim_cases import (
    CASES,
    CLASSES,
    IDS,
    OPTIMIZER_WIDE,
    SAFE_GLOBALS,
    OptimCase,
    closure_for,
    make_problem,
)

from kinkgrad.optim import Subgradient


def run(
    case: OptimCase, steps: int, **overrides: object
) -> tuple[list[torch.Tensor], torch.optim.Optimizer, Callable[[], torch.Tensor]]:
    params, loss_fn = make_problem()
    opt = case.make(params, **overrides)
    for _ in range(steps):
        opt.step(closure_for(opt, loss_fn))
    return params, opt, loss_fn


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_dict_round_trip_continues_identically(case: OptimCase) -> None:
    params, opt, loss_fn = run(case, 3)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        saved = torch.load(buffer, weights_only=True)

    twin, loss_twin = make_problem(seed=0)
    with torch.no_grad():
        for t, p in zip(twin, params):
            t.copy_(p)
    restored = case.make(twin, lr=case.kwargs["lr"] * 0.5)  # the saved hyperparameters must win
    restored.load_state_dict(saved)
    assert restored.param_groups[0]["lr"] == case.kwargs["lr"]
    assert restored.param_groups[0] == {**opt.param_groups[0], "params": restored.param_groups[0]["params"]}

    for _ in range(3):
        opt.step(closure_for(opt, loss_fn))
        restored.step(closure_for(restored, loss_twin))
    for a, b in zip(params, twin):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    if isinstance(opt, Subgradient):
        assert isinstance(restored, Subgradient)
        assert restored.best_loss == opt.best_loss and restored.best_step == opt.best_step
        for a, b in zip(opt.best_params(), restored.best_params()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        if opt.average:
            for a, b in zip(opt.averaged_params(), restored.averaged_params()):
                torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_foreach_matches_the_loop_in_float64(case: OptimCase) -> None:
    loop, _, _ = run(case, 5, foreach=False)
    fused, _, _ = run(case, 5, foreach=True)
    for a, b in zip(loop, fused):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_maximize_of_minus_f_mirrors_minimize_of_f(case: OptimCase) -> None:
    down, opt_down, _ = run(case, 5)
    params, loss_fn = make_problem()
    opt_up = case.cls(params, **{**case.mirrored(), "maximize": True})
    for _ in range(5):
        opt_up.step(closure_for(opt_up, loss_fn, sign=-1.0))
    for a, b in zip(down, params):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    if isinstance(opt_down, Subgradient):
        assert isinstance(opt_up, Subgradient) and opt_down.best_loss is not None
        assert opt_up.best_loss == -opt_down.best_loss and opt_up.best_step == opt_down.best_step


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_defaults_param_groups_and_state(case: OptimCase) -> None:
    params, opt, _ = run(case, 2)
    for key, value in case.kwargs.items():
        if key in OPTIMIZER_WIDE:
            assert getattr(opt, key) == value and key not in opt.defaults
        else:
            assert opt.defaults[key] == value and opt.param_groups[0][key] == value
    assert set(opt.param_groups[0]) == set(opt.defaults) | {"params"}
    assert all((p in opt.state) == case.stateful for p in params)
    assert case.cls.__name__ in repr(opt)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_params_without_grad_are_left_alone_and_closure_loss_is_returned(case: OptimCase) -> None:
    params, loss_fn = make_problem()
    frozen = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = case.make([*params, frozen])
    closure = closure_for(opt, loss_fn)
    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.item() > 0
    torch.testing.assert_close(frozen, torch.ones(3, dtype=torch.float64), rtol=0, atol=0)
    assert set(opt.state.get(frozen, {})) <= {"best", "average"}, "only whole-point records may cover it"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_param_groups_take_their_own_lr(case: OptimCase) -> None:
    """Two groups, the second with half the lr, against two separate optimizers (Polyak couples groups)."""
    if case.couples_groups:
        pytest.skip("this configuration's steps depend on all groups together")
    params, loss_fn = make_problem()
    opt = case.cls(
        [{"params": params[:2]}, {"params": params[2:], "lr": case.kwargs["lr"] / 2}], **case.kwargs
    )
    ref, ref_loss = make_problem()
    first = case.make(ref[:2])
    second = case.make(ref[2:], lr=case.kwargs["lr"] / 2)
    for _ in range(3):
        opt.step(closure_for(opt, loss_fn))
        for p in ref:
            p.grad = None
        ref_loss().backward()
        first.step()
        second.step()
    for a, b in zip(params, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# -- bad input, for every class ------------------------------------------------------------------------


@pytest.mark.parametrize("lr", [0.0, -0.1, math.nan, math.inf])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_lr_must_be_positive(cls: type[Any], lr: float) -> None:
    params, _ = make_problem()
    with pytest.raises(
        ValueError, match=rf"{cls.__name__}: lr must be a finite number in \(0, inf\), got lr="
    ):
        cls(params, lr=lr)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_group_override_is_checked_too(cls: type[Any]) -> None:
    params, _ = make_problem()
    opt = cls(params[:2], lr=0.1)
    with pytest.raises(ValueError, match=rf"{cls.__name__} \(param group 1\): lr must be .* got lr=-1\.0"):
        opt.add_param_group({"params": params[2:], "lr": -1.0})


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_integer_parameters_are_refused(case: OptimCase) -> None:
    operator = case.kwargs.get("prox", case.kwargs.get("projection"))
    named = (
        rf"(prox|projection)={operator!r} needs".replace("(", r"\(").replace(")", r"\)")
        if operator
        else "needs"
    )
    named = named.replace(r"\(prox|projection\)", "(prox|projection)")
    with pytest.raises(ValueError, match=rf"{named} real floating-point parameters .* dtype torch\.int64"):
        case.make([torch.zeros(3, dtype=torch.int64)])


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_sparse_gradients_are_refused(cls: type[Any]) -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(ValueError, match="sparse gradients are not supported"):
        cls([p], lr=0.1).step()


def test_the_registry_covers_every_optimizer() -> None:
    assert {c.cls for c in CASES} == set(CLASSES)
    assert copy.deepcopy(CASES) == CASES
