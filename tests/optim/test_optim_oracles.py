"""Independent oracles: torch.optim where the recipes coincide, scikit-learn's Lasso, KKT conditions,
and the classical guarantees of the subgradient method."""

from __future__ import annotations

import copy
import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from optim_cases import closure_for, make_problem
from sklearn.linear_model import Lasso
from torch import Tensor

from kinkgrad import prox as P
from kinkgrad.optim import SCHEDULE_NAMES, ProxAdam, ProxSGD, Subgradient

# -- where a recipe is a torch.optim optimizer, it must be that optimizer exactly --------------------------


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"momentum": 0.9},
        {"momentum": 0.9, "dampening": 0.3},
        {"momentum": 0.7, "nesterov": True},
        {"momentum": 0.9, "maximize": True},
    ],
    ids=["plain", "momentum", "dampening", "nesterov", "maximize"],
)
def test_prox_sgd_without_prox_is_torch_sgd(options: dict[str, object], foreach: bool) -> None:
    ours, loss_ours = make_problem()
    theirs, loss_theirs = make_problem()
    a = ProxSGD(ours, lr=0.05, foreach=foreach, **options)  # type: ignore[arg-type]
    b = torch.optim.SGD(theirs, lr=0.05, foreach=foreach, **options)  # type: ignore[arg-type]
    for _ in range(6):
        a.step(closure_for(a, loss_ours))
        b.step(closure_for(b, loss_theirs))
    for x, y in zip(ours, theirs):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("maximize", [False, True])
def test_prox_adam_without_prox_is_torch_adam(maximize: bool, foreach: bool) -> None:
    ours, loss_ours = make_problem()
    theirs, loss_theirs = make_problem()
    a = ProxAdam(ours, lr=0.01, betas=(0.8, 0.99), eps=1e-6, maximize=maximize, foreach=foreach)
    b = torch.optim.Adam(theirs, lr=0.01, betas=(0.8, 0.99), eps=1e-6, maximize=maximize, foreach=foreach)
    for _ in range(6):
        a.step(closure_for(a, loss_ours))
        b.step(closure_for(b, loss_theirs))
    for x, y in zip(ours, theirs):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_constant_subgradient_is_plain_sgd() -> None:
    ours, loss_ours = make_problem()
    theirs, loss_theirs = make_problem()
    a = Subgradient(ours, lr=0.05)
    b = torch.optim.SGD(theirs, lr=0.05)
    for _ in range(6):
        a.step(closure_for(a, loss_ours))
        b.step(closure_for(b, loss_theirs))
    for x, y in zip(ours, theirs):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


# -- proximal methods: exact zeros, at the solution of an exact solver --------------------------------------


def lasso_problem(seed: int = 0) -> tuple[Tensor, Tensor, float]:
    g = torch.Generator().manual_seed(seed)
    n, d = 60, 15
    a = torch.randn(n, d, generator=g, dtype=torch.float64)
    truth = torch.zeros(d, dtype=torch.float64)
    truth[:4] = torch.tensor([2.0, -1.5, 1.0, 0.5], dtype=torch.float64)
    b = a @ truth + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    return a, b, 0.15


def sklearn_lasso(a: Tensor, b: Tensor, lam: float) -> np.ndarray:
    """Coordinate descent for (1/2n)|Ax - b|^2 + lam |x|_1."""
    model = Lasso(alpha=lam, fit_intercept=False, tol=1e-14, max_iter=100_000)
    return model.fit(a.numpy(), b.numpy()).coef_


@pytest.mark.parametrize("foreach", [False, True])
def test_prox_sgd_on_the_lasso_reaches_coordinate_descent_with_exact_zeros(foreach: bool) -> None:
    a, b, lam = lasso_problem()
    n = a.shape[0]
    lipschitz = float(torch.linalg.matrix_norm(a, ord=2)) ** 2 / n
    x = torch.nn.Parameter(torch.zeros(a.shape[1], dtype=torch.float64))
    opt = ProxSGD([x], lr=1.0 / lipschitz, prox=P.L1(lam), foreach=foreach)
    for _ in range(1500):
        opt.zero_grad()
        ((a @ x - b).square().sum() / (2 * n)).backward()
        opt.step()
    reference = sklearn_lasso(a, b, lam)
    np.testing.assert_allclose(x.detach().numpy(), reference, atol=1e-8)
    assert np.array_equal(x.detach().numpy() == 0, reference == 0), "same support, with exact zeros"
    assert int((x == 0).sum()) >= 5


def test_prox_adam_on_the_lasso_has_the_lasso_support() -> None:
    """Fixed points of the scaled prox step are lasso solutions; Adam's iterates get close, exactly sparse."""
    a, b, lam = lasso_problem(seed=1)
    n = a.shape[0]
    x = torch.nn.Parameter(torch.zeros(a.shape[1], dtype=torch.float64))
    opt = ProxAdam([x], lr=0.01, betas=(0.5, 0.9), prox=P.L1(lam))
    for _ in range(3000):
        opt.zero_grad()
        ((a @ x - b).square().sum() / (2 * n)).backward()
        opt.step()
    reference = sklearn_lasso(a, b, lam)
    np.testing.assert_allclose(x.detach().numpy(), reference, atol=2e-3)
    assert np.array_equal(x.detach().numpy() == 0, reference == 0)


def test_subgradient_on_the_lasso_makes_no_exact_zeros() -> None:
    """The contrast of BACKGROUND section 6: the same problem by subgradient steps is never exactly sparse."""
    a, b, lam = lasso_problem()
    n = a.shape[0]
    x = torch.nn.Parameter(torch.zeros(a.shape[1], dtype=torch.float64))
    opt = Subgradient([x], lr=0.05, schedule="sqrt")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = (a @ x - b).square().sum() / (2 * n) + lam * x.abs().sum()
        loss.backward()
        return loss

    for _ in range(500):
        opt.step(closure)  # type: ignore[arg-type]
    assert int((x == 0).sum()) == 0
    assert int((torch.from_numpy(sklearn_lasso(a, b, lam)) == 0).sum()) > 0


def test_prox_sgd_group_lasso_satisfies_kkt() -> None:
    g = torch.Generator().manual_seed(2)
    a = torch.randn(40, 12, generator=g, dtype=torch.float64)
    b = a[:, :3] @ torch.tensor([1.0, -2.0, 1.5], dtype=torch.float64) + 0.1 * torch.randn(
        40, generator=g, dtype=torch.float64
    )
    n, lam = 40, 0.2
    w = torch.nn.Parameter(torch.zeros(4, 3, dtype=torch.float64))  # 4 groups (rows) of 3 features
    lipschitz = float(torch.linalg.matrix_norm(a, ord=2)) ** 2 / n
    opt = ProxSGD([w], lr=1.0 / lipschitz, prox=P.GroupL1(lam, dim=0))

    def smooth() -> Tensor:
        return (a @ w.reshape(-1) - b).square().sum() / (2 * n)

    for _ in range(3000):
        opt.zero_grad()
        smooth().backward()
        opt.step()
    opt.zero_grad()
    smooth().backward()
    grad = w.grad
    assert grad is not None
    zero_rows = 0
    for row in range(4):
        norm = float(w[row].detach().norm())
        if norm == 0.0:  # 0 in grad + lam * unit ball
            zero_rows += 1
            assert float(grad[row].norm()) <= lam + 1e-9
        else:  # grad + lam * w / |w| = 0
            torch.testing.assert_close(grad[row], -lam * w[row].detach() / norm, rtol=0, atol=1e-8)
    assert zero_rows >= 1


# -- subgradient methods: the classical guarantees --------------------------------------------------------


def l1_distance(c: Tensor) -> tuple[torch.nn.Parameter, object]:
    x = torch.nn.Parameter(torch.zeros_like(c))

    def f() -> Tensor:
        return (x - c).abs().sum()  # f* = 0 at x = c; every subgradient has |g| <= sqrt(d)

    return x, f


@pytest.mark.parametrize("schedule", ["diminishing", "sqrt"])
def test_f_best_obeys_the_subgradient_bound(schedule: str) -> None:
    """f_best - f* <= (R^2 + G^2 sum eta_k^2) / (2 sum eta_k), R = |x0 - x*|, G >= |g_k| (Boyd et al.)."""
    c = torch.linspace(-1.0, 2.0, 10, dtype=torch.float64)
    x, f = l1_distance(c)
    opt = Subgradient([x], lr=0.5, schedule=schedule, average=True)
    etas = []
    for k in range(2000):
        opt.step(closure_for(opt, f))  # type: ignore[arg-type]
        etas.append(0.5 / (k + 1) if schedule == "diminishing" else 0.5 / math.sqrt(k + 1))
    radius_sq, g_sq = float(c.square().sum()), float(c.numel())
    bound = (radius_sq + g_sq * sum(e * e for e in etas)) / (2 * sum(etas))
    assert opt.best_loss is not None
    assert opt.best_loss <= bound
    assert opt.best_loss < (0.1 if schedule == "sqrt" else 1.0)
    # The step-weighted average obeys the same bound by convexity, without looking at loss values.
    (average,) = opt.averaged_params()
    assert float((average - c).abs().sum()) <= bound


def test_constant_steps_oscillate_and_the_best_iterate_is_kept() -> None:
    """On |x| the last iterate of a constant step bounces in a band of width lr; best_params() does not."""
    x = torch.nn.Parameter(torch.tensor([0.37], dtype=torch.float64))
    opt = Subgradient([x], lr=0.1)
    losses = []
    for _ in range(50):
        losses.append(float(opt.step(closure_for(opt, lambda: x.abs().sum()))))
    assert opt.best_loss == min(losses) and opt.best_step == int(np.argmin(losses))
    assert any(later > earlier for earlier, later in itertools.pairwise(losses)), "not a descent sequence"
    assert max(losses[10:]) <= 0.1 and min(losses[10:]) > 0, "a band of width lr around 0, never exactly 0"
    (best,) = opt.best_params()
    assert float(best.abs()) == opt.best_loss
    best.add_(1.0)  # a copy: changing it does not touch the record
    assert float(opt.best_params()[0].abs()) == opt.best_loss


def test_polyak_step_is_the_formula_and_fejer_monotone() -> None:
    c = torch.tensor([1.0, -2.0, 0.5, 3.0, -0.25], dtype=torch.float64)
    x, f = l1_distance(c)
    gamma = 1.5
    opt = Subgradient([x], lr=gamma, schedule="polyak", f_min=0.0)
    previous = float((x.detach() - c).square().sum())
    for _ in range(60):
        before = x.detach().clone()
        loss = float(opt.step(closure_for(opt, f)))  # type: ignore[arg-type]
        grad = x.grad
        assert grad is not None
        if loss > 0:  # x_{k+1} = x_k - gamma (f_k - f*) / |g_k|^2 g_k
            expected = before - gamma * loss / float(grad.square().sum()) * grad
            torch.testing.assert_close(x.detach(), expected, rtol=0, atol=1e-15)
        distance = float((x.detach() - c).square().sum())
        # |x_{k+1} - x*|^2 <= |x_k - x*|^2 - gamma (2 - gamma) (f_k - f*)^2 / |g_k|^2
        assert distance <= previous - gamma * (2 - gamma) * loss**2 / float(grad.square().sum()) + 1e-12
        previous = distance
    assert opt.best_loss is not None and opt.best_loss < 1e-8


def test_polyak_uses_one_gradient_norm_across_groups() -> None:
    ours, loss_ours = make_problem()
    ref, loss_ref = make_problem()
    split = Subgradient([{"params": ours[:1]}, {"params": ours[1:]}], lr=1.0, schedule="polyak", f_min=0.0)
    whole = Subgradient(ref, lr=1.0, schedule="polyak", f_min=0.0)
    for _ in range(4):
        split.step(closure_for(split, loss_ours))
        whole.step(closure_for(whole, loss_ref))
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_polyak_uses_f_min() -> None:
    """An f_min below f* makes the steps too long: Polyak with the true f* is far more accurate."""
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    results = {}
    for f_min in (0.0, -1.0):
        x, f = l1_distance(c)
        opt = Subgradient([x], lr=1.0, schedule="polyak", f_min=f_min)
        for _ in range(30):
            opt.step(closure_for(opt, f))  # type: ignore[arg-type]
        assert opt.best_loss is not None
        results[f_min] = opt.best_loss
    assert results[0.0] < 1e-8 < results[-1.0]


def test_projected_subgradient_reaches_the_constrained_optimum() -> None:
    for projection, c, optimum in [
        (P.Box(-1.0, 1.0), [3.0, -2.0], [1.0, -1.0]),
        (P.L2Ball(1.0), [3.0, 0.0], [1.0, 0.0]),
        (P.NonNegative(), [-1.0, 2.0], [0.0, 2.0]),
    ]:
        target = torch.tensor(c, dtype=torch.float64)
        x, f = l1_distance(target)
        opt = Subgradient([x], lr=0.5, schedule="sqrt", projection=projection)
        for _ in range(3000):
            opt.step(closure_for(opt, f))  # type: ignore[arg-type]
            assert float(projection.value(x.detach())) == 0.0, "every iterate is feasible"
        (best,) = opt.best_params()
        torch.testing.assert_close(best, torch.tensor(optimum, dtype=torch.float64), rtol=0, atol=0.02)


def test_a_closure_returning_a_graph_attached_loss_does_not_warn() -> None:
    params, loss_fn = make_problem()
    opt = Subgradient(params, lr=1.0, schedule="polyak", f_min=0.0)

    def closure() -> Tensor:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = opt.step(closure)  # type: ignore[arg-type]
    assert isinstance(loss, Tensor) and loss.requires_grad and opt.best_loss == loss.item()


def test_best_tracking_can_be_switched_off() -> None:
    params, loss_fn = make_problem()
    opt = Subgradient(params, lr=0.1, track_best=False)
    opt.step(closure_for(opt, loss_fn))
    assert opt.best_loss is not None and all("best" not in opt.state[p] for p in params)
    with pytest.raises(RuntimeError, match="track_best=True"):
        opt.best_params()
    with pytest.raises(RuntimeError, match=r"call step\(closure\)"):
        Subgradient(params, lr=0.1).best_params()
    clone = copy.deepcopy(opt)  # torch.optim pickles defaults, state and groups; track_best must follow
    assert isinstance(clone, Subgradient) and clone.track_best is False and clone.best_loss == opt.best_loss


# -- bad input specific to one optimizer ----------------------------------------------------------------


def test_polyak_without_f_min_or_closure() -> None:
    params, _ = make_problem()
    with pytest.raises(ValueError, match=r"schedule='polyak' needs f_min, .* got f_min=None"):
        Subgradient(params, lr=1.0, schedule="polyak")
    opt = Subgradient(params, lr=1.0, schedule="polyak", f_min=0.0)
    with pytest.raises(ValueError, match=r"schedule='polyak' needs the loss .* call step\(closure\)"):
        opt.step()
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, 2\), got lr=2\.5"):
        Subgradient(params, lr=2.5, schedule="polyak", f_min=0.0)
    with pytest.raises(ValueError, match=r"f_min must be a finite number .* got f_min=nan"):
        Subgradient(params, lr=1.0, schedule="polyak", f_min=math.nan)


def test_schedule_typo_lists_the_valid_names() -> None:
    params, _ = make_problem()
    valid = ", ".join(repr(s) for s in SCHEDULE_NAMES)
    message = rf"schedule must be one of {valid}, got schedule='diminshing' \(did you mean 'diminishing'\?\)"
    with pytest.raises(ValueError, match=message):
        Subgradient(params, lr=0.1, schedule="diminshing")
    assert SCHEDULE_NAMES == ("constant", "diminishing", "sqrt", "polyak")


def test_operators_of_the_wrong_kind() -> None:
    params, _ = make_problem()
    with pytest.raises(
        TypeError, match=r"projection must be None or a kinkgrad\.prox\.Projection .* got projection=L1"
    ):
        Subgradient(params, lr=0.1, projection=P.L1(0.1))
    with pytest.raises(TypeError, match=r"prox must be None or a kinkgrad\.prox\.Prox"):
        ProxSGD(params, lr=0.1, prox=lambda x, s: x)
    with pytest.raises(
        ValueError, match=r"ProxSGD: prox=L1\(lam=0\.1\) needs real floating-point parameters"
    ):
        ProxSGD([torch.zeros(2, dtype=torch.int32)], lr=0.1, prox=P.L1(0.1))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda p: ProxSGD(p, lr=0.1, momentum=1.0),
            r"momentum must be a finite number in \[0, 1\), got momentum=1\.0",
        ),
        (lambda p: ProxSGD(p, lr=0.1, momentum=-0.5), r"momentum must be .* got momentum=-0\.5"),
        (lambda p: ProxSGD(p, lr=0.1, dampening=2.0), r"dampening must be a finite number in \[0, 1\]"),
        (lambda p: ProxSGD(p, lr=0.1, nesterov=True), r"nesterov=True needs momentum > 0 and dampening = 0"),
        (
            lambda p: ProxAdam(p, betas=(0.9, 1.0)),
            r"betas\[1\] must be a finite number in \[0, 1\), got betas\[1\]=1\.0",
        ),
        (lambda p: ProxAdam(p, betas=(0.9,)), r"betas must be a pair \(beta1, beta2\)"),  # type: ignore[arg-type]
        (lambda p: ProxAdam(p, eps=-1e-8), r"eps must be a finite number in \[0, inf\), got eps=-1e-08"),
    ],
)
def test_bad_hyperparameters(make: object, match: str) -> None:
    params, _ = make_problem()
    with pytest.raises(ValueError, match=match):
        make(params)  # type: ignore[operator]
