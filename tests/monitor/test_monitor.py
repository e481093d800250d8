"""KinkMonitor: exact counts on hand-built inputs, sites, steps, cotangents, results unchanged."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import kinkgrad
from kinkgrad._monitor import KinkMonitor, KinkRecord


def _one(monitor: KinkMonitor) -> KinkRecord:
    records = monitor.summary()
    assert len(records) == 1, records
    return records[0]


pytestmark = pytest.mark.usefixtures("passes")  # every count, with and without the compiled passes


def test_relu_counts_with_upstream_other_than_one() -> None:
    x = torch.tensor([-2.0, 0.0, 0.0, -0.0, 3.0, 0.0], requires_grad=True)
    upstream = torch.tensor([7.0, 2.5, 0.0, -1.5, 4.0, 0.0])
    with KinkMonitor() as monitor:
        y = torch.relu(x)
    y.backward(upstream)
    record = _one(monitor)
    assert record.op == "relu" and record.step == 0 and record.calls == 1
    assert (record.elements, record.exact_kinks, record.near_kinks) == (6, 4, 4)
    assert record.bifurcating_kinks == 2  # zeros at positions 1 and 3 receive 2.5 and -1.5
    assert isinstance(record.exact_kinks, int) and isinstance(record.bifurcating_kinks, int)
    assert x.grad is not None and torch.equal(x.grad, torch.tensor([0.0, 0.0, 0.0, 0.0, 4.0, 0.0]))


def test_near_kinks_are_measured_in_ulps_of_the_scale() -> None:
    eps = torch.finfo(torch.float32).eps
    scale = 8.0  # the largest |x|: the tolerance is k * eps * 8
    x = torch.tensor([scale, 0.0, 3 * eps * scale, -4 * eps * scale, 5 * eps * scale, 1.0])
    with KinkMonitor(near_ulps=4) as monitor:
        torch.relu(x)
    record = _one(monitor)
    assert (record.exact_kinks, record.near_kinks) == (1, 3)  # 0, 3 ulps and 4 ulps; not 5 ulps
    with KinkMonitor(near_ulps=0) as monitor:
        torch.relu(x)
    assert _one(monitor).near_kinks == 1


def test_kink_points_away_from_zero_and_binary_ties() -> None:
    x = torch.tensor([-1.0, 1.0, 0.5, 1.0, 6.0])
    other = torch.tensor([-1.0, 2.0, 0.5, 1.0, 0.0])
    with KinkMonitor() as monitor:
        F.hardtanh(x)  # kinks at -1 and 1
        F.relu6(x)  # kinks at 0 and 6
        torch.maximum(x, other)  # ties where x == other
        torch.clamp(x, min=0.5)
    counts = {r.op: (r.elements, r.exact_kinks) for r in monitor.summary()}
    assert counts == {"hardtanh": (5, 3), "relu6": (5, 1), "maximum": (5, 3), "clamp": (5, 1)}


def test_selection_ties_pools_and_losses() -> None:
    image = torch.tensor(
        [[1.0, 1.0, 0.0, 2.0], [0.0, 0.0, 3.0, 0.0], [5.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    )
    x = image.reshape(1, 1, 4, 4).requires_grad_()
    target = torch.zeros(1, 1, 4, 4)
    with KinkMonitor() as monitor, kinkgrad.kink_policy(ties="first"):
        pooled = F.max_pool2d(x, 2)  # windows: (1,1,0,0) tie; (0,2,3,0) no; (5,4,0,0) no; zeros tie
        rows = torch.amax(x, dim=3)  # rows: 2 / 3 / 5 / 0 (tie of four)
        loss = F.l1_loss(x, target, reduction="none")  # one kink per exact zero of x - target
    (pooled.sum() * 3 + rows.sum() + loss.sum()).backward()
    counts = {r.op: (r.elements, r.exact_kinks, r.bifurcating_kinks) for r in monitor.summary()}
    assert counts["max_pool2d"] == (4, 2, 2)
    assert counts["amax"] == (4, 1, 1)
    zeros = int((image == 0).sum())
    assert counts["l1_loss"] == (16, zeros, zeros)


def test_reduced_loss_counts_one_element() -> None:
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    with KinkMonitor() as monitor:
        loss = F.l1_loss(x, torch.zeros(2))
    loss.backward()
    assert (_one(monitor).elements, _one(monitor).exact_kinks, _one(monitor).bifurcating_kinks) == (1, 1, 1)


def test_bifurcating_counts_only_nonzero_cotangents_through_a_network() -> None:
    # unit 0 of the hidden layer sits at the kink for sample 0 only; the head's weight on unit 1 is 0
    w1 = torch.tensor([[1.0, -1.0], [0.0, 2.0]], requires_grad=True)
    w2 = torch.tensor([[3.0, 0.0]], requires_grad=True)
    x = torch.tensor([[1.0, 1.0], [2.0, 0.0]])  # hidden pre-activations: [[0, 2], [2, 0]]
    with KinkMonitor() as monitor:
        out = torch.relu(x @ w1.T) @ w2.T
    out.sum().backward()
    record = _one(monitor)
    assert (record.exact_kinks, record.bifurcating_kinks) == (2, 1)


def test_module_sites_functional_sites_and_steps() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 3)
            self.act = nn.ReLU()

        def forward(self, x: Tensor) -> Tensor:
            return F.relu(self.act(self.linear(x)) - 1.0)

    model = nn.Sequential(Block(), nn.Linear(3, 2), nn.ReLU())
    monitor = KinkMonitor(model)
    for _ in range(3):
        with monitor:
            model(torch.randn(4, 3)).sum().backward()
        monitor.step()
    records = monitor.summary()
    sites = [r.site for r in records if r.step == 0]
    assert sites[0] == "0.act" and sites[2] == "2"
    assert sites[1].startswith("0 @ ") and sites[1].endswith(".py:" + sites[1].rsplit(":", 1)[1])
    assert "test_monitor.py" in sites[1]
    assert [r.step for r in records] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert all(r.elements == 12 or r.elements == 8 for r in records)
    assert monitor.current_step == 3
    totals = monitor.totals()
    assert totals["2"].step == 3 and totals["2"].elements == 24 and totals["2"].calls == 3
    # hooks are removed on exit: nothing is counted outside the block
    model(torch.randn(4, 3))
    assert len(monitor.summary()) == 9
    monitor.reset()
    assert monitor.summary() == [] and monitor.current_step == 0


def test_functional_site_without_model_is_the_calling_line() -> None:
    x = torch.zeros(3)
    with KinkMonitor() as monitor:
        torch.relu(x)
        x.clamp(min=0.0)
    here = [r.site for r in monitor.summary()]
    assert len(set(here)) == 2 and all(
        s.startswith("test_monitor.py:") or "/test_monitor.py:" in s for s in here
    )


def test_to_dataframe_and_records_are_frozen() -> None:
    with KinkMonitor() as monitor:
        torch.relu(torch.zeros(2))
    frame = monitor.to_dataframe()
    assert list(frame.columns) == [
        "site", "op", "step", "calls", "elements", "exact_kinks", "near_kinks", "bifurcating_kinks"
    ]  # fmt: skip
    assert frame["exact_kinks"].tolist() == [2]
    record = monitor.summary()[0]
    try:
        record.exact_kinks = 3  # type: ignore[misc]
    except AttributeError:
        pass
    else:  # pragma: no cover
        raise AssertionError("KinkRecord must be frozen")


def test_nested_monitors_both_count() -> None:
    with KinkMonitor() as outer:
        torch.relu(torch.zeros(2))
        with KinkMonitor() as inner:
            torch.relu(torch.zeros(3))
    assert sum(r.elements for r in outer.summary()) == 5
    assert sum(r.elements for r in inner.summary()) == 3


def test_nested_monitors_both_count_near_kinks() -> None:
    """Each monitor counts from the same read-only offsets; with no exact kink, NaN and inf entries are
    neither exact nor near, and the scale ignores inf."""
    eps = torch.finfo(torch.float32).eps
    x = torch.tensor([8.0, 0.0, 3 * eps * 8, -4 * eps * 8, 5 * eps * 8, 1.0])
    quiet = torch.tensor([8.0, float("nan"), float("inf"), 3 * eps * 8, -5 * eps * 8])
    with KinkMonitor(near_ulps=5) as outer:
        with KinkMonitor(near_ulps=4) as inner:
            torch.relu(x)
        torch.relu(quiet)
    assert (_one(inner).exact_kinks, _one(inner).near_kinks) == (1, 3)  # 0, 3 and 4 ulps
    counts = sorted((r.elements, r.exact_kinks, r.near_kinks) for r in outer.summary())
    assert counts == [(5, 0, 2), (6, 1, 4)]  # 3 and 5 ulps; 0, 3, 4 and 5 ulps


def test_near_kinks_when_every_nonzero_input_is_nan_or_none_is() -> None:
    with KinkMonitor() as monitor:
        torch.relu(torch.tensor([0.0, float("nan"), -0.0, float("nan")]))
    assert (_one(monitor).exact_kinks, _one(monitor).near_kinks) == (2, 2)
    with KinkMonitor() as monitor:
        torch.relu(torch.zeros(5))
    assert (_one(monitor).exact_kinks, _one(monitor).near_kinks) == (5, 5)


def test_bad_arguments() -> None:
    for bad in (-1, math.inf, math.nan):
        with pytest.raises(ValueError, match="near_ulps must be a finite number"):
            KinkMonitor(near_ulps=bad)
    with pytest.raises(TypeError, match="Module"):
        KinkMonitor(model="features")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"torch\.distributed"):
        KinkMonitor().all_reduce()


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 8),
        nn.Hardtanh(),
        nn.Linear(8, 3),
    )


def _sparse_images(n: int) -> Tensor:
    images = torch.zeros(n, 1, 8, 8)
    images[:, :, 2:6, 3:5] = torch.randint(0, 4, (n, 1, 4, 2)) / 4.0
    return images


def test_gradients_identical_with_and_without_monitor() -> None:
    torch.manual_seed(0)
    model = _cnn()
    x, y = _sparse_images(16), torch.randint(0, 3, (16,))

    def grads(monitor: bool, policy: kinkgrad.kink_policy | None) -> list[Tensor]:
        model.zero_grad()
        with KinkMonitor(model) if monitor else _null(), policy if policy is not None else _null():
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    for policy in (None, kinkgrad.kink_policy(default=1.0, ties="split")):
        plain = grads(False, policy)
        watched = grads(True, policy)
        assert all(torch.equal(a, b) for a, b in zip(plain, watched))
    with KinkMonitor(model) as monitor:
        model(x)
    counts = {r.site: r.exact_kinks for r in monitor.summary()}
    assert counts["1"] > 0  # bias-free convolutions over blank patches give exact zeros


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_max_pool_is_counted_without_a_policy() -> None:
    with KinkMonitor() as monitor:
        F.max_pool2d(torch.zeros(1, 1, 2, 2), 2)
    assert [(r.op, r.exact_kinks) for r in monitor.summary()] == [("max_pool2d", 1)]


def test_direct_kinkgrad_op_is_counted_once() -> None:
    with KinkMonitor() as monitor:
        kinkgrad.nn.ReLU(at_kink=1.0)(torch.zeros(3, requires_grad=True))
    assert [(r.op, r.elements) for r in monitor.summary()] == [("relu", 3)]


def _seeded_input(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> Tensor:
    """Values with many exact zeros, entries within a few ulps of the scale from 0 on both sides, and
    ordinary values: every count is far from 0 and from the total."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    which = torch.rand(shape, generator=g)
    ulps = torch.randint(-6, 7, shape, generator=g).to(torch.float64)
    scale = x.abs().max()
    x = torch.where(which < 0.3, 0.0, torch.where(which < 0.4, ulps * torch.finfo(dtype).eps * scale, x))
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("size", [(3, 70_001), (2**17,)])  # a tail beyond whole blocks; none
def test_large_tensor_counts_match_direct_comparisons(dtype: torch.dtype, size: tuple[int, ...]) -> None:
    """On tensors large enough for the word-wise byte count and the reused buffers, each count equals
    the one computed directly with comparisons in float64, upstream gradients other than 1 and with
    zeros among them."""
    x = _seeded_input(size, dtype, seed=3).requires_grad_()
    upstream = torch.randn(size, generator=torch.Generator().manual_seed(4)).to(dtype)
    upstream[..., ::3] = 0.0
    with KinkMonitor(near_ulps=4) as monitor:
        y = torch.relu(x)
    y.backward(upstream)
    seen = x.detach().double()
    tolerance = 4 * torch.finfo(dtype).eps * seen.abs().max()
    at = seen == 0
    record = _one(monitor)
    assert record.elements == x.numel()
    assert record.exact_kinks == int(at.sum())
    assert record.near_kinks == int((seen.abs() <= tolerance).sum())
    assert record.bifurcating_kinks == int((at & (upstream != 0)).sum())
    assert 0 < record.exact_kinks < record.near_kinks < record.elements


def test_large_tensor_counts_away_from_zero_and_between_two_inputs() -> None:
    """A kink at 0.5 (``clamp_min``), two kinks (``hardtanh``) and ties of ``maximum``: counts equal
    direct comparisons."""
    x = _seeded_input((3 * 70_001,), torch.float32, seed=5)
    other = _seeded_input((3 * 70_001,), torch.float32, seed=6)
    with KinkMonitor(near_ulps=4) as monitor:
        torch.clamp_min(x + 0.5, 0.5)
        F.hardtanh(x + 1.0)
        torch.maximum(x, other)
    records = {r.op: r for r in monitor.summary()}
    eps = torch.finfo(torch.float32).eps

    def expected(distance: Tensor) -> tuple[int, int]:
        finite = distance[torch.isfinite(distance)]
        return int((distance == 0).sum()), int((distance <= 4 * eps * finite.max()).sum())

    shifted = (x + 0.5).double() - 0.5
    moved = (x + 1.0).double()
    both = torch.minimum((moved - 1).abs(), (moved + 1).abs())
    assert (records["clamp_min"].exact_kinks, records["clamp_min"].near_kinks) == expected(shifted.abs())
    assert (records["hardtanh"].exact_kinks, records["hardtanh"].near_kinks) == expected(both)
    assert (records["maximum"].exact_kinks, records["maximum"].near_kinks) == expected(
        (x.double() - other.double()).abs()
    )
    assert all(0 < r.exact_kinks <= r.near_kinks < r.elements for r in records.values())


@pytest.mark.parametrize("start", [0, 1, 8])
@pytest.mark.parametrize("size", [0, 5, 2**16 - 1, 2**16 + 8 * 127 * 3 + 7, 3 * 2**17])
def test_byte_count_of_masks_of_any_size_and_alignment(start: int, size: int) -> None:
    """The word-wise count of a boolean mask equals ``sum`` over its entries, for masks with and without
    a tail beyond whole blocks, views starting at any byte, and non-contiguous masks."""
    from kinkgrad._monitor import _count

    g = torch.Generator().manual_seed(size + start)
    mask = torch.rand(start + size, generator=g) < 0.37
    view = mask[start:]
    assert _count(view) == int(view.sum())
    strided = mask[start::2]
    assert _count(strided) == int(strided.sum())
    assert _count(torch.ones(size, dtype=torch.bool)) == size


def test_sites_come_from_the_stack_without_hooks_on_the_model() -> None:
    class Outside(nn.Module):  # not part of the watched model: its frames are skipped
        def forward(self, x: Tensor) -> Tensor:
            return torch.relu(x)

    class Inner(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.helpers = [Outside()]  # (in a list: not a registered submodule)
            self.scale = nn.Identity()  # (a registered one: Inner is not a leaf)

        def forward(self, x: Tensor) -> Tensor:
            return self.helpers[0](self.scale(x)) + 1.0

    model = nn.Sequential(nn.Identity(), Inner(), nn.ReLU())
    model[2].forward = lambda x: torch.relu(x - 1.0)  # type: ignore[method-assign]  # an instance's own forward
    with KinkMonitor(model) as monitor:
        assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
        model(torch.tensor([0.0, -1.0, 2.0]))
        torch.relu(torch.zeros(2))  # outside every module: the calling line
    sites = [r.site for r in monitor.summary()]
    assert sites[0].startswith("1 @ ") and "test_monitor.py" in sites[0]  # Inner is not a leaf
    assert sites[1] == "2"  # found through Module._call_impl even with a replaced forward
    assert sites[2].rsplit(":", 1)[0].endswith("test_monitor.py") and " @ " not in sites[2]
    assert [r.exact_kinks for r in monitor.summary()] == [1, 2, 2]  # relu of [0, -1, 2], [0, 0, 2], [0, 0]


@pytest.mark.parametrize("rule", [None, "first"])
@pytest.mark.parametrize("specials", [True, False])
def test_pool_counts_equal_the_oracle_in_both_memory_formats(
    rule: str | None, specials: bool, passes: str
) -> None:
    """Exact and bifurcating max-pool counts, contiguous and channels-last, with inf and NaN or without
    (then, contiguous, the pool and its ties come from one compiled pass), against ties counted from the
    windows directly; and the gradient is PyTorch's, bit for bit, double backward included."""
    g = torch.Generator().manual_seed(3)
    x = torch.relu(torch.round(torch.randn(4, 3, 12, 10, generator=g) * 2) / 2)
    if specials:
        x[0, 0, 0, :2] = torch.inf
        x[1, 2, 4, 5] = torch.nan
    windows = x.unfold(2, 2, 2).unfold(3, 2, 2).reshape(4, 3, 6, 5, 4)
    value = F.max_pool2d(x, 2)
    tied = ((windows == value[..., None]) & torch.isfinite(windows)).sum(-1) > 1
    upstream = torch.randn(value.shape, generator=g) * (torch.rand(value.shape, generator=g) > 0.5)
    expected = (value.numel(), int(tied.sum()), int((tied & (upstream != 0)).sum()))
    for layout in (torch.contiguous_format, torch.channels_last):
        inp = x.clone().to(memory_format=layout).requires_grad_()
        policy = kinkgrad.kink_policy(ties=rule) if rule is not None else _null()
        with KinkMonitor() as monitor, policy:
            out = F.max_pool2d(inp, 2)
        one_pass = type(out.grad_fn).__name__ == "_EagerPoolRuleBackward"
        assert one_pass == (not specials and layout == torch.contiguous_format and passes == "compiled")
        cotangent = upstream.clone().requires_grad_()  # double backward: d(grad . w)/d(cotangent)
        weights = torch.randn(x.shape, generator=g)
        (grad,) = torch.autograd.grad(out, inp, cotangent, create_graph=True)
        (second,) = torch.autograd.grad((grad * weights).sum(), cotangent)
        (record,) = monitor.summary()
        assert (record.elements, record.exact_kinks, record.bifurcating_kinks) == expected
        leaf = x.clone().to(memory_format=layout).requires_grad_()
        (plain,) = torch.autograd.grad(F.max_pool2d(leaf, 2), leaf, cotangent, create_graph=True)
        (plain_second,) = torch.autograd.grad((plain * weights).sum(), cotangent)
        assert torch.equal(grad.contiguous().view(torch.uint8), plain.contiguous().view(torch.uint8))
        assert torch.equal(second, plain_second)
    assert 0 < expected[2] < expected[1] < expected[0]


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_nothing_is_counted_inside_torch_compile_whatever_the_backend(backend: str) -> None:
    """The eager backend runs the graph's ``torch`` calls from Python with the monitor's mode still
    active (pytorch/pytorch#196056): those calls are the compiled region's, and are not counted. The
    same monitor counts the eager call beside them."""
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: torch.relu(x).sum(), backend=backend, fullgraph=True)
    x = torch.tensor([0.0, 0.0, 1.0], requires_grad=True)
    with KinkMonitor() as monitor:
        (compiled(x) + torch.relu(x - 1.0).sum()).backward()
    record = _one(monitor)
    assert (record.op, record.calls, record.elements, record.exact_kinks) == ("relu", 1, 3, 1)
