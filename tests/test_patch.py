"""kinkgrad.patch: swap kink modules in place, give the chosen derivatives, and undo exactly."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

import kinkgrad.nn as knn
from kinkgrad import kink_policy
from kinkgrad._patch import PatchHandle, patch
from kinkgrad._registry import GROUPS, OPS


class SmallCNN(nn.Module):
    """Conv, ReLU, MaxPool, Linear, with integer weights so that kinks are hit exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(2 * 2 * 2, 3)
        self.loss = nn.L1Loss()
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[[[1, 0, -1], [1, 0, -1], [1, 0, -1]]], [[[0, 1, 0]] * 3]]))
            self.fc.weight.copy_(torch.arange(24.0).reshape(3, 8) % 5 - 2)
            nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.loss(self.fc(self.pool(self.act(self.conv(x))).flatten(1)), torch.zeros(x.shape[0], 3))


def cnn_input() -> Tensor:
    """A zero block (conv output exactly 0: ReLU kinks, then all-zero pool windows: ties) and steps."""
    x = torch.zeros(2, 1, 4, 4)
    x[0, 0, :, 2:] = 1.0
    x[1, 0, 2:, :] = torch.tensor([1.0, 2.0, 2.0, 1.0])
    return x


def run(model: nn.Module) -> tuple[Tensor, list[Tensor]]:
    """Loss (scaled by an upstream gradient ≠ 1) and every parameter's gradient."""
    model.zero_grad()
    loss = model(cnn_input())
    loss.backward(torch.tensor(2.5))
    return loss.detach(), [
        torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()
    ]


def test_patch_matches_kink_policy_with_the_same_choices() -> None:
    choices: list[dict[str, Any]] = [
        {"relu": 0.3, "max_pool": "split", "l1_loss": 0.8},
        {"default": 1.0, "ties": "last"},
        {"default": 0.0, "ties": "first", "max_pool2d": "split"},
    ]
    plain_loss, plain = run(SmallCNN())
    for kw in choices:
        model = SmallCNN()
        with kink_policy(**kw):
            want_loss, want = run(model)
        with patch(model, **kw) as handle:
            assert handle.replaced == ["act", "pool", "loss"]
            got_loss, got = run(model)
        assert torch.equal(got_loss, want_loss) and torch.equal(got_loss, plain_loss)
        for g, w in zip(got, want):
            assert torch.equal(g, w)
        assert any(not torch.equal(g, p) for g, p in zip(got, plain))  # the kinks were hit


def test_patched_cnn_gives_the_chosen_derivative_by_hand() -> None:
    """conv → relu → pool on an all-zero image: each relu kink gets λ·(upstream share of its window)."""
    model = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))
    x = torch.zeros(1, 1, 2, 4, requires_grad=True)
    with patch(model, relu=0.3, max_pool="split"):
        model(x).backward(torch.tensor([[[[2.5, 4.0]]]]))
    want = torch.tensor([[[[2.5, 2.5, 4.0, 4.0]] * 2]]) / 4 * 0.3
    torch.testing.assert_close(x.grad, want)


def test_undo_round_trip() -> None:
    model = SmallCNN()
    before = dict(model.named_modules())
    loss0, grads0 = run(model)
    handle = patch(model, default=0.5, ties="split")
    assert isinstance(model.act, knn.ReLU) and isinstance(model.pool, knn.MaxPool2d)
    assert isinstance(model.loss, knn.L1Loss) and type(model.conv) is nn.Conv2d
    _, grads1 = run(model)
    assert any(not torch.equal(a, b) for a, b in zip(grads0, grads1))
    handle.undo()
    after = dict(model.named_modules())
    assert list(after) == list(before) and all(after[k] is before[k] for k in before)
    assert type(model.act) is nn.ReLU and model.act is before["act"]
    loss2, grads2 = run(model)
    assert torch.equal(loss0, loss2) and all(torch.equal(a, b) for a, b in zip(grads0, grads2))
    handle.undo()  # a second undo does nothing
    assert model.act is before["act"]


def test_context_manager_and_handle() -> None:
    model = SmallCNN()
    act = model.act
    with patch(model, relu=0.5) as handle:
        assert isinstance(handle, PatchHandle) and handle.replaced == ["act"]
        assert model.act is not act and model.act.at_kink == 0.5 and type(model.pool) is nn.MaxPool2d
    assert model.act is act
    with pytest.raises(RuntimeError, match="boom"), patch(model, relu=0.5):
        raise RuntimeError("boom")
    assert model.act is act


def test_state_is_shared_with_the_original() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.PReLU(2), nn.MultiMarginLoss(weight=torch.rand(2)))
    prelu, loss = model[1], model[2]
    keys = list(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    calls: list[str] = []
    prelu.register_forward_hook(lambda m, i, o: calls.append(type(m).__module__))
    with patch(model, default=0.5):
        assert model[1].weight is prelu.weight and model[2].weight is loss.weight
        assert list(model.state_dict()) == keys
        x = torch.zeros(3, 2)
        model[1](model[0](x)).sum().backward()
        optimizer.step()
        model.eval()
    assert calls == ["kinkgrad.nn._activation"]
    assert not torch.equal(
        prelu.get_parameter("weight").detach(), torch.full((2,), 0.25)
    )  # the step reached the original
    assert not prelu.training and not model[2].training  # eval() while patched carries over
    assert not hasattr(prelu, "at_kink")


def test_choice_precedence() -> None:
    model = nn.Sequential(
        nn.ReLU(), nn.ELU(), nn.MaxPool1d(2), nn.MaxPool2d(2), nn.AdaptiveMaxPool3d(1), nn.ReLU6()
    )
    with patch(model, default=0.2, ties="last", elu=0.9, max_pool="split", max_pool1d="first"):
        assert [m.at_kink for m in model] == [0.2, 0.9, "first", "split", "split", 0.2]
    with patch(model, ties="random") as handle:  # no λ given: elementwise modules stay PyTorch's
        assert handle.replaced == ["2", "3", "4"] and type(model[0]) is nn.ReLU
    with patch(model, default=0.4, relu=None) as handle:  # None: leave that op to PyTorch
        assert handle.replaced == ["1", "5"]


def test_relu6_is_relu6_not_hardtanh() -> None:
    model = nn.Sequential(nn.ReLU6(), nn.Hardtanh(0.0, 6.0))
    with patch(model, relu6=0.25, hardtanh=0.75):
        assert type(model[0]) is knn.ReLU6 and model[0].at_kink == 0.25
        assert type(model[1]) is knn.Hardtanh and model[1].at_kink == 0.75
        x = torch.zeros(1, requires_grad=True)
        model[0](x).backward(torch.tensor([2.0]))
        assert x.grad is not None and torch.equal(x.grad, torch.tensor([0.5]))


def test_exact_types_only() -> None:
    class MyReLU(nn.ReLU):
        pass

    model = nn.Sequential(MyReLU(), nn.Linear(1, 1), nn.ReLU())
    with patch(model, default=0.5) as handle:
        assert handle.replaced == ["2"] and type(model[0]) is MyReLU


def test_shared_module_is_replaced_everywhere_by_one_object() -> None:
    act, inner = nn.ReLU(), nn.Sequential(nn.Linear(1, 1))
    model = nn.Sequential(act, inner)
    inner.append(act)
    with patch(model, relu=0.5) as handle:
        assert handle.replaced == ["0", "1.1"]
        assert model[0] is inner[1] and isinstance(model[0], knn.ReLU)
    assert model[0] is act and inner[1] is act


def test_patching_kinkgrad_modules_and_nesting() -> None:
    own = knn.ReLU(at_kink=0.1)
    model = nn.Sequential(own, nn.ReLU())
    with patch(model, default=0.5) as outer:
        first = model[1]
        assert outer.replaced == ["0", "1"] and model[0] is not own and model[0].at_kink == 0.5
        with patch(model, default=0.9) as inner:
            assert inner.replaced == ["0", "1"] and [m.at_kink for m in model] == [0.9, 0.9]
        assert model[0].at_kink == 0.5 and model[1] is first
    assert model[0] is own and own.at_kink == 0.1 and type(model[1]) is nn.ReLU
    with patch(model, relu=None, default=0.3) as handle:  # None leaves a kinkgrad module alone
        assert handle.replaced == [] and model[0] is own


def test_reassigned_module_is_not_clobbered_by_undo() -> None:
    model = nn.Sequential(nn.ReLU())
    handle = patch(model, default=0.5)
    other = nn.Tanh()
    model[0] = other
    handle.undo()
    assert model[0] is other


def test_root_kink_module_raises() -> None:
    with pytest.raises(ValueError, match=r"model itself is a ReLU.*kinkgrad\.nn\.ReLU"):
        patch(nn.ReLU(), default=0.5)
    patch(nn.ReLU(), ties="split")  # nothing chosen for it: nothing to swap


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rleu": 0.5}, ValueError, "unknown kink op 'rleu' for patch; valid names: .*max_pool.*relu"),
        ({"default": "split"}, TypeError, "default must be a number"),
        ({"ties": 0.5}, ValueError, "ties must be one of"),
        ({"relu": "first"}, TypeError, "relu must be a number"),
        ({"max_pool": 1.0}, ValueError, "max_pool must be one of"),
        ({"default": float("nan")}, ValueError, "default must be finite"),
    ],
)
def test_bad_choices_raise_and_leave_the_model_alone(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    model = SmallCNN()
    before = list(model.modules())
    choices: dict[str, Any] = {"default": 0.5, "ties": "split", **kwargs}  # valid choices, then a bad one
    with pytest.raises(error, match=match):
        patch(model, **choices)
    assert all(a is b for a, b in zip(model.modules(), before))


def test_every_registry_name_is_accepted() -> None:
    model = SmallCNN()
    for name in (*OPS, *GROUPS):
        value = "split" if name in GROUPS or OPS[name].kind == "ties" else 0.5
        patch(model, **{name: value}).undo()  # type: ignore[arg-type]


def test_compiled_patched_model_gives_the_chosen_derivative() -> None:
    torch._dynamo.reset()
    model = nn.Sequential(nn.ReLU(), nn.MaxPool1d(2))
    with patch(model, relu=0.3, ties="split"):
        compiled = torch.compile(model, backend="aot_eager")
        x = torch.tensor([[[0.0, 0.0, 1.0, 1.0, -1.0, 2.0]]], requires_grad=True)
        y = compiled(x)
        y.backward(torch.tensor([[[2.5, 2.5, 4.0]]]))
    assert torch.equal(y, torch.tensor([[[0.0, 1.0, 2.0]]]))
    torch.testing.assert_close(x.grad, torch.tensor([[[0.375, 0.375, 1.25, 1.25, 0.0, 4.0]]]))
