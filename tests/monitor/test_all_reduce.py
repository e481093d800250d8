"""KinkMonitor.all_reduce over two gloo processes on localhost."""

from __future__ import annotations

import ast
import os
import socket
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from kinkgrad._monitor import KinkMonitor


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, out: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    x = torch.zeros(3 + rank, requires_grad=True)  # rank 0: 3 zeros, rank 1: 4 zeros
    with KinkMonitor() as monitor:
        y = torch.relu(x)
        if rank == 1:
            torch.clamp(torch.tensor([0.0, 1.0]), min=0.0)  # a site rank 0 never meets
    y.backward(torch.arange(3.0 + rank))  # the first zero gets no cotangent
    records = monitor.all_reduce()
    rows = [(r.op, r.elements, r.exact_kinks, r.bifurcating_kinks) for r in records]
    Path(out, f"{rank}.txt").write_text(repr(rows))
    dist.barrier()  # no rank tears gloo down while the other still talks to it
    dist.destroy_process_group()
    # Leave without the interpreter's teardown (as tests/certified/ddp_worker.py): gloo's threads can
    # outlive their owners there and abort the process ("terminate called without an active exception",
    # SIGABRT), seen on a loaded machine. An error above still fails the test through the spawn.
    os._exit(0)


def test_all_reduce_sums_over_two_gloo_ranks() -> None:
    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(_worker, args=(_free_port(), out), nprocs=2, start_method="spawn", join=True)
        results = [Path(out, f"{rank}.txt").read_text() for rank in range(2)]
    assert results[0] == results[1]
    rows = ast.literal_eval(results[0])  # one relu site on both ranks; the clamp site on rank 1 only
    assert ("relu", 7, 7, 5) in rows
    assert ("clamp", 2, 1, 0) in rows
