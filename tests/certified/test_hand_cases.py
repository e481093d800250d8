"""Hand-derived cases where plain PyTorch leaves the Clarke set; the certified answer is asserted."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import kinkgrad
from kinkgrad import check_ad, clarke_backward, clarke_grad

DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
UP = 2.5  # upstream factor, never 1


def _t(v: list[float] | float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(v, dtype=dtype, requires_grad=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_relu_minus_relu_of_negative(dtype: torch.dtype) -> None:
    x = _t([0.0, 0.0, 2.0, -1.0], dtype)
    f = lambda x: UP * (torch.relu(x) - torch.relu(-x)).sum()  # noqa: E731  (= UP·Σx)
    (g,) = clarke_grad(f, x)
    assert g.tolist() == [UP] * 4
    (plain,) = torch.autograd.grad(f(x), x)
    assert plain.tolist() == [0.0, 0.0, UP, UP]


def test_relu_minus_clamp_is_zero() -> None:
    x = _t([0.0, 0.0])
    (g,) = clarke_grad(lambda x: UP * (torch.relu(x) - torch.clamp(x, min=0)).sum(), x)
    assert g.tolist() == [0.0, 0.0]
    (plain,) = torch.autograd.grad(UP * (torch.relu(x) - torch.clamp(x, min=0)).sum(), x)
    assert plain.tolist() == [-UP, -UP]


@pytest.mark.parametrize(
    ("unit", "points", "slope"),
    [(F.relu6, [0.0, 6.0], 1.0), (F.hardsigmoid, [-3.0, 3.0], 1 / 6)],
    ids=["relu6", "hardsigmoid"],
)
def test_units_sharing_a_bias(unit, points: list[float], slope: float) -> None:  # type: ignore[no-untyped-def]
    """f(b) = Σ_i unit(x_i + b) with one x_i at each kink: locally linear with slope ``slope`` per unit."""
    x = torch.tensor(points, dtype=torch.float64)
    b = _t(0.0)
    f = lambda b: UP * unit(x + b).sum()  # noqa: E731
    (g,) = clarke_grad(f, b)
    assert float(g) == pytest.approx(UP * slope)
    (plain,) = torch.autograd.grad(f(b), b)
    assert float(plain) == 0.0


def test_maxpool_first_index_ties() -> None:
    """maxpool[u+b, b] - maxpool[-u+b, b] = u near u = 0: gradient (1, 0); PyTorch gives (2, 0)."""

    def f(u: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        left = F.max_pool1d(torch.stack([u + b, b]).view(1, 1, 2), 2)
        right = F.max_pool1d(torch.stack([-u + b, b]).view(1, 1, 2), 2)
        return UP * (left - right).sum()

    u, b = _t(0.0), _t(0.0)
    gu, gb = clarke_grad(f, (u, b))
    assert (float(gu), float(gb)) == (UP, 0.0)
    pu, pb = torch.autograd.grad(f(u, b), (u, b))
    assert (float(pu), float(pb)) == (2 * UP, 0.0)


def test_two_layer_net_with_every_neuron_at_its_kink() -> None:
    """Along +b1 every unit opens: the gradient is that of the linear net w2ᵀ(W1 x + b1)."""
    torch.manual_seed(0)
    x = torch.randn(3, dtype=torch.float64)
    w1 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    b1 = (-(w1 @ x)).detach().requires_grad_()  # every pre-activation exactly 0
    w2 = torch.randn(4, dtype=torch.float64, requires_grad=True)
    f = lambda w1, b1, w2: UP * (w2 @ torch.relu(w1 @ x + b1))  # noqa: E731
    assert bool(((w1 @ x + b1) == 0).all())
    direction = (torch.zeros_like(w1), torch.ones_like(b1), torch.zeros_like(w2))
    g1, gb, g2 = clarke_grad(f, (w1, b1, w2), direction=direction)
    torch.testing.assert_close(gb, UP * w2.detach())
    torch.testing.assert_close(g1, UP * torch.outer(w2.detach(), x))
    torch.testing.assert_close(g2, torch.zeros(4, dtype=torch.float64))
    closed = tuple(-d for d in direction)  # along -b1 every unit closes: only w2's gradient (0) is left
    assert all(bool((g == 0).all()) for g in clarke_grad(f, (w1, b1, w2), direction=closed))


def test_kink_away_from_origin() -> None:
    x = _t([1.0])
    (g,) = clarke_grad(lambda x: UP * (torch.relu(x - 1) - torch.relu(1 - x)).sum(), x)
    assert g.tolist() == [UP]


def test_clarke_backward_is_a_drop_in_for_backward() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    with torch.no_grad():
        model[0].bias.copy_(-(model[0].weight @ torch.ones(3)))  # every unit at its kink for x = 1
    x = torch.ones(5, 3)
    model.zero_grad()
    model[2].bias.grad = torch.full((1,), 10.0)  # .grad accumulates, as with backward()
    loss = clarke_backward(lambda: UP * model(x).sum(), model)
    assert loss.grad_fn is None and float(loss) == pytest.approx(float(UP * model(x).sum()))
    assert model[2].bias.grad is not None and float(model[2].bias.grad) == pytest.approx(10.0 + 5 * UP)
    assert model[0].bias.grad is not None


def test_check_ad_reports_sites_and_sufficient_conditions() -> None:
    x = _t([0.0, 1.0])
    bad = check_ad(lambda x: (torch.relu(x) - torch.relu(-x)).sum(), x)
    assert not bad.agree and bad.difference_norm == pytest.approx(1.0)
    assert [s.op for s in bad.sites] == ["relu", "relu"] and bad.sufficient_condition is None
    smooth = check_ad(lambda x: (x**2).sum(), _t([0.5, 1.0]))
    assert smooth.agree and smooth.sufficient_condition == "no kink" and smooth.difference_norm == 0.0
    torch.manual_seed(0)
    lin = torch.nn.Linear(2, 3)
    with torch.no_grad():
        lin.bias.copy_(-(lin.weight @ torch.tensor([1.0, 2.0])))
    record = kinkgrad.check_ad_backward(lambda: torch.relu(lin(torch.tensor([[1.0, 2.0]]))).sum(), lin)
    assert record.sufficient_condition == "park-chun-lee-2024" and record.agree is not None


def test_unsupported_nonsmooth_ops_raise_naming_the_op(dispatch: str) -> None:
    x = _t([0.5, 1.5])
    for op, name in [(torch.round, "round"), (torch.floor, "floor"), (torch.sign, "sign")]:
        with pytest.raises(kinkgrad.UnsupportedKinkError, match=name):
            clarke_grad(lambda x, op=op: op(x).sum() + x.sum(), x)
    with pytest.raises(kinkgrad.UnsupportedKinkError, match="heaviside"):
        clarke_grad(lambda x: torch.heaviside(x, torch.tensor(0.5, dtype=x.dtype)).sum(), x)
    (g,) = clarke_grad(lambda x: (torch.round(x.detach()) * x).sum(), x)  # detached: fine
    assert g.tolist() == [0.0, 2.0]


def test_bad_input_names_the_argument() -> None:
    x = _t([0.0, 1.0])
    with pytest.raises(ValueError, match="fn must return a scalar"):
        clarke_grad(lambda x: torch.relu(x), x)
    with pytest.raises(ValueError, match=r"inputs\[0\] does not require grad"):
        clarke_grad(lambda x: x.sum(), torch.zeros(2))
    with pytest.raises(ValueError, match=r"direction\[0\] must match inputs\[0\]"):
        clarke_grad(lambda x: x.sum(), x, direction=torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"direction\[0\] must match inputs\[0\].*dtype"):
        clarke_grad(lambda x: x.sum(), x, direction=torch.ones(2))
    with pytest.raises(ValueError, match="contains NaN"):
        clarke_grad(lambda x: x.sum(), x, direction=torch.tensor([float("nan"), 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="direction is zero"):
        clarke_grad(lambda x: x.sum(), x, direction=torch.zeros(2, dtype=torch.float64))
    with pytest.raises(TypeError, match="closure must return a tensor"):
        clarke_backward(lambda: 1.0, [x])  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="one tensor per params"):
        clarke_backward(lambda: x.sum(), [x], direction=[x, x])


def test_comparisons_that_tie_are_decided_along_the_ray(dispatch: str) -> None:
    """``where(x > 0, x, 0)`` is relu written with a comparison: certified too."""
    x = _t([0.0, 0.0, 1.0])
    f = lambda x: UP * (torch.where(x > 0, x, 0.0) - torch.relu(-x)).sum()  # noqa: E731  (= UP·Σx)
    (g,) = clarke_grad(f, x)
    assert g.tolist() == [UP] * 3
    (plain,) = torch.autograd.grad(f(x), x)
    assert plain.tolist() == [0.0, 0.0, UP]
    down = -torch.ones(3, dtype=torch.float64)
    (g,) = clarke_grad(lambda x: UP * (x * (x >= 0)).sum(), x, direction=down)
    assert g.tolist() == [0.0, 0.0, UP]  # moving down, x >= 0 turns false at the two zeros
    (g,) = clarke_grad(lambda x: UP * (x * (x >= 0)).sum(), x, direction=-down)
    assert g.tolist() == [UP] * 3


def test_pool_ties_of_locally_constant_relu_zeros_are_inert() -> None:
    """Max-pool windows of relu outputs that are 0 because their inputs are strictly negative: the
    candidates are locally constant, any branch gives the same gradient, nothing more is computed."""
    w = _t([[[[1.0]]]])
    x = -torch.tensor([[[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]]], dtype=torch.float64)
    x[..., 0, 2:] = -x[..., 0, 2:]  # the right window has a positive maximum, no tie

    def f() -> torch.Tensor:
        return UP * F.max_pool2d(torch.relu(F.conv2d(x, w)), 2).sum()

    record = kinkgrad.check_ad_backward(f, [w])
    assert record.agree and record.method == "inert" and record.unresolved == 0
    assert [(s.op, s.ties, s.inert) for s in record.sites] == [("max_pool2d", 1, 1)]
    clarke_backward(f, [w])
    assert w.grad is not None and float(w.grad) == pytest.approx(UP * 4.0)


def test_max_pool_with_indices_keeps_pytorchs_indices() -> None:
    """The certified max-pool returns PyTorch's values and indices; only the gradient changes."""
    u = _t([[[[0.0, 0.0], [0.0, 0.0]]]])
    direction = torch.tensor([[[[0.0, 0.0], [1.0, 0.0]]]], dtype=torch.float64)

    def f(u: torch.Tensor) -> torch.Tensor:
        value, indices = F.max_pool2d(u, 2, return_indices=True)
        assert indices.tolist() == [[[[0]]]]
        return UP * value.sum()

    (g,) = clarke_grad(f, u, direction=direction)
    assert g.tolist() == [[[[0.0, 0.0], [UP, 0.0]]]]
