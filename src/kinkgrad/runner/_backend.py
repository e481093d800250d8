"""Where units run: the backend interface and the local one (this process, or a pool of processes).

A backend takes unit tasks and yields their outcomes as they finish, in any order. The sweep writes each
outcome to the run folder as soon as it arrives, so whatever finished survives an interruption.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from kinkgrad.runner._unit import UnitOutcome, UnitTask, execute_unit


class Backend(Protocol):
    """Runs unit tasks and yields their outcomes as they complete."""

    @property
    def description(self) -> str:
        """A few words for progress messages ("2 local processes")."""
        ...

    def run(self, tasks: Sequence[UnitTask]) -> Iterator[UnitOutcome]:
        """Yield one outcome per task, in completion order; never raise for a failing unit."""
        ...


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _failed(task: UnitTask, err: BaseException) -> UnitOutcome:
    return UnitOutcome(task.key, task.setting, task.seed, error=f"{type(err).__name__}: {err}")


@dataclass(frozen=True)
class LocalBackend:
    """Run units in this process (``workers=1``) or in a pool of ``workers`` spawned processes.

    Each worker process gets ``cpu_count // workers`` PyTorch threads so the pool does not oversubscribe the
    machine. Spawned workers import the experiment's module by name, so experiments must live in importable
    modules (not in an interactive session).

    Example:
        >>> LocalBackend(workers=2).description
        '2 local processes'
    """

    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")

    @property
    def description(self) -> str:
        return "this process" if self.workers == 1 else f"{self.workers} local processes"

    def run(self, tasks: Sequence[UnitTask]) -> Iterator[UnitOutcome]:
        if self.workers == 1 or len(tasks) <= 1:
            for task in tasks:
                yield execute_unit(task)
            return
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        pool = cf.ProcessPoolExecutor(
            max_workers=min(self.workers, len(tasks)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads,),
        )
        interrupted = True
        try:
            futures = {pool.submit(execute_unit, task): task for task in tasks}
            for future in cf.as_completed(futures):
                try:
                    yield future.result()
                except Exception as err:  # a worker died (killed, out of memory): retry on the next run
                    yield _failed(futures[future], err)
            interrupted = False
        finally:
            pool.shutdown(wait=not interrupted, cancel_futures=True)
