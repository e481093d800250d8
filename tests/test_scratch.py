"""Reusable temporaries: shapes, reuse, and the size above which a buffer serves one call only."""

from __future__ import annotations

import time

import pytest
import torch

from kinkgrad import _scratch
from kinkgrad._scratch import scratch


def test_scratch_is_shaped_like_its_argument_and_reused() -> None:
    x = torch.randn(4, 5).t()  # non-contiguous: the buffer is contiguous in x's logical shape
    first = scratch(x)
    assert first.shape == x.shape and first.dtype == x.dtype and first.is_contiguous()
    second = scratch(torch.randn(3, 3))  # smaller: the same storage
    assert second.untyped_storage().data_ptr() == first.untyped_storage().data_ptr()
    flags = scratch(x, torch.bool).copy_(x)
    assert flags.dtype == torch.bool and torch.equal(flags, x != 0)
    assert flags.untyped_storage().data_ptr() != first.untyped_storage().data_ptr()  # one buffer per dtype


def test_large_buffers_serve_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_scratch, "KEEP_BYTES", 64)
    monkeypatch.setattr(_scratch._local, "pools", {}, raising=False)
    big = torch.zeros(100)
    a, b = scratch(big), scratch(big)  # 400 bytes: each call gets its own (a is still alive here)
    assert a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr()
    small = torch.zeros(8)  # 32 bytes: kept
    c, d = scratch(small), scratch(small)
    assert c.untyped_storage().data_ptr() == d.untyped_storage().data_ptr()


def test_views_by_shape_follow_the_buffer_as_it_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_scratch._local, "pools", {}, raising=False)
    small = scratch(torch.zeros(2, 3))
    assert scratch(torch.ones(2, 3)) is small  # the same shape again: the same view, no tensor op
    big = scratch(torch.zeros(50))
    again = scratch(torch.zeros(2, 3))  # now a view of the grown buffer
    assert again.shape == (2, 3)
    assert again.untyped_storage().data_ptr() == big.untyped_storage().data_ptr()
    assert again.untyped_storage().data_ptr() != small.untyped_storage().data_ptr()
    for n in range(1, 2 * _scratch._MAX_VIEWS):  # many shapes: the remembered views are bounded
        assert scratch(torch.zeros(n % 50 + 1, 1)).shape == (n % 50 + 1, 1)
    current = _scratch._local.pools[(torch.float32, torch.device("cpu"))].current
    assert current is not None and len(current.views) <= _scratch._MAX_VIEWS


def test_a_view_resized_by_an_out_argument_is_not_handed_out_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_scratch._local, "pools", {}, raising=False)
    view = scratch(torch.zeros(2, 3))
    with pytest.warns(UserWarning, match="resize"):
        torch.add(torch.zeros(3), 1.0, out=view)  # a caller's mistake: out= of another shape
    assert view.shape == (3,)
    assert scratch(torch.zeros(2, 3)).shape == (2, 3)


def test_a_kept_view_is_never_handed_out_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_scratch._local, "pools", {}, raising=False)
    mask = scratch(torch.zeros(4, 5), torch.bool).fill_(True)
    kept = _scratch.keep(mask)
    assert kept is mask
    other = scratch(torch.zeros(4, 5), torch.bool).fill_(False)  # a new buffer: the kept one is intact
    assert other.untyped_storage().data_ptr() != kept.untyped_storage().data_ptr()
    assert bool(kept.all())
    again = scratch(torch.zeros(4, 5), torch.bool)  # and the new buffer is reused as before
    assert again.untyped_storage().data_ptr() == other.untyped_storage().data_ptr()
    floats = scratch(torch.zeros(3))
    _scratch.keep(torch.zeros(3))  # not a scratch tensor: the pools are left as they are
    assert scratch(torch.zeros(3)).untyped_storage().data_ptr() == floats.untyped_storage().data_ptr()


def test_a_small_view_of_a_large_buffer_is_kept_as_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_scratch._local, "pools", {}, raising=False)
    large = scratch(torch.zeros(100), torch.bool)
    small = scratch(torch.zeros(10), torch.bool).fill_(True)
    kept = _scratch.keep(small)
    assert kept is not small and torch.equal(kept, small)  # a copy: the large buffer stays in the pool
    assert kept.untyped_storage().data_ptr() != large.untyped_storage().data_ptr()
    assert (
        scratch(torch.zeros(100), torch.bool).untyped_storage().data_ptr()
        == large.untyped_storage().data_ptr()
    )


def test_a_kept_buffer_returns_to_service_once_no_tensor_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_scratch._local, "pools", {}, raising=False)
    like = torch.zeros(4, 5)
    kept = _scratch.keep(scratch(like, torch.bool).fill_(True))
    lent = kept.untyped_storage().data_ptr()
    saved = kept[1:]  # a view keeps the buffer in use too
    del kept
    second = _scratch.keep(scratch(like, torch.bool).fill_(False))  # in use: a new buffer
    assert second.untyped_storage().data_ptr() != lent
    assert bool(saved.all())
    del saved
    third = scratch(like, torch.bool)  # the first buffer is free again: taken back, not allocated anew
    assert third.untyped_storage().data_ptr() == lent
    assert not bool(second.any())  # (the second, still kept, is untouched)
    assert scratch(torch.zeros(40), torch.bool).untyped_storage().data_ptr() != lent  # too small: a new one


def test_cpu_buffers_are_mapped_apart_from_the_heap() -> None:
    import mmap

    buffer = _scratch._allocate(1000, torch.float32, torch.device("cpu"))
    assert buffer.shape == (1000,) and buffer.dtype == torch.float32
    assert buffer.data_ptr() % mmap.PAGESIZE == 0  # a mapping starts on a page
    buffer.fill_(2.5)
    assert float(buffer.sum()) == 2500.0
    assert _scratch._allocate(0, torch.bool, torch.device("cpu")).numel() == 0


def test_mapped_bytes_are_counted_while_a_buffer_lives(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    monkeypatch.setattr(_scratch._local, "pools", {}, raising=False)
    gc.collect()
    _scratch.Mapped.reset(record=True)
    before, start = _scratch.Mapped.live, time.time_ns()
    view = scratch(torch.zeros(1000))  # 4000 bytes, mapped
    assert _scratch.Mapped.live == before + 4000
    kept = _scratch.keep(view)
    _scratch.release()
    assert _scratch.Mapped.live == before + 4000  # still used by the kept view
    del view, kept
    gc.collect()
    assert _scratch.Mapped.live == before
    assert _scratch.Mapped.peak == before + 4000
    events = _scratch.Mapped.events
    assert events is not None and [size for _, size in events] == [4000, -4000]
    assert start <= events[0][0] <= events[1][0] <= time.time_ns()  # (the profiler's clock)
    _scratch.Mapped.reset()
    assert _scratch.Mapped.events is None


def test_the_lent_buffers_watched_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_scratch._local, "pools", {}, raising=False)
    monkeypatch.setattr(_scratch, "MAX_LENT", 3)
    monkeypatch.setattr(_scratch, "MAX_LENT_BYTES", 4 * 400)
    like = torch.zeros(100)
    kept = [_scratch.keep(scratch(like)) for _ in range(5)]  # 400 bytes each
    pool = _scratch._local.pools[(torch.float32, torch.device("cpu"))]
    watched = [b.address for b in pool.lent]
    assert watched == [k.untyped_storage().data_ptr() for k in kept[-3:]]  # the newest three
    assert pool.lent_bytes == 3 * 400
    monkeypatch.setattr(_scratch, "MAX_LENT_BYTES", 2 * 400)
    _scratch.keep(scratch(like))
    assert len(pool.lent) == 2 and pool.lent_bytes == 2 * 400


def test_a_training_loop_reuses_its_kink_masks(monkeypatch: pytest.MonkeyPatch, relu_path: str) -> None:
    import kinkgrad

    monkeypatch.setattr(_scratch._local, "pools", {}, raising=False)
    made: list[torch.dtype] = []
    allocate = _scratch._allocate
    monkeypatch.setattr(
        _scratch, "_allocate", lambda n, dtype, *rest: made.append(dtype) or allocate(n, dtype, *rest)
    )
    layers: list[torch.nn.Module] = []
    inputs = 8
    for width in (30, 20, 40, 10) * 5:  # twenty ReLUs of four sizes, each meeting exact zeros
        layers += [torch.nn.Linear(inputs, width, bias=False), torch.nn.ReLU()]
        inputs = width
    model = torch.nn.Sequential(*layers)
    x = torch.randn(16, 8)
    x[:4] = 0  # rows of zeros: every ReLU input has exact zeros (no bias)
    steps = []
    for _ in range(3):
        with kinkgrad.kink_policy(default=0.5):
            model(x).sum().backward()
        steps.append(len(made))
    assert steps[0] >= 20  # a mask kept per ReLU in the first step
    assert torch.float32 in made  # and the rules' gradients (the backward's outputs) are pooled too
    assert steps[2] == steps[1] == steps[0]  # the same buffers in the next steps


def test_a_pooled_gradient_in_use_is_never_overwritten(
    monkeypatch: pytest.MonkeyPatch, relu_path: str
) -> None:
    """A relu rule's gradient lives in a pooled buffer: one the caller still holds (here a leaf's .grad,
    which autograd may take as it is) is not handed out again, and the next step's lands elsewhere."""
    import kinkgrad

    monkeypatch.setattr(_scratch._local, "pools", {}, raising=False)
    x = torch.tensor([0.0, 1.0, -1.0, 0.0] * 256, requires_grad=True)
    grads = []
    for upstream in (2.0, 3.0, 5.0):
        with kinkgrad.kink_policy(relu=0.5):
            torch.relu(x).backward(torch.full_like(x, upstream))
        grads.append(x.grad)
        x.grad = None
    for g, upstream in zip(grads, (2.0, 3.0, 5.0)):
        assert torch.equal(g, torch.tensor([0.5 * upstream, upstream, 0.0, 0.5 * upstream] * 256))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_writes_its_own_copy_of_a_buffer() -> None:
    import os

    buffer = _scratch._allocate(4096, torch.float32, torch.device("cpu")).fill_(1.0)
    pid = os.fork()
    if pid == 0:  # the child: write, then leave without running anything else
        buffer.fill_(7.0)
        os._exit(0 if float(buffer[0]) == 7.0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert bool((buffer == 1.0).all())  # the parent's memory is untouched


def test_a_growing_buffer_lets_the_smaller_one_go_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    monkeypatch.setattr(_scratch._local, "pools", {}, raising=False)
    gc.collect()
    before = _scratch.Mapped.live
    scratch(torch.zeros(1000))
    _scratch.Mapped.reset()
    scratch(torch.zeros(3000))  # 12000 bytes replace 4000: at most 12000 mapped at once
    assert _scratch.Mapped.peak == _scratch.Mapped.live == before + 12000


def test_a_buffer_set_aside_for_a_reclaimed_one_is_reclaimed_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_scratch._local, "pools", {}, raising=False)
    made: list[int] = []
    allocate = _scratch._allocate
    monkeypatch.setattr(_scratch, "_allocate", lambda n, *rest: made.append(n) or allocate(n, *rest))
    big, small = torch.zeros(100), torch.zeros(10)
    mask = _scratch.keep(scratch(big))  # a large mask kept for backward
    scratch(small)  # then a small pass: a small buffer in service
    del mask  # backward has freed the mask
    kept = _scratch.keep(scratch(big))  # the next step: the large buffer is taken back...
    scratch(small)  # ...and the small one, set aside for it, serves the small pass again
    assert made == [100, 10] and kept.shape == (100,)


def test_release_buffers_gives_back_what_a_training_step_keeps(
    monkeypatch: pytest.MonkeyPatch, relu_path: str
) -> None:
    """After a step under a policy, kinkgrad keeps mask and gradient buffers for the next one; the public
    ``release_buffers`` lets them go (once no tensor uses them)."""
    import gc

    import kinkgrad

    monkeypatch.setattr(_scratch._local, "pools", {}, raising=False)
    gc.collect()
    before = _scratch.Mapped.live
    model = torch.nn.Sequential(torch.nn.Linear(8, 64, bias=False), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    x = torch.randn(32, 8)
    x[:8] = 0  # exact kinks at every ReLU input of these rows
    with kinkgrad.kink_policy(default=0.5):
        model(x).sum().backward()
    gc.collect()
    assert _scratch.Mapped.live > before  # kept for the next step
    kinkgrad.release_buffers()
    gc.collect()
    assert _scratch.Mapped.live == before
