"""kinkgrad.nn: each module is its torch.nn namesake, with the chosen derivative at its kinks.

One table (``CASES``) lists every module with an input exactly at its kinks and the derivative expected
there, worked out by hand from ``(1-λ)·left + λ·right`` (or the tie rule) with upstream gradients ≠ 1.
The shared tests loop over it: a new module gets them by adding a row.
"""

from __future__ import annotations

import copy
import inspect
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import kinkgrad.nn as knn
from kinkgrad import KinkWarning, kink_policy, ops
from kinkgrad._registry import OPS
from kinkgrad.nn import _module

LAM = 0.3
SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def grad_of(x: Tensor) -> Tensor:
    assert x.grad is not None
    return x.grad


def t(*values: Any) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


@dataclass
class Case:
    """A kinkgrad module, its constructor arguments, inputs at its kinks and the expected gradients."""

    cls: type[knn.KinkModule]
    args: tuple[Any, ...]
    inputs: Callable[[], tuple[Tensor, ...]]
    upstream: float
    expected: Callable[[Any], tuple[Tensor, ...]]  # at_kink → gradient of each float input
    at_kink: Any = LAM
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.cls.__name__


def _pool_case(cls: type[knn.KinkModule], args: tuple[Any, ...], n: int) -> Case:
    shape = {1: (1, 1, 2), 2: (1, 1, 2, 2), 3: (1, 1, 1, 2, 2)}[n]
    size = 2 if n == 1 else 4
    # two windows along the batch: one tied (all ones), one with a unique maximum at entry 1
    unique = torch.zeros(size, dtype=torch.float64)
    unique[1] = 1.0
    x = torch.cat([torch.ones(shape, dtype=torch.float64), unique.reshape(shape)])

    def expected(rule: Any) -> tuple[Tensor, ...]:
        tied = {"first": [1.0] + [0.0] * (size - 1), "last": [0.0] * (size - 1) + [1.0]}.get(
            rule, [1.0 / size] * size
        )
        return (torch.stack([torch.tensor(tied), torch.tensor(unique.tolist())]).reshape(x.shape) * 2.5,)

    return Case(cls, args, lambda: (x.clone(),), 2.5, expected, at_kink="split")


CASES = [
    Case(knn.ReLU, (), lambda: (t(-1.0, 0.0, 2.0),), 2.5, lambda l: (2.5 * t(0.0, l, 1.0),)),
    Case(
        knn.LeakyReLU,
        (0.1,),
        lambda: (t(-1.0, 0.0, 2.0),),
        2.5,
        lambda l: (2.5 * t(0.1, (1 - l) * 0.1 + l, 1.0),),
    ),
    Case(
        knn.PReLU,
        (2, 0.2),
        lambda: (torch.tensor([[0.0, -1.0], [0.0, 2.0]], dtype=torch.float64),),
        2.5,
        lambda l: (2.5 * t((1 - l) * 0.2 + l, 0.2, (1 - l) * 0.2 + l, 1.0).reshape(2, 2),),
        kwargs={"dtype": torch.float64},
    ),
    Case(knn.RReLU, (0.1, 0.3), lambda: (t(0.0, -1.0),), 2.5, lambda l: (2.5 * t((1 - l) * 0.2 + l, 0.2),)),
    Case(knn.ReLU6, (), lambda: (t(0.0, 6.0, 3.0),), 2.5, lambda l: (2.5 * t(l, 1 - l, 1.0),)),
    Case(knn.Hardtanh, (-2.0, 2.0), lambda: (t(-2.0, 2.0, 0.0),), 2.5, lambda l: (2.5 * t(l, 1 - l, 1.0),)),
    Case(knn.Threshold, (0.5, 0.5), lambda: (t(0.5, 1.0, 0.0),), 2.5, lambda l: (2.5 * t(l, 1.0, 0.0),)),
    Case(knn.Hardsigmoid, (), lambda: (t(-3.0, 3.0),), 2.5, lambda l: (2.5 * t(l / 6, (1 - l) / 6),)),
    Case(knn.Hardswish, (), lambda: (t(-3.0, 3.0),), 2.5, lambda l: (2.5 * t(-l / 2, (1 - l) * 1.5 + l),)),
    Case(knn.ELU, (2.0,), lambda: (t(0.0),), 2.5, lambda l: (2.5 * t((1 - l) * 2.0 + l),)),
    Case(
        knn.SELU,
        (),
        lambda: (t(0.0),),
        2.5,
        lambda l: (2.5 * t((1 - l) * SELU_SCALE * SELU_ALPHA + l * SELU_SCALE),),
    ),
    Case(knn.CELU, (), lambda: (t(0.0),), 2.5, lambda l: (2.5 * t(1.0),)),
    Case(knn.Hardshrink, (0.5,), lambda: (t(-0.5, 0.5),), 2.5, lambda l: (2.5 * t(1 - l, l),)),
    Case(knn.Softshrink, (0.5,), lambda: (t(-0.5, 0.5),), 2.5, lambda l: (2.5 * t(1 - l, l),)),
    _pool_case(knn.MaxPool1d, (2,), 1),
    _pool_case(knn.MaxPool2d, (2,), 2),
    _pool_case(knn.MaxPool3d, ((1, 2, 2),), 3),
    _pool_case(knn.AdaptiveMaxPool1d, (1,), 1),
    _pool_case(knn.AdaptiveMaxPool2d, (1,), 2),
    _pool_case(knn.AdaptiveMaxPool3d, ((1, 1, 1),), 3),
    Case(
        knn.L1Loss,
        (),
        lambda: (t(0.0, 1.0), t(0.0, 0.0)),
        2.5,
        lambda l: (2.5 / 2 * t(2 * l - 1, 1.0), 2.5 / 2 * t(1 - 2 * l, -1.0)),  # mean over 2
    ),
    Case(
        knn.HingeEmbeddingLoss,
        (),
        lambda: (t(1.0, 0.0), t(-1.0, -1.0)),
        2.5,
        lambda l: (2.5 / 2 * t(-l, -1.0), t(0.0, 0.0)),
        kwargs={"reduction": "mean"},
    ),
    Case(
        knn.MarginRankingLoss,
        (),
        lambda: (t(0.0), t(0.0), t(1.0)),
        2.5,
        lambda l: (2.5 * t(-l), 2.5 * t(l), t(0.0)),
        kwargs={"reduction": "sum"},
    ),
    Case(
        knn.MultiMarginLoss,
        (),
        lambda: (torch.tensor([[1.0, 0.0]], dtype=torch.float64),),
        2.5,
        lambda l: (2.5 / 2 * torch.tensor([[-l, l]], dtype=torch.float64),),  # one hinge at 0, C = 2
        kwargs={"reduction": "sum"},
    ),
]
IDS = [c.id for c in CASES]
MULTI_MARGIN_TARGET = torch.tensor([0])


def call(module: nn.Module, inputs: tuple[Tensor, ...]) -> Tensor:
    if isinstance(module, nn.MultiMarginLoss):
        return module(*inputs, MULTI_MARGIN_TARGET)
    out = module(*inputs)
    return out


def grads(module: nn.Module, case: Case) -> tuple[Tensor, ...]:
    inputs = tuple(x.requires_grad_() for x in case.inputs())
    y = call(module, inputs)
    y.backward(torch.full_like(y, case.upstream))
    return tuple(torch.zeros_like(x) if x.grad is None else x.grad for x in inputs)


def build(case: Case, torch_module: bool = False, **at_kink: Any) -> nn.Module:
    cls: type[nn.Module] = case.cls.torch_class if torch_module else case.cls
    m = cls(*case.args, **case.kwargs, **at_kink)
    return m.eval() if isinstance(m, nn.RReLU) else m


def test_every_module_is_covered() -> None:
    assert sorted(IDS) == sorted(n for n in knn.__all__ if n != "KinkModule")
    assert {c.cls.torch_class for c in CASES} == set(_module._CLASSES)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_derivative_at_kink(case: Case) -> None:
    got = grads(build(case, at_kink=case.at_kink), case)
    for g, e in zip(got, case.expected(case.at_kink)):
        torch.testing.assert_close(g, e.to(g.dtype), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_other_choices_at_kink(case: Case) -> None:
    """A second choice (λ = 1, or another tie rule) moves the derivative as the formula says."""
    choice = "last" if OPS[case.cls.op_name].kind == "ties" else 1.0
    got = grads(build(case, at_kink=choice), case)
    for g, e in zip(got, case.expected(choice)):
        torch.testing.assert_close(g, e.to(g.dtype), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_default_none_is_pytorch(case: Case) -> None:
    """``at_kink=None`` gives PyTorch's gradient, also at the kink."""
    for got, want in zip(grads(build(case), case), grads(build(case, torch_module=True), case)):
        assert torch.equal(got, want)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_module_matches_functional_op(case: Case) -> None:
    """The module's gradient is the kinkgrad op's (same configuration, same ``at_kink``)."""
    module = build(case, at_kink=case.at_kink)
    config = {name: getattr(module, name) for name in case.cls._config}
    inputs = tuple(x.requires_grad_() for x in case.inputs())
    extra = (MULTI_MARGIN_TARGET,) if isinstance(module, nn.MultiMarginLoss) else ()
    y = case.cls._op(*inputs, *extra, **config, at_kink=case.at_kink)
    y.backward(torch.full_like(y, case.upstream))
    for g, mg in zip((x.grad for x in inputs), grads(module, case)):
        assert torch.equal(torch.zeros_like(mg) if g is None else g, mg)


def _bits(x: Tensor) -> Tensor:
    ints = {torch.float64: torch.int64, torch.float32: torch.int32}
    return x.view(ints[x.dtype]) if x.dtype in ints else x.view(torch.int16)


def _special(inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The kink inputs plus ``-0.0``, ``±inf``, NaN, random and integer-valued (tied) entries."""
    first = inputs[0]
    if len(inputs) > 1 or first.shape[0] == 1:  # losses: shapes tied to their targets
        return inputs
    specials = torch.tensor([-0.0, math.inf, -math.inf, math.nan, 0.0], dtype=first.dtype)
    row = first[:1] if first.dim() > 1 else torch.zeros(10, dtype=first.dtype)
    filled = specials.repeat(row.numel() // 5 + 1)[: row.numel()].reshape(row.shape)
    return (torch.cat([first, filled, torch.randn_like(row) * 4, torch.randint_like(row, -2, 3)]),)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_is_pytorch_bit_for_bit(case: Case, dtype: torch.dtype) -> None:
    inputs = _special(case.inputs())
    ours, theirs = build(case, at_kink=case.at_kink).to(dtype), build(case, torch_module=True).to(dtype)
    for requires_grad in (False, True):
        xs = tuple(x.to(dtype).requires_grad_(requires_grad) for x in inputs)
        try:
            want = call(theirs, tuple(x.detach() for x in xs))
        except Exception as refused:  # PyTorch refuses this dtype: so must we, with its error
            with pytest.raises(type(refused)):
                call(ours, xs)
            continue
        got = call(ours, xs)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert torch.equal(_bits(got.detach()), _bits(want))


def test_return_indices_are_pytorch() -> None:
    x = torch.ones(1, 1, 4, 4, requires_grad=True)
    (v, i), (tv, ti) = (
        knn.MaxPool2d(2, return_indices=True, at_kink="split")(x),
        nn.MaxPool2d(2, return_indices=True)(x),
    )
    assert torch.equal(v, tv) and torch.equal(i, ti)
    v.backward(torch.full_like(v, 2.0))
    assert torch.equal(grad_of(x), torch.full_like(x, 0.5))


def test_inplace_activation() -> None:
    x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    y = x * 1.0
    out = knn.ReLU(inplace=True, at_kink=LAM)(y)
    assert out is y
    out.backward(torch.full((3,), 2.5))
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 0.75, 2.5]))


def test_rrelu_training_with_choice_raises() -> None:
    with pytest.raises(NotImplementedError, match="training mode"):
        knn.RReLU(at_kink=0.5).train()(torch.zeros(2, requires_grad=True))
    knn.RReLU().train()(torch.zeros(2, requires_grad=True))  # no choice: PyTorch's module


def test_random_ties_pick_one_tied_entry() -> None:
    torch.manual_seed(3)
    x = torch.ones(1, 1, 2, 2, requires_grad=True)
    knn.MaxPool2d(2, at_kink="random")(x).backward(torch.full((1, 1, 1, 1), 2.5))
    assert sorted(grad_of(x).flatten().tolist()) == [0.0, 0.0, 0.0, 2.5]


def test_is_the_torch_class() -> None:
    for case in CASES:
        ours, theirs = build(case, at_kink=case.at_kink), build(case, torch_module=True)
        assert isinstance(ours, case.cls.torch_class) and isinstance(ours, knn.KinkModule)
        assert not isinstance(theirs, knn.KinkModule)
        assert type(ours).__mro__[2] is case.cls.torch_class
        assert case.cls.op_name in OPS and case.cls.kind == OPS[case.cls.op_name].kind
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
        assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
        assert ours.__doc__ and "Example:" in ours.__doc__ and "at_kink" in ours.__doc__


def test_relu6_is_its_own_op() -> None:
    assert isinstance(knn.ReLU6(), nn.Hardtanh) and knn.ReLU6.op_name == "relu6"
    assert knn.Hardtanh.op_name == "hardtanh"


def test_extra_repr_adds_at_kink() -> None:
    for case in CASES:
        ours, theirs = build(case, at_kink=case.at_kink), build(case, torch_module=True)
        base = theirs.extra_repr()
        choice = f"at_kink={case.at_kink!r}"
        assert ours.extra_repr() == (f"{base}, {choice}" if base else choice)
    assert repr(knn.ReLU(inplace=True, at_kink=0.5)) == "ReLU(inplace=True, at_kink=0.5)"
    assert repr(knn.MaxPool2d(2)).endswith("ceil_mode=False, at_kink=None)")


def test_constructor_signature_is_torchs_plus_at_kink() -> None:
    for cls in (c.cls for c in CASES):
        ours = inspect.signature(cls).parameters
        theirs = inspect.signature(cls.torch_class).parameters
        assert list(ours)[:-1] == list(theirs) and list(ours)[-1] == "at_kink"
        assert ours["at_kink"].kind is inspect.Parameter.KEYWORD_ONLY and ours["at_kink"].default is None
    m = knn.Hardtanh(-2.0, 3.0, True, at_kink=0.5)
    assert (m.min_val, m.max_val, m.inplace, m.at_kink) == (-2.0, 3.0, True, 0.5)


def test_state_dict_keys_and_round_trip() -> None:
    def model(lib: Any, **kink: Any) -> nn.Sequential:
        lam = {"at_kink": 0.5} if kink else {}
        ties = {"at_kink": "split"} if kink else {}
        return nn.Sequential(
            nn.Conv2d(1, 2, 3),
            lib.PReLU(2, **lam),
            lib.MaxPool2d(2, **ties),
            nn.Flatten(),
            lib.MultiMarginLoss(weight=torch.rand(3), **lam),
        )

    ours, theirs = model(knn, kink=True), model(nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)


def test_deepcopy_and_pickle_keep_at_kink() -> None:
    m = knn.LeakyReLU(0.2, at_kink=0.7)
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert type(clone) is knn.LeakyReLU and clone.at_kink == 0.7 and clone.negative_slope == 0.2


def test_configuration_is_read_at_call_time() -> None:
    m = knn.LeakyReLU(0.1, at_kink=1.0)
    m.negative_slope = 0.5
    x = torch.tensor([-2.0, 0.0], requires_grad=True)
    y = m(x)
    assert torch.equal(y, torch.tensor([-1.0, 0.0]))
    y.backward(torch.full((2,), 2.0))
    assert torch.equal(grad_of(x), torch.tensor([1.0, 2.0]))
    m.at_kink = 0.0
    x.grad = None
    m(x).backward(torch.full((2,), 2.0))
    assert torch.equal(grad_of(x), torch.tensor([1.0, 1.0]))


def test_explicit_choice_beats_active_policy_and_none_follows_it() -> None:
    x = torch.zeros(2, requires_grad=True)
    with kink_policy(default=0.9, ties="last"):
        knn.ReLU(at_kink=LAM)(x).backward(torch.full((2,), 2.5))
        y = torch.ones(1, 1, 2, 2, requires_grad=True)
        knn.MaxPool2d(2, at_kink="split")(y).backward(torch.full((1, 1, 1, 1), 2.0))
        z = torch.zeros(2, requires_grad=True)
        knn.ReLU()(z).backward(torch.full((2,), 2.5))
    torch.testing.assert_close(x.grad, torch.full((2,), 0.75))
    torch.testing.assert_close(y.grad, torch.full((1, 1, 2, 2), 0.5))
    torch.testing.assert_close(z.grad, torch.full((2,), 2.25))


def test_func_grad_and_vmap_through_module() -> None:
    m = knn.ReLU(at_kink=LAM)
    g = torch.func.grad(lambda x: (m(x) * 2.5).sum())(torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(g, torch.tensor([0.75, 2.5]))
    gv = torch.func.vmap(torch.func.grad(lambda x: m(x) * 2.5))(torch.tensor([0.0, -1.0]))
    torch.testing.assert_close(gv, torch.tensor([0.75, 0.0]))


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: knn.ReLU(at_kink="split"), TypeError, "at_kink must be a number"),
        (lambda: knn.ReLU(at_kink=True), TypeError, "at_kink must be a number"),
        (lambda: knn.ELU(at_kink=math.nan), ValueError, "at_kink must be finite"),
        (lambda: knn.L1Loss(at_kink=torch.tensor([1])), TypeError, "at_kink must be a float"),
        (lambda: knn.MaxPool2d(2, at_kink=0.5), ValueError, "at_kink must be one of"),
        (lambda: knn.AdaptiveMaxPool1d(1, at_kink="middle"), ValueError, "at_kink must be one of"),
        (lambda: knn.ReLU(at_kink=None, inplace=True, bogus=1), TypeError, "bogus"),
    ],
)
def test_bad_at_kink_raises_naming_it(make: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_bad_at_kink_on_assignment_raises() -> None:
    m = knn.MaxPool1d(2, at_kink="first")
    with pytest.raises(ValueError, match="at_kink must be one of"):
        m.at_kink = 0.5
    assert m.at_kink == "first"


def test_choice_outside_clarke_set_warns() -> None:
    x = torch.zeros(1, requires_grad=True)
    with pytest.warns(KinkWarning, match="at_kink"):
        knn.ReLU(at_kink=1.5)(x).backward(torch.full((1,), 2.0))
    assert torch.equal(grad_of(x), torch.tensor([3.0]))


def test_tensor_lambda() -> None:
    x = torch.zeros(2, requires_grad=True)
    knn.ReLU(at_kink=torch.tensor([0.25, 0.75]))(x).backward(torch.full((2,), 2.0))
    assert torch.equal(grad_of(x), torch.tensor([0.5, 1.5]))


def test_integer_input_is_pytorchs() -> None:
    x = torch.tensor([-1, 0, 2])
    assert torch.equal(knn.ReLU(at_kink=LAM)(x), nn.ReLU()(x))


def test_functional_op_reference_is_the_registered_one() -> None:
    assert knn.ReLU._op is ops.relu and knn.MaxPool3d._op is ops.max_pool3d
