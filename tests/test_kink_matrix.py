"""Every registered op, at every probe kink, under every transform: the derivative equals the oracle.

The oracle (tests/oracles.py) is PyTorch's own gradient at points next to the kink, so it is
independent of kinkgrad's code. Upstream gradients are never 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
import torch.autograd.forward_ad as fwad
from torch import Tensor

from kinkgrad import kink_policy
from kinkgrad._registry import OPS, OpSpec, Probe
from oracles import candidates, expected, float_inputs, upstream_like, values_of

CHOICES = {"lambda": (0.0, 0.3, 1.0), "ties": ("first", "last", "split")}
SHOWCASE = {"lambda": 0.3, "ties": "last"}  # the choice used in the slower (compiled) cells
CASES = [(spec, probe) for spec in OPS.values() for probe in spec.probes]
IDS = [f"{spec.name}[{probe.point}]" for spec, probe in CASES]


def _loss_fn(probe: Probe, inputs: Sequence[Tensor]) -> Callable[..., Tensor]:
    """``floats -> <upstream, call(inputs)>`` with the non-float inputs held fixed."""
    floats = float_inputs(inputs)
    up = upstream_like(values_of(probe.call(*inputs)))

    def loss(*fl: Tensor) -> Tensor:
        full = list(inputs)
        for i, t in zip(floats, fl):
            full[i] = t
        return (values_of(probe.call(*full)) * up).sum()

    return loss


def _floats(inputs: Sequence[Tensor]) -> list[Tensor]:
    return [inputs[i] for i in float_inputs(inputs)]


def eager(loss: Callable[..., Tensor], fl: list[Tensor]) -> list[Tensor]:
    leaves = [t.clone().requires_grad_() for t in fl]
    grads = torch.autograd.grad(loss(*leaves), leaves, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads)]


def func_grad(loss: Callable[..., Tensor], fl: list[Tensor]) -> list[Tensor]:
    return list(torch.func.grad(loss, argnums=tuple(range(len(fl))))(*fl))


def vmap_grad(loss: Callable[..., Tensor], fl: list[Tensor]) -> list[Tensor]:
    batched = [torch.stack([t, t]) for t in fl]
    out = torch.func.vmap(torch.func.grad(loss, argnums=tuple(range(len(fl)))))(*batched)
    for g in out:
        torch.testing.assert_close(g[0], g[1], rtol=0, atol=0)
    return [g[0] for g in out]


def _basis(fl: list[Tensor]) -> list[tuple[int, int]]:
    return [(i, j) for i, t in enumerate(fl) for j in range(t.numel())]


def _from_directional(fl: list[Tensor], pairs: list[tuple[int, int]], values: list[Tensor]) -> list[Tensor]:
    grads = [torch.zeros_like(t) for t in fl]
    for (i, j), v in zip(pairs, values):
        grads[i].view(-1)[j] = v
    return grads


def _tangents(fl: list[Tensor], i: int, j: int) -> tuple[Tensor, ...]:
    tangents = [torch.zeros_like(t) for t in fl]
    tangents[i].view(-1)[j] = 1.0
    return tuple(tangents)


def func_jvp(loss: Callable[..., Tensor], fl: list[Tensor]) -> list[Tensor]:
    pairs = _basis(fl)
    values = [torch.func.jvp(loss, tuple(fl), _tangents(fl, i, j))[1] for i, j in pairs]
    return _from_directional(fl, pairs, values)


def forward_ad(loss: Callable[..., Tensor], fl: list[Tensor]) -> list[Tensor]:
    pairs = _basis(fl)
    values = []
    for i, j in pairs:
        with fwad.dual_level():
            duals = [fwad.make_dual(t, d) for t, d in zip(fl, _tangents(fl, i, j))]
            values.append(fwad.unpack_dual(loss(*duals)).tangent)
    return _from_directional(fl, pairs, values)


def compiled(loss: Callable[..., Tensor], fl: list[Tensor]) -> list[Tensor]:
    torch._dynamo.reset()
    return eager(torch.compile(loss, backend="aot_eager", fullgraph=True), fl)


def compiled_grad(loss: Callable[..., Tensor], fl: list[Tensor]) -> list[Tensor]:
    torch._dynamo.reset()
    grad = torch.func.grad(loss, argnums=tuple(range(len(fl))))
    return list(torch.compile(grad, backend="aot_eager", fullgraph=True)(*fl))


def compiled_jvp(loss: Callable[..., Tensor], fl: list[Tensor]) -> list[Tensor]:
    torch._dynamo.reset()
    jvp = torch.compile(lambda p, t: torch.func.jvp(loss, p, t)[1], backend="aot_eager", fullgraph=True)
    pairs = _basis(fl)
    return _from_directional(fl, pairs, [jvp(tuple(fl), _tangents(fl, i, j)) for i, j in pairs])


FAST = {
    "eager": eager,
    "func.grad": func_grad,
    "vmap(grad)": vmap_grad,
    "jvp": func_jvp,
    "forward_ad": forward_ad,
}
SLOW = {"compile": compiled, "compile(func.grad)": compiled_grad, "compile(jvp)": compiled_jvp}


def _check(spec: OpSpec, probe: Probe, choice: Any, transform: Callable[..., list[Tensor]]) -> None:
    inputs = probe.make(torch.float64)
    want = expected(probe, inputs, choice)
    try:
        with kink_policy(**{spec.name: choice}):
            got = transform(_loss_fn(probe, inputs), _floats(inputs))
    except (NotImplementedError, RuntimeError) as err:
        # a cell kinkgrad cannot support must be one PyTorch cannot run either: never a different number
        with pytest.raises(type(err)):
            transform(_loss_fn(probe, inputs), _floats(inputs))
        return
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-6)


@pytest.mark.parametrize("transform", list(FAST), ids=list(FAST))
@pytest.mark.parametrize(("spec", "probe"), CASES, ids=IDS)
def test_derivative_at_kink(spec: OpSpec, probe: Probe, transform: str) -> None:
    for choice in CHOICES[spec.kind]:
        _check(spec, probe, choice, FAST[transform])


@pytest.mark.parametrize("transform", list(SLOW), ids=list(SLOW))
@pytest.mark.parametrize(("spec", "probe"), CASES, ids=IDS)
def test_derivative_at_kink_compiled(spec: OpSpec, probe: Probe, transform: str) -> None:
    _check(spec, probe, SHOWCASE[spec.kind], SLOW[transform])


INDUCTOR = ["relu", "clamp", "maximum", "abs", "max_pool2d", "amax", "hardtanh"]


@pytest.mark.parametrize("name", INDUCTOR)
def test_derivative_at_kink_inductor(name: str) -> None:
    spec = OPS[name]
    probe = spec.probes[0]
    inputs = probe.make(torch.float64)
    want = expected(probe, inputs, SHOWCASE[spec.kind])
    torch._dynamo.reset()
    loss = torch.compile(_loss_fn(probe, inputs), fullgraph=True)
    with kink_policy(**{name: SHOWCASE[spec.kind]}):
        got = eager(loss, _floats(inputs))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-6)


TIE_CASES = [(s, p) for s, p in CASES if s.kind == "ties" and p.oracle == "ties"]


@pytest.mark.parametrize(("spec", "probe"), TIE_CASES, ids=[f"{s.name}[{p.point}]" for s, p in TIE_CASES])
def test_random_ties_pick_one_candidate_reproducibly(spec: OpSpec, probe: Probe) -> None:
    inputs = probe.make(torch.float64)
    options = candidates(probe, inputs)
    seen = []
    for seed in range(6):
        results = []
        for _ in range(2):
            with kink_policy(**{spec.name: "random"}, seed=seed):
                results.append(eager(_loss_fn(probe, inputs), _floats(inputs)))
        torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)  # same seed, same draw
        matches = [
            k
            for k, c in enumerate(options)
            if all(torch.allclose(g, w, atol=1e-6) for g, w in zip(results[0], c))
        ]
        assert matches, f"random tie gave {results[0]}, not one of the Bouligand gradients {options}"
        seen.append(matches[0])
    assert len(set(seen)) > 1, "six seeds always drew the same candidate"


def test_random_ties_under_vmap_raise_instead_of_guessing() -> None:
    x = torch.ones(2, 3, dtype=torch.float64)
    with kink_policy(ties="random"), pytest.raises(RuntimeError, match="random"):
        torch.func.vmap(torch.func.grad(lambda v: torch.amax(v)))(x)


LAMBDA_CASES = [(s, p) for s, p in CASES if p.oracle == "lambda"]


@pytest.mark.parametrize(
    ("spec", "probe"), LAMBDA_CASES, ids=[f"{s.name}[{p.point}]" for s, p in LAMBDA_CASES]
)
def test_per_element_lambda_tensor(spec: OpSpec, probe: Probe) -> None:
    """``at_kink`` may be a tensor of choices; a 0-d tensor equals the float choice."""
    inputs = probe.make(torch.float64)
    want = expected(probe, inputs, 0.3)
    with kink_policy(**{spec.name: torch.tensor(0.3, dtype=torch.float64)}):
        got = eager(_loss_fn(probe, inputs), _floats(inputs))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("spec", "probe"), CASES, ids=IDS)
def test_gradcheck_away_from_kinks(spec: OpSpec, probe: Probe) -> None:
    """Nudged off the kink (and off every tie), the op is smooth there: finite differences agree."""
    inputs = probe.make(torch.float64)
    generator = torch.Generator().manual_seed(0)
    nudged = [
        t + 0.01 * torch.randn(t.shape, generator=generator, dtype=t.dtype) if t.is_floating_point() else t
        for t in inputs
    ]
    loss = _loss_fn(probe, nudged)
    fl = [t.clone().requires_grad_() for t in _floats(nudged)]
    forward_ad = spec.name != "multi_margin_loss"  # PyTorch has no forward AD for it
    with kink_policy(**{spec.name: SHOWCASE[spec.kind]}):
        assert torch.autograd.gradcheck(loss, tuple(fl), check_forward_ad=forward_ad)
