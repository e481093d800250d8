"""Bad or unusual input: the same behaviour as PyTorch where PyTorch accepts it, the same error type
where it does not, and never an internal traceback from kinkgrad."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

import kinkgrad
from kinkgrad import kink_policy, ops
from kinkgrad._registry import OPS, OpSpec, Probe
from test_forward_values import assert_same_bits

CHOICE = {"lambda": 0.3, "ties": "split"}
CASES = [(spec, probe) for spec in OPS.values() for probe in spec.probes]
IDS = [f"{spec.name}[{probe.point}]" for spec, probe in CASES]


def _outcome(probe: Probe, inputs: list[Tensor], policy: kink_policy | None) -> Any:
    try:
        if policy is None:
            return probe.call(*inputs)
        with policy:
            return probe.call(*inputs)
    except Exception as err:  # the point is to compare what is raised
        return err


def _same_outcome(spec: OpSpec, probe: Probe, inputs: list[Tensor]) -> None:
    want = _outcome(probe, inputs, None)
    got = _outcome(probe, inputs, kink_policy(**{spec.name: CHOICE[spec.kind]}))
    if isinstance(want, Exception):
        assert isinstance(got, type(want)), f"PyTorch raised {want!r}, kinkgrad gave {got!r}"
        assert "kinkgrad" not in "".join(str(got)), got
    else:
        assert not isinstance(got, Exception), f"PyTorch accepts this input, kinkgrad raised {got!r}"
        assert_same_bits(got, want)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool], ids=str)
@pytest.mark.parametrize(("spec", "probe"), CASES, ids=IDS)
def test_integer_and_bool_inputs(spec: OpSpec, probe: Probe, dtype: torch.dtype) -> None:
    inputs = [t.to(dtype) if t.is_floating_point() else t for t in probe.make(torch.float64)]
    _same_outcome(spec, probe, inputs)


@pytest.mark.parametrize(("spec", "probe"), CASES, ids=IDS)
def test_empty_inputs(spec: OpSpec, probe: Probe) -> None:
    inputs = [
        t[..., :0].clone().requires_grad_() if t.is_floating_point() else t for t in probe.make(torch.float32)
    ]
    _same_outcome(spec, probe, inputs)


@pytest.mark.parametrize(("spec", "probe"), CASES, ids=IDS)
def test_inputs_that_do_not_require_grad(spec: OpSpec, probe: Probe) -> None:
    inputs = list(probe.make(torch.float32))
    _same_outcome(spec, probe, inputs)
    with kink_policy(**{spec.name: CHOICE[spec.kind]}):
        out = probe.call(*inputs)
    out = out if isinstance(out, Tensor) else out[0]
    assert out.grad_fn is None
    with torch.no_grad(), kink_policy(**{spec.name: CHOICE[spec.kind]}):
        assert (
            _outcome(probe, [t.requires_grad_(t.is_floating_point()) for t in inputs], None).grad_fn is None
        )


def test_nan_and_inf_gradients_match_pytorch_away_from_kinks() -> None:
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, 2.0], requires_grad=True)
    for fn in (torch.relu, torch.abs, lambda t: torch.clamp(t, -1, 1), lambda t: torch.maximum(t, t.flip(0))):
        x.grad = None
        fn(x).sum().backward()
        want = x.grad.clone()  # type: ignore[union-attr]
        x.grad = None
        with kink_policy(default=0.5):
            fn(x).sum().backward()
        got = x.grad
        assert got is not None
        same = torch.isclose(got, want, equal_nan=True)
        kink = (x == 0) | (x == x.flip(0))
        assert bool(same[~kink].all()), (got, want)


def test_explicit_op_argument_errors_name_the_argument() -> None:
    x = torch.zeros(2, requires_grad=True)
    with pytest.raises(TypeError, match="at_kink must be a number"):
        ops.relu(x, at_kink="split")
    with pytest.raises(ValueError, match="at_kink must be one of 'first', 'last', 'split', 'random'"):
        ops.amax(x, at_kink=0.5)
    with pytest.raises(ValueError, match="at_kink must be finite"):
        ops.abs(x, at_kink=float("inf"))
    with pytest.raises(TypeError, match="floating-point tensor"):
        ops.relu(x, at_kink=torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="at_kink must not contain NaN"):
        ops.relu(x, at_kink=torch.tensor([0.5, float("nan")]))
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        ops.l1_loss(x, torch.zeros(2), reduction="avg", at_kink=0.5)  # PyTorch's own ValueError
    with pytest.raises(NotImplementedError, match="rrelu in training mode"):
        ops.rrelu(x, training=True, at_kink=0.5)


def test_lambda_outside_unit_interval_warns_once() -> None:
    x = torch.zeros(2, requires_grad=True)
    kinkgrad._rules._WARNED.clear()  # warnings are once per process: start from none
    with pytest.warns(kinkgrad.KinkWarning, match="outside"):
        ops.relu(x, at_kink=-0.75)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ops.relu(x, at_kink=-0.75).sum().backward()  # the same value again: no second warning
    assert x.grad is not None and x.grad.tolist() == [-0.75, -0.75]


def test_sparse_inputs_are_a_clear_error_not_a_silent_derivative() -> None:
    """A kink rule needs the dense input (the kink mask): a sparse tensor inside a policy or a monitor is
    refused with a message naming the layout and what to do; outside them PyTorch runs as always."""
    x = torch.tensor([[0.0, 1.0], [-1.0, 0.0]]).to_sparse().requires_grad_()
    assert torch.relu(x).layout == torch.sparse_coo
    for context in (kink_policy(default=0.5), kinkgrad.KinkMonitor()):
        with (
            pytest.raises(NotImplementedError, match=r"relu got a tensor of layout torch\.sparse_coo"),
            context,
        ):
            torch.relu(x)
    with kink_policy(topk="first"):  # a policy that does not route relu leaves it alone
        assert torch.relu(x).layout == torch.sparse_coo
