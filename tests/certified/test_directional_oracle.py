"""Property test: on random small networks whose parameters and inputs sit on coarse grids (so many
kinks tie exactly), the certified gradient along a direction d equals plain PyTorch's gradient at
θ + t·d for a small t (where the function is differentiable): the directional limit of BACKGROUND §2."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from kinkgrad import check_ad_backward, clarke_backward, clarke_grad

T = 1e-7
SEEDS = range(50)


class Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.inner = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.inner(x))


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        h = torch.maximum(torch.abs(h), torch.clamp(h, -0.5, 0.5)) + F.hardtanh(h)
        return self.b(h).amax(dim=1)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 3 * 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1))


class BiasFreeCNN(nn.Module):
    """The benchmark CNN's shape in small: bias-free convolutions (blank patches give relu inputs that
    are exactly 0 whatever the weights), relu, max-pool of relu outputs, then a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        self.fc = nn.Linear(3 * 3 * 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(F.max_pool2d(h, 2).flatten(1))


FAMILIES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "mlp": (
        lambda: nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)),
        (6, 4),
    ),
    "residual": (lambda: nn.Sequential(nn.Linear(4, 4), Residual(4), Residual(4), nn.Linear(4, 2)), (6, 4)),
    "mixed": (Mixed, (6, 4)),
    "cnn": (SmallCNN, (3, 1, 6, 6)),
    "bias-free cnn": (BiasFreeCNN, (3, 1, 6, 6)),
}


def _build(family: str, seed: int) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    factory, shape = FAMILIES[family]
    model = factory().double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.round(p * 4) / 4)  # multiples of 1/4: many exact zeros and ties
    x = torch.round(torch.rand(shape, dtype=torch.float64) * 2) / 2  # levels 0, 1/2, 1
    if family == "bias-free cnn":
        x[..., :3, :] = 0  # a blank band, as in MNIST: relu inputs exactly 0 for any weights
    return model, x


def _plain_at(
    model: nn.Module, loss: Callable[[], torch.Tensor], shift: list[torch.Tensor]
) -> list[torch.Tensor]:
    params = list(model.parameters())
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, d in zip(params, shift):
            p.add_(d)
    grads = torch.autograd.grad(loss(), params)
    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)
    return list(grads)


def _loss(model: nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    def loss() -> torch.Tensor:
        out = model(x)
        return (out * torch.linspace(1.5, 2.5, out.shape[-1], dtype=out.dtype)).sum()  # upstream ≠ 1

    return loss


def _certified_against_limit(
    model: nn.Module, loss: Callable[[], torch.Tensor], direction_seed: int
) -> list[torch.Tensor]:
    """``clarke_backward`` along a seeded Gaussian direction, checked against plain autodiff a step
    ``T`` along it (the directional limit); returns the certified gradients."""
    generator = torch.Generator().manual_seed(direction_seed)
    direction = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in model.parameters()]
    model.zero_grad()
    clarke_backward(loss, model, direction=direction)
    certified = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
    oracle = _plain_at(model, loss, [T * d for d in direction])
    for c, o in zip(certified, oracle):
        torch.testing.assert_close(c, o, rtol=1e-5, atol=1e-5)
    return certified


@pytest.mark.parametrize("family", list(FAMILIES))
def test_certified_equals_directional_limit(family: str) -> None:
    differs = 0
    for seed in SEEDS:
        model, x = _build(family, seed)
        loss = _loss(model, x)
        certified = _certified_against_limit(model, loss, direction_seed=1000 + seed)
        plain = torch.autograd.grad(loss(), list(model.parameters()))
        differs += any(not torch.allclose(p, c) for p, c in zip(plain, certified))
    assert differs >= len(SEEDS) // 5, (
        f"only {differs} cases where plain AD differs: the grid makes too few ties"
    )


@pytest.mark.parametrize("family", list(FAMILIES))
def test_kinkgrads_own_direction_is_the_documented_one(family: str) -> None:
    """kinkgrad's direction g (seeded Gaussian); when every kink sits right after a biased layer, the
    lexicographic sequence (g on each bias, latest used first, then g): oracle at θ + Σ t_k·d_k."""
    methods = set()
    for seed in range(10):
        model, x = _build(family, seed)
        loss = _loss(model, x)
        params = list(model.parameters())
        generator = torch.Generator().manual_seed(seed)  # the documented recipe for seed=seed
        g = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in params]
        method = check_ad_backward(loss, model, seed=seed).method
        methods.add(method)
        if method == "own bias":
            biases = [i for i, p in enumerate(params) if p.dim() == 1][::-1]  # Sequential: use order
            only = [[g[j] if j == i else torch.zeros_like(g[j]) for j in range(len(g))] for i in biases]
            steps = [*only, g]
            scales = [10.0 ** (-5 - 3 * k) for k in range(len(steps))]
            shift = [sum(t * d[j] for t, d in zip(scales, steps)) for j in range(len(g))]
            tol = 1e-4
        else:
            shift, tol = [T * d for d in g], 1e-5
        model.zero_grad()
        clarke_backward(loss, model, seed=seed)
        oracle = _plain_at(model, loss, shift)
        for p, o in zip(params, oracle):
            torch.testing.assert_close(p.grad, o, rtol=tol, atol=tol)
    if family == "mlp":
        assert "own bias" in methods  # relu right after a biased layer: no tangent pass needed


def test_gradients_with_respect_to_inputs() -> None:
    for seed in SEEDS:
        model, x = _build("cnn", seed)
        x = x.clone().requires_grad_()
        generator = torch.Generator().manual_seed(seed)
        d = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        (g,) = clarke_grad(lambda x, model=model: 1.5 * model(x).sum(), x, direction=d)
        shifted = (x.detach() + T * d).requires_grad_()
        (oracle,) = torch.autograd.grad(1.5 * model(shifted).sum(), shifted)
        torch.testing.assert_close(g, oracle, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fraction", [0.0, 1.0], ids=["dense tangents", "tangents at the ties only"])
def test_tangents_at_the_ties_only_equal_dense_tangents(
    fraction: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path evaluates a convolution's tangent only at the ties that can move (a dot product
    with the input patch) when they are few, densely otherwise: both give the directional limit."""
    import kinkgrad._certified as certified

    monkeypatch.setattr(certified, "_SPARSE_FRACTION", fraction)
    for seed in SEEDS:
        model, x = _build("bias-free cnn", seed)
        loss = _loss(model, x)
        _certified_against_limit(model, loss, direction_seed=2000 + seed)
