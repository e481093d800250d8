"""The one-pass method's helpers against their plain definitions, and which networks it covers
(it must decide their ties without re-running the closure)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import kinkgrad._certified as certified
from kinkgrad import check_ad_backward, clarke_backward


@pytest.mark.parametrize("seed", range(20))
def test_nonzero_4d_is_nonzero(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    density = [0.0, 0.001, 0.05, 0.9][seed % 4]
    mask = torch.rand(3, 5, 7, 6, generator=g) < density
    expected = mask.view(-1).nonzero().squeeze(1)
    assert torch.equal(certified._nonzero_4d(mask), expected)


class _Node:
    """The attributes of a ConvolutionBackward0 node that ``_reach`` reads."""

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int]) -> None:
        self._saved_stride, self._saved_padding, self._saved_dilation = stride, padding, dilation


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation"),
    [((3, 3), (1, 1), (1, 1), (1, 1)), ((3, 2), (1, 1), (0, 1), (1, 1)), ((3, 3), (2, 1), (1, 0), (1, 2))],
)
def test_reach_is_a_max_pool_of_the_moving_mask(
    kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int]
) -> None:
    """An output can move where its input patch holds a moving entry: a max-pool with the geometry."""
    g = torch.Generator().manual_seed(0)
    moving = (torch.rand(2, 1, 9, 8, generator=g) < 0.05).to(torch.uint8)
    expected = F.max_pool2d(moving.float(), kernel, stride, padding, dilation).bool()
    reach = certified._reach(moving, kernel, _Node(stride, padding, dilation))
    assert torch.equal(reach, expected)
    weight = torch.ones(1, 1, *kernel)  # a convolution of the moving mask is nonzero exactly there
    conv = F.conv2d(moving.float(), weight, None, stride, padding, dilation) != 0
    assert torch.equal(reach, conv)


def _benchmark_like_cnn() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 6 * 6, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.round(p * 8) / 8)
    x = torch.round(torch.rand(5, 1, 12, 12, dtype=torch.float64) * 2) / 2
    x[..., :4, :] = 0
    return model, x, torch.arange(5) % 3


def test_relu_conv_pool_networks_need_no_second_forward_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Any) -> None:
        raise AssertionError("the closure was re-run: the one-pass method should have decided every tie")

    monkeypatch.setattr(certified._Certifier, "start_pass", refuse)
    model, x, y = _benchmark_like_cnn()
    runs = []

    def closure() -> torch.Tensor:
        runs.append(1)
        return F.cross_entropy(model(x), y)

    record = check_ad_backward(closure, model, seed=4)
    assert record.method in ("tangents", "own bias") and sum(s.ties for s in record.sites) > 0
    runs.clear()
    generator = torch.Generator().manual_seed(5)
    direction = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in model.parameters()]
    clarke_backward(closure, model, direction=direction)
    assert len(runs) == 1


def test_layouts_other_than_contiguous() -> None:
    """A channels-last input (left to the general method) and a relu output used transposed (its
    gradient arrives non-contiguous): still the directional limit."""
    torch.manual_seed(1)
    conv = nn.Conv2d(1, 3, 3, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.round(conv.weight * 4) / 4)
    x = torch.round(torch.rand(2, 1, 6, 6, dtype=torch.float64) * 2) / 2
    x[..., :3, :] = 0
    up = torch.linspace(1.5, 2.5, 6, dtype=torch.float64)

    def f(w: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
        h = torch.relu(F.conv2d(x.contiguous(memory_format=layout), w, padding=1))
        return (F.max_pool2d(h, 2).transpose(-1, -2) * up[:3]).sum() + (h.transpose(1, 3) * up[:3]).sum()

    generator = torch.Generator().manual_seed(3)
    d = torch.randn(conv.weight.shape, generator=generator, dtype=torch.float64)
    for layout in (torch.contiguous_format, torch.channels_last):
        w = conv.weight.detach().clone().requires_grad_()
        (g,) = clarke_grad_(lambda w, layout=layout: f(w, layout), w, d)
        shifted = (w.detach() + 1e-7 * d).requires_grad_()
        (oracle,) = torch.autograd.grad(f(shifted, layout), shifted)
        torch.testing.assert_close(g, oracle, rtol=1e-5, atol=1e-5)


def clarke_grad_(fn: Any, w: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, ...]:
    from kinkgrad import clarke_grad

    return clarke_grad(fn, w, direction=d)


def test_inputs_that_are_not_leaves() -> None:
    """``clarke_grad`` of a computed (non-leaf) input: its tangent is the direction, whatever made it."""
    from kinkgrad import clarke_grad

    base = torch.zeros(1, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    x = base * 3.0
    d = torch.tensor([[[[0.0, 0.0], [1.0, 0.0]]]], dtype=torch.float64)
    (g,) = clarke_grad(lambda x: 2.5 * F.max_pool2d(torch.relu(x), 2).sum(), x, direction=d)
    assert g.tolist() == [[[[0.0, 0.0], [2.5, 0.0]]]]
    (g,) = clarke_grad(lambda x: 2.5 * (torch.relu(x) - torch.relu(-x)).sum(), x)
    assert g.tolist() == [[[[2.5, 2.5], [2.5, 2.5]]]]


def test_kinkgrad_direction_follows_its_recipe_and_is_drawn_only_where_read() -> None:
    """kinkgrad's Gaussian direction is the documented recipe (one float64 ``randn`` per tensor, in
    order, from one generator seeded with ``seed``, cast to each tensor's dtype), read in any order; a
    tensor's direction is drawn only when read, so after a certified step whose ties its own biases
    decide, no weight-sized direction is held."""
    tensors = [torch.zeros(3, 4), torch.zeros(4, dtype=torch.float64), torch.zeros(2, 5, 6)]
    lazy = certified._Gaussian(tensors, seed=11)
    generator = torch.Generator().manual_seed(11)
    expected = [torch.randn(t.shape, generator=generator, dtype=torch.float64).to(t.dtype) for t in tensors]
    assert torch.equal(lazy[2], expected[2]) and list(lazy._drawn) == [2]
    assert all(torch.equal(lazy[i], e) for i, e in enumerate(expected)) and len(lazy) == 3

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    x = torch.round(torch.rand(5, 4, dtype=torch.float64) * 4) / 4
    with torch.no_grad():  # on a 1/4 grid (exact sums): every first-layer unit at its kink on sample 0
        model[0].weight.copy_(torch.round(model[0].weight * 4) / 4)
        model[0].bias.copy_(-(model[0].weight @ x[0]))
    record = check_ad_backward(lambda: F.cross_entropy(model(x), torch.arange(5) % 3), model, seed=4)
    assert record.method == "own bias" and sum(site.ties for site in record.sites) >= 6
    (direction,) = certified._GAUSSIAN.values()
    params = list(model.parameters())
    assert sorted(direction._drawn) == [i for i, p in enumerate(params) if p.dim() == 1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("explicit", [False, True])
def test_the_one_pass_pool_gives_the_certified_gradient_of_pytorchs_pool(
    dtype: torch.dtype, explicit: bool, monkeypatch: pytest.MonkeyPatch, dispatch: str
) -> None:
    """The fast path's max-pool from one compiled pass (its values and maxima as bits; PyTorch's first
    maximum, or a decided one, gets the gradient) gives the certified gradient that PyTorch's pool with
    its indices gives (``return_indices=True`` keeps that path), bit for bit, on data with tied windows
    that must be decided and with ties after the pool (tangents through it)."""
    model, x, y = _benchmark_like_cnn()
    model, x = model.to(dtype), x.to(dtype)
    conv1, conv2, lin1, lin2 = model[0], model[2], model[6], model[8]
    taken: list[bool] = []
    pool_bits = certified._pool_bits
    monkeypatch.setattr(
        certified, "_pool_bits", lambda *a: taken.append((r := pool_bits(*a)) is not None) or r
    )

    def closure(indexed: bool) -> torch.Tensor:
        h = torch.relu(conv2(torch.relu(conv1(x))))
        pooled = F.max_pool2d(h, 2, return_indices=True)[0] if indexed else F.max_pool2d(h, 2)
        return F.cross_entropy(lin2(torch.relu(lin1(pooled.flatten(1)))), y)

    g = torch.Generator().manual_seed(7)
    direction = [torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype) for p in model.parameters()]
    grads = []
    for indexed in (False, True):
        taken.clear()
        model.zero_grad()
        record = check_ad_backward(lambda indexed=indexed: closure(indexed), model, seed=2)
        assert record.method == "tangents"
        assert sum(s.ties - s.inert for s in record.sites if s.op == "max_pool2d") > 0  # windows decided
        model.zero_grad()
        clarke_backward(
            lambda indexed=indexed: closure(indexed), model, direction=direction if explicit else None, seed=2
        )
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
        assert taken == ([] if indexed else [True] * len(taken)) and (indexed or taken)
    for one_pass, pytorch in zip(*grads):
        assert torch.equal(one_pass, pytorch)
