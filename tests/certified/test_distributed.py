"""Data parallel: the DDP-averaged certified gradient equals the single-process certified gradient of
the whole batch (every rank draws the same direction from the shared seed)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from kinkgrad import clarke_backward

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_two_gloo_ranks_match_single_process(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from ddp_worker import build

    out = tmp_path / "grads.pt"
    worker = Path(__file__).with_name("ddp_worker.py")
    subprocess.run([sys.executable, str(worker), str(_free_port()), str(out)], check=True, timeout=240)
    distributed = torch.load(out)
    model, x, y = build()
    clarke_backward(lambda: nn.functional.cross_entropy(model(x), y), model, seed=3)
    plain_model, _, _ = build()
    nn.functional.cross_entropy(plain_model(x), y).backward()
    assert any(
        not torch.allclose(p.grad, q.grad) for p, q in zip(plain_model.parameters(), model.parameters())
    ), "the batch hits no kink that matters: the test would prove nothing"
    for d, p in zip(distributed, model.parameters()):
        torch.testing.assert_close(d, p.grad, rtol=1e-12, atol=1e-12)


def test_ddp_ranks_with_different_seeds_are_refused(tmp_path: Path) -> None:
    """kinkgrad's direction is compared across ranks by its seed and shapes (nothing is drawn for the
    check): ranks passing different seeds get a clear error, not silently different directions."""
    out = tmp_path / "error.pt"
    worker = Path(__file__).with_name("ddp_worker.py")
    subprocess.run(
        [sys.executable, str(worker), str(_free_port()), str(out), "mismatch"], check=True, timeout=240
    )
    message = torch.load(out)
    assert isinstance(message, str) and "differs across data-parallel ranks" in message
