"""kinkgrad.prox: closed forms, an independent numeric solver, kinks, in-place twins and bad input.

The oracle minimises ``value(z) + sum (z - x)^2 / (2 s)`` in float64 with scipy, using the operator only
through ``value`` (for the penalties) or the set's constraint (for the projections), never its prox.
"""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import optimize
from torch import Tensor

from kinkgrad import prox as P
from kinkgrad.prox import _groups

# -- the registry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxCase:
    """One operator with a sample input shape and what the oracle needs to know about it."""

    id: str
    op: P.Prox
    shape: tuple[int, ...]
    kind: str  # "separable", "l0", "group" (convex, non-separable), "ball", "box"


CASES = [
    ProxCase("l1", P.L1(0.7), (3, 4), "separable"),
    ProxCase("elastic", P.ElasticNet(0.4, 1.5), (3, 4), "separable"),
    ProxCase("l0", P.L0(0.3), (3, 4), "l0"),
    ProxCase("group-rows", P.GroupL1(0.8, dim=0), (3, 4), "group"),
    ProxCase("group-cols", P.GroupL1(0.8, dim=1), (3, 4), "group"),
    ProxCase("group-filters", P.GroupL1(0.6, dim=0), (2, 2, 2, 2), "group"),
    ProxCase("group-all", P.GroupL1(1.2, dim=None), (3, 4), "group"),
    ProxCase("nonneg", P.NonNegative(), (3, 4), "box"),
    ProxCase("box", P.Box(-0.5, 0.25), (3, 4), "box"),
    ProxCase("box-tensor", P.Box(torch.linspace(-1, 0, 4), torch.linspace(0, 1, 4)), (3, 4), "box"),
    ProxCase("ball", P.L2Ball(1.0), (3, 4), "ball"),
    ProxCase("ball-rows", P.L2Ball(0.7, dim=0), (3, 4), "ball"),
]
IDS = [c.id for c in CASES]


def sample(case: ProxCase, seed: int = 0, dtype: torch.dtype = torch.float64) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (2.0 * torch.randn(case.shape, generator=g, dtype=torch.float64)).to(dtype)


def tensor_step(shape: tuple[int, ...], seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 1.8 * torch.rand(shape, generator=g, dtype=torch.float64)


# -- the independent oracle ----------------------------------------------------------------------------


def _groups_of(case: ProxCase, x: np.ndarray) -> list[np.ndarray]:
    """Flat index arrays of the groups (independent of kinkgrad's implementation)."""
    dim = case.op.dim  # type: ignore[attr-defined]
    idx = np.arange(x.size).reshape(x.shape)
    if dim is None:
        return [idx.ravel()]
    dims = (dim,) if isinstance(dim, int) else dim
    moved = np.moveaxis(idx, dims, tuple(range(len(dims))))
    lead = int(np.prod([x.shape[d] for d in dims]))
    return list(moved.reshape(lead, -1))


def oracle(case: ProxCase, x: Tensor, step: float | Tensor) -> np.ndarray:
    """argmin_z value(z) + sum (z - x)^2 / (2 s), solved with scipy in float64."""
    xs = x.double().numpy().ravel()
    s = np.broadcast_to(np.asarray(step.double().numpy() if isinstance(step, Tensor) else step), x.shape)
    s = s.ravel()
    op = case.op

    def h(v: np.ndarray) -> float:
        return float(op.value(torch.from_numpy(np.asarray(v, dtype=np.float64).reshape(-1))))

    z = np.empty_like(xs)
    if case.kind in ("separable", "l0"):
        for i, (xi, si) in enumerate(zip(xs, s)):

            def phi(v: float, xi: float = xi, si: float = si) -> float:
                return h(np.array([v])) + (v - xi) ** 2 / (2 * si)

            if case.kind == "separable":
                res = optimize.minimize_scalar(
                    phi,
                    bounds=(xi - abs(xi) - 1, xi + abs(xi) + 1),
                    method="bounded",
                    options={"xatol": 1e-12},
                )
                z[i] = res.x
            else:  # nonconvex and discontinuous at 0: a grid plus the point 0, then Brent near the best
                grid = np.concatenate([np.linspace(xi - 3, xi + 3, 601), [0.0]])
                best = float(grid[np.argmin([phi(v) for v in grid])])
                if best != 0.0:
                    lo, hi = sorted((best - 0.01, best + 0.01))
                    if lo < 0.0 < hi:  # keep the bracket on one side of the jump at 0
                        lo, hi = (1e-15, hi) if best > 0 else (lo, -1e-15)
                    res = optimize.minimize_scalar(
                        phi, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}
                    )
                    best = float(res.x) if phi(res.x) <= phi(best) else best
                z[i] = best
        return z.reshape(x.shape)
    if case.kind == "box":
        lows = np.broadcast_to(np.asarray(getattr(op, "lo", 0.0)), x.shape).ravel()
        highs = np.broadcast_to(np.asarray(getattr(op, "hi", np.inf)), x.shape).ravel()
        res = optimize.minimize(
            lambda v: float(np.sum((v - xs) ** 2 / (2 * s))),
            np.clip(np.zeros_like(xs), lows, highs),
            jac=lambda v: (v - xs) / s,
            bounds=list(zip(lows, highs)),
            method="L-BFGS-B",
            options={"ftol": 1e-15, "gtol": 1e-12},
        )
        return res.x.reshape(x.shape)
    for group in _groups_of(case, xs.reshape(x.shape)):
        xg, sg = xs[group], s[group]
        if case.kind == "group":  # epigraph form: min lam * tau + q(z) s.t. tau^2 >= |z|^2, tau >= 0
            lam = op.lam  # type: ignore[attr-defined]
            n = xg.size
            res = optimize.minimize(
                lambda v, xg=xg, sg=sg, lam=lam: lam * v[-1] + float(np.sum((v[:-1] - xg) ** 2 / (2 * sg))),
                np.concatenate([xg, [np.linalg.norm(xg) + 1.0]]),
                method="SLSQP",
                constraints=[{"type": "ineq", "fun": lambda v: v[-1] ** 2 - np.sum(v[:-1] ** 2)}],
                bounds=[(None, None)] * n + [(0.0, None)],
                options={"ftol": 1e-15, "maxiter": 1000},
            )
            z[group] = res.x[:-1]
        else:  # ball: min q(z) s.t. |z|^2 <= r^2
            r = op.radius  # type: ignore[attr-defined]
            res = optimize.minimize(
                lambda v, xg=xg, sg=sg: float(np.sum((v - xg) ** 2 / (2 * sg))),
                np.zeros_like(xg),
                jac=lambda v, xg=xg, sg=sg: (v - xg) / sg,
                method="SLSQP",
                constraints=[{"type": "ineq", "fun": lambda v, r=r: r**2 - np.sum(v**2)}],
                options={"ftol": 1e-15, "maxiter": 1000},
            )
            z[group] = res.x
    return z.reshape(x.shape)


def objective(op: P.Prox, z: Tensor, x: Tensor, step: float | Tensor) -> float:
    return float(op.value(z) + ((z - x) ** 2 / (2 * torch.as_tensor(step, dtype=x.dtype))).sum())


# -- the registry contract ------------------------------------------------------------------------------


@pytest.mark.parametrize("step_kind", ["scalar", "tensor"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_prox_matches_numeric_solver(case: ProxCase, step_kind: str) -> None:
    x = sample(case)
    step: float | Tensor = 0.8 if step_kind == "scalar" else tensor_step(case.shape)
    ours = case.op.prox(x, step)
    ref = torch.from_numpy(oracle(case, x, step))
    # We must be at least as good as the generic solver, and (strong convexity) close to it.
    assert objective(case.op, ours, x, step) <= objective(case.op, ref, x, step) + 1e-9
    atol = 1e-6 if case.kind == "l0" else 2e-6
    torch.testing.assert_close(ours, ref, rtol=0, atol=atol)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_in_place_twin_matches_and_returns_its_input(case: ProxCase) -> None:
    for step in (0.8, tensor_step(case.shape), torch.tensor(0.8, dtype=torch.float64)):
        x = sample(case)
        expected = case.op.prox(x, step)
        assert torch.equal(x, sample(case)), "prox must not modify its input"
        y = x.clone()
        out = case.op.prox_(y, step)
        assert out is y
        torch.testing.assert_close(y, expected, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_constant_tensor_step_equals_scalar_step(case: ProxCase) -> None:
    x = sample(case, seed=3)
    scalar = case.op.prox(x, 0.6)
    torch.testing.assert_close(case.op.prox(x, torch.full_like(x, 0.6)), scalar, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        case.op.prox(x, torch.tensor(0.6, dtype=torch.float64)), scalar, rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_stays_float32(case: ProxCase) -> None:
    x = sample(case, dtype=torch.float32)
    for step in (0.8, tensor_step(case.shape).float()):
        z = case.op.prox(x, step)
        assert z.dtype == torch.float32 and z.shape == x.shape
        torch.testing.assert_close(z, case.op.prox(x.double(), step).float(), rtol=1e-5, atol=1e-5)
    assert case.op.value(x).dtype == torch.float32


@pytest.mark.parametrize("case", [c for c in CASES if c.kind in ("separable", "group", "l0")], ids=str)
def test_zero_step_is_the_identity(case: ProxCase) -> None:
    x = sample(case)
    torch.testing.assert_close(case.op.prox(x, 0.0), x, rtol=0, atol=0)


@pytest.mark.parametrize("case", [c for c in CASES if c.kind in ("box", "ball")], ids=str)
def test_projections_land_in_the_set_and_fix_its_points(case: ProxCase) -> None:
    x = sample(case)
    for step in (0.8, tensor_step(case.shape)):
        z = case.op.prox(x, step)
        assert float(case.op.value(z)) == 0.0
        torch.testing.assert_close(case.op.prox(z, step), z, rtol=0, atol=1e-12)
    assert isinstance(case.op, P.Projection)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_operators_pickle_copy_and_compare(case: ProxCase) -> None:
    for clone in (pickle.loads(pickle.dumps(case.op)), copy.deepcopy(case.op)):
        assert clone == case.op
        x = sample(case)
        torch.testing.assert_close(clone.prox(x, 0.5), case.op.prox(x, 0.5), rtol=0, atol=0)
    assert type(case.op).__name__ in repr(case.op)


# Operators whose prox (scalar step) acts coordinate by coordinate by one rule; the optimizers rely on
# ``elementwise`` to apply them slice by slice. Listed here, not read from the operators.
ELEMENTWISE = {"l1", "elastic", "l0", "nonneg", "box"}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_elementwise_flag_and_the_prox_of_a_slice(case: ProxCase) -> None:
    assert case.op.elementwise == (case.id in ELEMENTWISE)
    if not case.op.elementwise:
        return
    # the claim: the prox of any slice is that slice of the prox (of a tensor of another shape, too)
    x = 2.0 * torch.randn(7, 11, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x[0, :3] = 0.0
    whole = case.op.prox(x, 0.7)
    flat = x.reshape(-1)
    for piece, start in ((flat[5:40], 5), (flat[:1], 0), (flat[40:], 40)):
        z = piece.clone()
        case.op.prox_(z, 0.7)
        torch.testing.assert_close(z, whole.reshape(-1)[start : start + piece.numel()], rtol=0, atol=0)
    # and it does depend on nothing but the coordinate: a permuted input gives the permuted output
    perm = torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(case.op.prox(flat[perm], 0.7), whole.reshape(-1)[perm], rtol=0, atol=0)


def test_box_with_a_zero_dim_tensor_bound_is_elementwise() -> None:
    assert P.Box(torch.tensor(-1.0), 2.0).elementwise
    assert not P.Box(torch.zeros(3), 1.0).elementwise


def test_box_with_one_tensor_bound_and_one_number() -> None:
    x = torch.tensor([[-2.0, 0.5, 3.0], [0.2, -0.1, 1.5]], dtype=torch.float64)
    lo = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    want = torch.tensor([[-1.0, 0.5, 2.0], [0.2, 0.0, 1.5]], dtype=torch.float64)
    for box, expected in ((P.Box(lo, 2.0), want), (P.Box(-0.5, lo + 1.0), x.clamp(-0.5).minimum(lo + 1.0))):
        torch.testing.assert_close(box.prox(x, 1.0), expected, rtol=0, atol=0)
        y = x.clone()
        box.prox_(y, 0.3)
        torch.testing.assert_close(y, expected, rtol=0, atol=0)
    assert P.Box(torch.tensor(0.0), 1.0).prox(torch.tensor([-1.0, 2.0]), 1.0).tolist() == [0.0, 1.0]


# -- closed forms and kinks, value by value -----------------------------------------------------------


def test_l1_soft_threshold_with_kinks() -> None:
    t = 0.5 * 2.0  # lam * step
    x = torch.tensor([-3.0, -t, -0.25, 0.0, 0.25, t, math.nextafter(t, 2), 3.0], dtype=torch.float64)
    z = P.L1(0.5).prox(x, 2.0)
    expected = torch.tensor([-2.0, 0, 0, 0, 0, 0, math.nextafter(t, 2) - t, 2.0], dtype=torch.float64)
    torch.testing.assert_close(z, expected, rtol=0, atol=0)
    assert int((z == 0).sum()) == 5, "x exactly at the threshold is an exact zero"
    assert float(P.L1(0.5).value(x)) == pytest.approx(0.5 * float(x.abs().sum()))


def test_l1_per_coordinate_step() -> None:
    x = torch.tensor([1.0, 1.0, -1.0, 2.0], dtype=torch.float64)
    s = torch.tensor([0.5, 2.0, 1.0, 1.0], dtype=torch.float64)
    z = P.L1(1.0).prox(x, s)
    torch.testing.assert_close(z, torch.tensor([0.5, 0.0, 0.0, 1.0], dtype=torch.float64), rtol=0, atol=0)


def test_elastic_net_closed_form() -> None:
    x = torch.tensor([-3.0, -1.0, 0.5, 1.0, 4.0], dtype=torch.float64)
    z = P.ElasticNet(1.0, 2.0).prox(x, 0.5)  # soft(x, 0.5) / (1 + 1)
    torch.testing.assert_close(z, torch.tensor([-1.25, -0.25, 0.0, 0.25, 1.75], dtype=torch.float64))
    assert float(P.ElasticNet(1.0, 2.0).value(x)) == pytest.approx(9.5 + 27.25)
    torch.testing.assert_close(P.ElasticNet(0.7, 0.0).prox(x, 0.5), P.L1(0.7).prox(x, 0.5), rtol=0, atol=0)


def test_l0_hard_threshold_tie_goes_to_zero() -> None:
    lam, step = 0.5, 1.0
    tau = math.sqrt(2 * lam * step)  # = 1
    x = torch.tensor([-2.0, -tau, 0.3, tau, math.nextafter(tau, 2), 2.0], dtype=torch.float64)
    z = P.L0(lam).prox(x, step)
    expected = torch.tensor([-2.0, 0.0, 0.0, 0.0, math.nextafter(tau, 2), 2.0], dtype=torch.float64)
    torch.testing.assert_close(z, expected, rtol=0, atol=0)
    assert float(P.L0(lam).value(x)) == 3.0  # 6 nonzeros
    s = torch.tensor([0.5, 2.0], dtype=torch.float64)  # thresholds sqrt(0.5) and sqrt(2)
    torch.testing.assert_close(
        P.L0(lam).prox(torch.tensor([0.8, 1.2], dtype=torch.float64), s)[1],
        torch.tensor(0.0, dtype=torch.float64),
    )


def test_group_l1_rows_filters_and_kinks() -> None:
    w = torch.tensor([[3.0, 4.0], [0.6, 0.8], [0.0, 0.0]], dtype=torch.float64)  # row norms 5, 1, 0
    z = P.GroupL1(1.0, dim=0).prox(w, 1.0)  # threshold 1: the second row sits exactly on the kink
    expected = torch.tensor([[2.4, 3.2], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(z, expected, rtol=0, atol=1e-15)
    assert float(P.GroupL1(1.0, dim=0).value(w)) == pytest.approx(6.0)
    assert float(P.GroupL1(1.0, dim=1).value(w)) == pytest.approx(math.hypot(3, 0.6) + math.hypot(4, 0.8))
    conv = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    norms = conv.flatten(1).norm(dim=1)
    lam = float(norms.median())
    z = P.GroupL1(lam, dim=0).prox(conv, 1.0)
    for f in range(4):
        if norms[f] <= lam:
            assert bool((z[f] == 0).all())
        else:
            torch.testing.assert_close(z[f], conv[f] * (1 - lam / norms[f]))
    bias = torch.tensor([2.0, -0.5, 1.0], dtype=torch.float64)  # 1-D, dim=0: one group per entry = L1
    torch.testing.assert_close(P.GroupL1(0.75).prox(bias, 1.0), P.L1(0.75).prox(bias, 1.0))
    scalar = torch.tensor(-2.0, dtype=torch.float64)
    torch.testing.assert_close(P.GroupL1(0.5).prox(scalar, 1.0), torch.tensor(-1.5, dtype=torch.float64))


def test_group_l1_tensor_step_satisfies_kkt_even_badly_scaled() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 8, generator=g, dtype=torch.float64)
    s = 10.0 ** (6 * torch.rand(6, 8, generator=g, dtype=torch.float64) - 4)  # 1e-4 .. 1e2
    lam = 0.3
    z = P.GroupL1(lam, dim=0).prox(x, s)
    for row in range(6):
        zn = float(z[row].norm())
        if zn == 0.0:
            assert float((x[row] / s[row]).norm()) <= lam * (1 + 1e-12)
        else:  # (x - z) / s = lam * z / |z|
            torch.testing.assert_close((x[row] - z[row]) / s[row], lam * z[row] / zn, rtol=1e-9, atol=1e-9)


def test_l2_ball_and_weighted_projection_kkt() -> None:
    x = torch.tensor([3.0, 4.0], dtype=torch.float64)
    torch.testing.assert_close(P.L2Ball(5.0).prox(x, 1.0), x, rtol=0, atol=0)  # on the sphere: unchanged
    torch.testing.assert_close(P.L2Ball(1.0).prox(x, 3.0), x / 5)
    torch.testing.assert_close(P.L2Ball(0.0).prox(x, 1.0), torch.zeros(2, dtype=torch.float64))
    s = torch.tensor([0.1, 10.0], dtype=torch.float64)
    z = P.L2Ball(1.0).prox(x, s)
    assert float(z.norm()) == pytest.approx(1.0, abs=1e-12)
    mu = (x / z - 1) / s  # z = x / (1 + mu s) with one mu >= 0
    assert float(mu[0]) == pytest.approx(float(mu[1]), rel=1e-9) and float(mu[0]) > 0
    assert float(P.L2Ball(1.0).value(torch.tensor([0.6, 0.8]))) == 0.0
    assert float(P.L2Ball(1.0).value(torch.tensor([0.6, 0.81]))) == math.inf


def test_box_and_nonnegative_closed_forms() -> None:
    x = torch.tensor([-2.0, -0.5, 0.0, 0.25, 1.0], dtype=torch.float64)
    torch.testing.assert_close(
        P.NonNegative().prox(x, 1.0), torch.tensor([0.0, 0.0, 0.0, 0.25, 1.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        P.Box(-0.5, 0.25).prox(x, 9.0), torch.tensor([-0.5, -0.5, 0.0, 0.25, 0.25], dtype=torch.float64)
    )
    assert float(P.Box(-0.5, 0.25).value(torch.tensor([-0.5, 0.25]))) == 0.0
    assert float(P.NonNegative().value(x)) == math.inf
    assert P.Box(0.0, 1.0) == P.Box(0.0, 1.0) and P.Box(0.0, 1.0) != P.Box(0.0, 2.0)
    lo, hi = torch.tensor([0.0, -1.0]), torch.tensor([1.0, 0.0])
    torch.testing.assert_close(P.Box(lo, hi).prox(torch.tensor([2.0, 2.0]), 1.0), torch.tensor([1.0, 0.0]))


# -- identities ------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    x=arrays(np.float64, (3, 4), elements=st.floats(-5, 5)),
    lam=st.floats(0.0, 3.0),
    dim=st.sampled_from([0, 1, None, (0, 1)]),
)
def test_moreau_decomposition(x: np.ndarray, lam: float, dim: int | tuple[int, ...] | None) -> None:
    """prox of a norm + projection onto the dual-norm ball = identity (step 1), for L1 and group norms."""
    xt = torch.from_numpy(x)
    torch.testing.assert_close(P.L1(lam).prox(xt, 1.0) + P.Box(-lam, lam).prox(xt, 1.0), xt)
    torch.testing.assert_close(
        P.GroupL1(lam, dim=dim).prox(xt, 1.0) + P.L2Ball(lam, dim=dim).prox(xt, 1.0), xt
    )


@settings(max_examples=40, deadline=None)
@given(
    x=arrays(np.float64, (5,), elements=st.floats(-5, 5)), lam=st.floats(0.0, 2.0), step=st.floats(0.01, 3.0)
)
def test_prox_is_firmly_nonexpansive(x: np.ndarray, lam: float, step: float) -> None:
    """|prox(x) - prox(y)|^2 <= <prox(x) - prox(y), x - y> for convex h."""
    xt = torch.from_numpy(x)
    yt = torch.flip(xt, (0,)) * 0.7 + 0.1
    for op in (
        P.L1(lam),
        P.ElasticNet(lam, 1.0),
        P.GroupL1(lam, dim=None),
        P.L2Ball(lam + 0.1),
        P.Box(-lam, lam),
    ):
        d = op.prox(xt, step) - op.prox(yt, step)
        assert float(d @ d) <= float(d @ (xt - yt)) + 1e-12


def test_prox_is_differentiable_away_from_kinks() -> None:
    x = torch.tensor([[1.5, -2.0, 0.9], [3.0, 1.0, -0.7]], dtype=torch.float64, requires_grad=True)
    for op in (P.L1(0.5), P.ElasticNet(0.5, 1.0), P.GroupL1(0.5, dim=0), P.L2Ball(1.0, dim=0)):
        assert torch.autograd.gradcheck(lambda v, op=op: op.prox(v, 0.7), (x,))


# -- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: P.L1(-0.1), r"L1: lam must be a finite number >= 0, got lam=-0\.1"),
        (lambda: P.L1(math.nan), r"lam must be a finite number >= 0, got lam=nan"),
        (lambda: P.L0(math.inf), r"L0: lam must be a finite number >= 0, got lam=inf"),
        (lambda: P.GroupL1(-1.0), r"GroupL1: lam must be a finite number >= 0"),
        (lambda: P.ElasticNet(0.1, -2.0), r"ElasticNet: l2 must be a finite number >= 0, got l2=-2\.0"),
        (lambda: P.L1("0.1"), r"lam must be a finite number >= 0, got lam='0\.1'"),  # type: ignore[arg-type]
        (lambda: P.L1(True), r"lam must be a finite number >= 0, got lam=True"),
        (lambda: P.L2Ball(-1.0), r"L2Ball: radius must be a finite number >= 0, got radius=-1\.0"),
        (lambda: P.Box(1.0, 0.0), r"Box: lo must be <= hi everywhere, got lo=1\.0, hi=0\.0"),
        (lambda: P.Box(math.nan, 0.0), r"Box: lo must be a number"),
        (
            lambda: P.Box(torch.zeros(2), torch.ones(3)),
            r"Box: lo and hi must broadcast together, got shapes \(2,\)",
        ),
        (lambda: P.GroupL1(1.0, dim=(0, 0)), r"GroupL1: dim must not repeat a dimension"),
        (lambda: P.GroupL1(1.0, dim="rows"), r"GroupL1: dim must be None, an int or a tuple of ints"),  # type: ignore[arg-type]
    ],
)
def test_bad_parameters_raise_value_error(make: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_and_steps_raise_value_error() -> None:
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor .* got dtype torch\.int64"):
        P.L1(0.1).prox(torch.arange(4), 1.0)
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor"):
        P.L2Ball(1.0).value(torch.arange(4))
    with pytest.raises(ValueError, match=r"step must be a finite number >= 0 or a tensor, got step=-1\.0"):
        P.L1(0.1).prox(x, -1.0)
    with pytest.raises(ValueError, match=r"step must be a finite number >= 0 or a tensor, got step=nan"):
        P.L1(0.1).prox(x, math.nan)
    with pytest.raises(
        ValueError, match=r"broadcastable to x\.shape=\(3, 4\), got a tensor of shape \(4, 3\)"
    ):
        P.L1(0.1).prox(x, torch.ones(4, 3))
    with pytest.raises(ValueError, match=r"dim=2 does not fit a tensor with 2 dimensions .* \[-2, 1\]"):
        P.GroupL1(0.1, dim=2).prox(x, 1.0)
    with pytest.raises(ValueError, match=r"names the same dimension twice"):
        P.L2Ball(1.0, dim=(0, -2)).prox(x, 1.0)
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor, got list"):
        P.L1(0.1).prox([1.0], 1.0)  # type: ignore[arg-type]


def test_abstract_interfaces_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError):
        P.Prox()  # type: ignore[abstract]
    with pytest.raises(TypeError):
        P.Projection()  # type: ignore[abstract]


def test_secular_solver_is_exact_for_one_term_and_monotone() -> None:
    a = torch.tensor([[9.0], [0.25]], dtype=torch.float64)
    b = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    t = _groups.solve_secular(a, b, ())
    torch.testing.assert_close(t, torch.tensor([[2.0], [0.0]], dtype=torch.float64))  # sqrt(9) - 1, none
