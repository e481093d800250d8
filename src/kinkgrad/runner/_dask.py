"""Run units on a Dask distributed cluster (optional extra: ``pip install 'kinkgrad[dask]'``).

``kinkgrad run NAME --backend dask --scheduler ADDRESS`` sends every unfinished (setting, seed) unit to the
scheduler at ``ADDRESS`` (``tcp://host:8786``, or the path of a scheduler file). Workers need kinkgrad and
the experiment's module importable; the client (the machine running ``kinkgrad run``) receives the records
and writes the run folder, so workers need no shared file system. Finished units are written as they
arrive: an interrupted sweep resumes like a local one.

On a SLURM cluster, dask-jobqueue starts the workers as batch jobs. Start a scheduler and workers from a
small script on the login node, then point ``kinkgrad run`` at it::

    # cluster.py  (pip install dask-jobqueue)
    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=4, processes=4, memory="16GB", walltime="02:00:00",
                           job_extra_directives=["--partition=cpu"])
    cluster.scale(jobs=8)                      # eight SLURM jobs, four one-thread workers each
    print(cluster.scheduler_address)           # e.g. tcp://10.0.0.5:8786
    input("press Enter to stop the cluster")

    $ python cluster.py &
    $ kinkgrad run relu-prime --backend dask --scheduler tcp://10.0.0.5:8786

Alternatively run ``dask scheduler --scheduler-file ~/sched.json`` in one job, ``dask worker
--scheduler-file ~/sched.json --nthreads 1`` in an array job, and pass ``--scheduler ~/sched.json``.

Give each Dask worker one thread (``processes`` equal to ``cores`` above, or ``--nthreads 1``): a unit
seeds the global Python, NumPy and PyTorch generators, which threads of one process share.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kinkgrad.runner._unit import UnitOutcome, UnitTask, execute_unit


class DaskNotInstalledError(ValueError):
    """``--backend dask`` without the ``dask[distributed]`` package."""


def _distributed() -> Any:
    try:
        import distributed
    except ModuleNotFoundError:
        raise DaskNotInstalledError(
            "the dask backend needs dask.distributed: pip install 'kinkgrad[dask]'"
        ) from None
    return distributed


class DaskBackend:
    """Run units on the Dask scheduler at ``scheduler`` (an address, a scheduler file, or a ``Client``).

    A client made from an address or file is created for each sweep and closed after it; a ``Client`` you
    pass in stays open.
    """

    def __init__(self, scheduler: Any) -> None:
        _distributed()
        if isinstance(scheduler, str) and not scheduler.strip():
            raise ValueError(
                "the dask backend needs --scheduler ADDRESS (tcp://host:8786 or a scheduler file)"
            )
        self._scheduler = scheduler

    @property
    def description(self) -> str:
        where = self._scheduler if isinstance(self._scheduler, str) else "a Dask client"
        return f"Dask scheduler {where}"

    def _client(self) -> tuple[Any, bool]:
        distributed = _distributed()
        if not isinstance(self._scheduler, str):
            return self._scheduler, False
        try:
            if Path(self._scheduler).is_file():
                return distributed.Client(scheduler_file=self._scheduler, set_as_default=False), True
            return distributed.Client(self._scheduler, set_as_default=False, timeout="20s"), True
        except (OSError, TimeoutError) as err:
            raise ValueError(f"cannot reach the Dask scheduler at {self._scheduler!r}: {err}") from None

    def run(self, tasks: Sequence[UnitTask]) -> Iterator[UnitOutcome]:
        distributed = _distributed()
        client, owned = self._client()
        try:
            futures = {client.submit(execute_unit, task, pure=False): task for task in tasks}
            with client.as_current():
                completed = distributed.as_completed(list(futures))
            for future in completed:
                task = futures[future]
                try:
                    yield future.result()
                except Exception as err:  # the worker died or the task was lost
                    yield UnitOutcome(task.key, task.setting, task.seed, error=f"{type(err).__name__}: {err}")
                future.release()
        finally:
            if owned:
                client.close()
