"""Run by test_distributed.py: two gloo ranks, each certifies on half the batch under DDP."""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from kinkgrad import clarke_backward


def build() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.round(p * 4) / 4)
    x = torch.round(torch.rand(8, 4, dtype=torch.float64) * 2) / 2
    x[1] = x[0]  # both ranks get a sample that puts every first-layer unit exactly at its kink
    with torch.no_grad():
        model[0].bias.copy_(-(model[0].weight @ x[0]))
    y = torch.arange(8) % 3
    return model, x, y


def worker(rank: int, world: int, port: int, out: str, mismatch: bool) -> None:
    """Certify on this rank's half; with ``mismatch``, each rank passes its own seed (an error), and
    rank 0 saves the error message instead of the gradients."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    model, x, y = build()
    ddp = DistributedDataParallel(model)
    xs, ys = x[rank::world], y[rank::world]
    seed = 3 + rank if mismatch else 3
    try:
        clarke_backward(lambda: nn.functional.cross_entropy(ddp(xs), ys), ddp, seed=seed)
    except ValueError as err:
        if rank == 0:
            torch.save(str(err), out)
    else:
        if rank == 0:
            torch.save([p.grad for p in model.parameters()], out)
    dist.barrier()  # neither rank tears gloo down while the other still talks to it
    dist.destroy_process_group()
    # Leave without the interpreter's teardown: gloo's threads can outlive their owners there and
    # abort the process ("terminate called without an active exception"), about one run in ten.
    os._exit(0)


if __name__ == "__main__":
    port, out = int(sys.argv[1]), sys.argv[2]
    mp.spawn(worker, args=(2, port, out, sys.argv[3:] == ["mismatch"]), nprocs=2)
