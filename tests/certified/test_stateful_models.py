"""Batch norm in train mode and dropout: every pass sees the same dropout mask, the running
statistics are updated exactly once, and the certified gradient is still the directional limit."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from kinkgrad import check_ad_backward, clarke_backward

T = 1e-10  # batch norm of a constant feature scales the oracle's O(t) error by 1/sqrt(eps)


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 2)
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.round(p * 4) / 4)
        model[0].weight[:3] = 0  # constant features: batch norm maps them to exactly 0, relu's kink
        model[1].bias.zero_()
    return model.train()


def test_batchnorm_and_dropout() -> None:
    x = torch.round(torch.rand(8, 4, dtype=torch.float64) * 2) / 2
    weights = torch.tensor([1.5, -2.5], dtype=torch.float64)
    generator = torch.Generator().manual_seed(7)
    model = _model()
    direction = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in model.parameters()]
    reference, shifted = copy.deepcopy(model), copy.deepcopy(model)

    torch.manual_seed(123)
    clarke_backward(lambda: (model(x) * weights).sum(), model, direction=direction)

    torch.manual_seed(123)
    (reference(x) * weights).sum()  # one plain forward: the running statistics to expect
    for b, r in zip(model.buffers(), reference.buffers()):
        torch.testing.assert_close(b, r, rtol=0, atol=0)

    with torch.no_grad():
        for p, d in zip(shifted.parameters(), direction):
            p.add_(T * d)
    torch.manual_seed(123)  # the same dropout mask
    (shifted(x) * weights).sum().backward()
    for p, s in zip(model.parameters(), shifted.parameters()):
        torch.testing.assert_close(p.grad, s.grad, rtol=1e-5, atol=1e-5)


def test_check_ad_backward_leaves_grads_and_buffers() -> None:
    x = torch.round(torch.rand(8, 4, dtype=torch.float64) * 2) / 2
    model = _model()
    before = [b.clone() for b in model.buffers()]
    record = check_ad_backward(lambda: model(x).sum(), model, seed=1)
    assert all(p.grad is None for p in model.parameters())
    for b, saved in zip(model.buffers(), before):
        torch.testing.assert_close(b, saved, rtol=0, atol=0)
    assert record.sites and record.unresolved == 0
