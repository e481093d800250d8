"""Forward values equal PyTorch's bit for bit, in every floating dtype, with ±inf, NaN and -0.0."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from kinkgrad import kink_policy
from kinkgrad._registry import OPS, OpSpec, Probe

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
SPECIALS = [float("inf"), float("-inf"), float("nan"), -0.0, 0.0]
CHOICE = {"lambda": 0.3, "ties": "last"}
CASES = [(spec, probe) for spec in OPS.values() for probe in spec.probes]
IDS = [f"{spec.name}[{probe.point}]" for spec, probe in CASES]
_BITS = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}


def assert_same_bits(a: Any, b: Any) -> None:
    if isinstance(a, tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_bits(x, y)
        return
    assert isinstance(a, Tensor) and isinstance(b, Tensor)
    assert a.dtype == b.dtype and a.shape == b.shape
    if not a.is_floating_point():
        assert torch.equal(a, b)
        return
    nan = torch.isnan(a)
    assert torch.equal(nan, torch.isnan(b)), (a, b)
    bits = _BITS[a.dtype]
    assert torch.equal(a.detach()[~nan].view(bits), b.detach()[~nan].view(bits)), (a, b)


def _variants(inputs: tuple[Tensor, ...]) -> list[tuple[Tensor, ...]]:
    """The probe itself (at the kink) and copies with one entry replaced by each special value."""
    out = [inputs]
    for i, t in enumerate(inputs):
        if not t.is_floating_point():
            continue
        for s in SPECIALS:
            for j in range(t.numel()):
                changed = t.clone()
                changed.view(-1)[j] = s
                out.append(inputs[:i] + (changed,) + inputs[i + 1 :])
    return out


def _run(probe: Probe, inputs: tuple[Tensor, ...]) -> Any:
    leaves = [t.clone().requires_grad_(t.is_floating_point()) for t in inputs]
    return probe.call(*leaves)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("spec", "probe"), CASES, ids=IDS)
def test_forward_bits_match_pytorch(spec: OpSpec, probe: Probe, dtype: torch.dtype) -> None:
    for inputs in _variants(probe.make(dtype)):
        try:
            want = _run(probe, inputs)
        except (RuntimeError, NotImplementedError) as err:  # PyTorch rejects it: so must we
            with kink_policy(**{spec.name: CHOICE[spec.kind]}), pytest.raises(type(err)):
                _run(probe, inputs)
            continue
        with kink_policy(**{spec.name: CHOICE[spec.kind]}):
            got = _run(probe, inputs)
        assert_same_bits(got, want)


UNARY = [
    lambda x: torch.relu(x),
    lambda x: torch.nn.functional.leaky_relu(x, 0.2),
    lambda x: torch.nn.functional.relu6(x),
    lambda x: torch.nn.functional.hardtanh(x, -0.5, 0.5),
    lambda x: torch.clamp(x, -1.0, 1.0),
    lambda x: torch.clamp(x, min=0.0),
    lambda x: torch.clamp(x, max=0.0),
    lambda x: torch.nn.functional.threshold(x, 0.1, 20.0),
    lambda x: torch.abs(x),
    lambda x: torch.nn.functional.hardsigmoid(x),
    lambda x: torch.nn.functional.hardswish(x),
    lambda x: torch.nn.functional.elu(x, 0.7),
    lambda x: torch.nn.functional.selu(x),
    lambda x: torch.nn.functional.celu(x, 1.3),
    lambda x: torch.nn.functional.hardshrink(x, 0.5),
    lambda x: torch.nn.functional.softshrink(x, 0.5),
    lambda x: torch.nn.functional.rrelu(x, training=False),
    lambda x: torch.maximum(x, x.flip(0)),
    lambda x: torch.fmin(x, x.flip(0)),
    lambda x: torch.linalg.vector_norm(x.reshape(4, -1), 2, dim=1),
    lambda x: torch.linalg.vector_norm(x.reshape(4, -1), 1, dim=1),
    lambda x: torch.linalg.vector_norm(x.reshape(4, -1), float("inf"), dim=1),
    lambda x: torch.topk(x.reshape(4, -1), 2).values,
    lambda x: torch.sort(x.reshape(4, -1), dim=1, descending=True).values,
    lambda x: torch.amax(x.reshape(4, -1), 1),
    # finite entries (±0 ties among them): max-pools that kinkgrad computes itself (non-finite: PyTorch's)
    lambda x: torch.nn.functional.max_pool1d(torch.nan_to_num(x, 0.0, 0.0, 0.0).reshape(2, 2, -1), 2),
    lambda x: torch.nn.functional.max_pool2d(torch.nan_to_num(x, 0.0, 0.0, 0.0).reshape(2, 4, 5), 2),
    lambda x: torch.nn.functional.max_pool2d(x.reshape(2, 4, 5), 2),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("fn", UNARY, ids=range(len(UNARY)))
def test_forward_bits_on_a_rich_vector(fn: Any, dtype: torch.dtype) -> None:
    """Kink points, their neighbours, specials and random values, all in one tensor."""
    points = [0.0, -0.0, 1.0, -1.0, 6.0, 3.0, -3.0, 0.5, -0.5, 0.1, 1e-8, -1e-8, float("inf"), float("-inf")]
    points += [float("nan"), 2.0, -2.0, 0.0, 1.0, 1.0]
    x = torch.tensor(points, dtype=torch.float64).to(dtype)
    x = torch.cat([x, torch.randn(20, dtype=torch.float64).to(dtype)])
    want = fn(x.clone().requires_grad_())
    with kink_policy(default=0.3, ties="split"):
        got = fn(x.clone().requires_grad_())
    assert_same_bits(got, want)
