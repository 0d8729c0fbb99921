"""Trials on Ray workers: a local Ray the search starts and stops, or a cluster.

Each worker is a Ray actor holding a copy of the search's `runner.Runner` (compiled
space, prepared data, trainer), sent once through Ray's object store: the dataset
function runs once, in the driver, never once per trial, and no filesystem is shared.
A worker trains one task at a time and returns its outcome, trained weights included;
the driver alone writes the journal and the results directory.

A worker that dies mid-trial (its process killed, its node lost) is replaced and
the trial is tried once more on the new worker; a second death makes the trial
failed, with the reason, and the search goes on.
"""

from __future__ import annotations

import os
import pickle
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import (
    NodeDiedError,
    ObjectLostError,
    RayActorError,
    RayError,
    WorkerCrashedError,
)

from .execution import ExecutionError
from .runner import Outcome, Runner, Task

if TYPE_CHECKING:
    from .experiment import Experiment

#: Tries of a trial whose worker dies: the first and one retry.
TRIES = 2
#: What a worker's death looks like to the driver.
DEATHS = (RayActorError, WorkerCrashedError, NodeDiedError, ObjectLostError)


@ray.remote(max_restarts=0)
class Worker:
    """One trial at a time, with the runner it was given."""

    def __init__(self, runner: bytes, folder: str, threads: int) -> None:
        import torch  # noqa: PLC0415

        torch.set_num_threads(threads)
        sys.path.insert(0, folder)  # a dataset or trainer module beside the experiment file
        self.runner: Runner = pickle.loads(runner)

    def evaluate(self, task: Task) -> Outcome:
        return self.runner.evaluate(task)


class RayExecutor:
    """`[execution] workers` Ray actors, each training one trial at a time."""

    batches = False

    def __init__(self, experiment: Experiment, runner: Runner) -> None:
        settings = experiment.execution
        _connect(experiment)
        if settings.gpus_per_trial > 0 and not experiment.device.startswith("cuda"):
            runner = _on_gpu(runner)
        self._check_resources(experiment)
        self.blob = ray.put(pickle.dumps(runner))
        self.options = {"num_cpus": settings.cpus_per_trial, "num_gpus": settings.gpus_per_trial}
        self.folder = str(experiment.path.parent)
        self.threads = max(1, int(settings.cpus_per_trial))
        self.workers = [self._worker() for _ in range(settings.workers)]
        self.idle = list(self.workers)
        #: In-flight calls: the object ref -> (task, worker, tries so far).
        self.calls: dict[Any, tuple[Task, Any, int]] = {}

    def _worker(self) -> Any:
        return Worker.options(**self.options).remote(self.blob, self.folder, self.threads)

    def _check_resources(self, experiment: Experiment) -> None:
        """Refuse a trial shape the cluster can never place (e.g. GPUs where none are)."""
        settings, have = experiment.execution, ray.cluster_resources()
        for name, asked in (("CPU", settings.cpus_per_trial), ("GPU", settings.gpus_per_trial)):
            if asked > have.get(name, 0.0):
                self.close()
                raise ExecutionError(
                    f"{experiment.path}: execution.{name.lower()}s_per_trial = {asked:g}, but "
                    f"the Ray cluster has {have.get(name, 0.0):g} {name}s in all")

    def free(self) -> int:
        return len(self.idle)

    def running(self) -> list[Task]:
        return [task for task, _, _ in self.calls.values()]

    def submit(self, task: Task, tries: int = 0) -> None:
        worker = self.idle.pop()
        self.calls[worker.evaluate.remote(task)] = (task, worker, tries + 1)

    def next(self) -> tuple[Task, Outcome]:
        while True:
            [ref], _ = ray.wait(list(self.calls), num_returns=1)
            task, worker, tries = self.calls.pop(ref)
            try:
                outcome: Outcome = ray.get(ref)
            except DEATHS as error:
                self._replace(worker)
                if tries < TRIES:
                    self.submit(task, tries)
                    continue
                return task, Outcome("failed", f"its Ray worker died {tries} times, the last "
                                     f"because: {_first_line(error)}")
            except RayError as error:
                self.idle.append(worker)
                return task, Outcome("failed", f"Ray could not run it: {_first_line(error)}")
            self.idle.append(worker)
            return task, outcome

    def _replace(self, dead: Any) -> None:
        self.workers.remove(dead)
        fresh = self._worker()
        self.workers.append(fresh)
        self.idle.append(fresh)

    def close(self) -> None:
        for worker in getattr(self, "workers", ()):
            ray.kill(worker)
        self.calls = {}
        if ray.is_initialized():
            ray.shutdown()


def _connect(experiment: Experiment) -> None:
    """Join `execution.address`, or start a local Ray sized for the workers (bound to
    127.0.0.1; never a cluster that `ray start` left running here)."""
    settings = experiment.execution
    quiet = {"log_to_driver": False, "logging_level": "ERROR", "include_dashboard": False}
    try:
        if settings.address is not None:
            ray.init(address=settings.address, log_to_driver=False, logging_level="ERROR")
            return
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        gpus = _local_gpus() if settings.gpus_per_trial else 0
        ray.init(address="local",
                 num_cpus=max(1, round(settings.workers * settings.cpus_per_trial + 0.499)),
                 num_gpus=gpus, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = settings.address or "a local Ray"
        raise ExecutionError(f"{experiment.path}: execution: cannot start or join {where}: "
                            f"{_first_line(error)}") from None


def _local_gpus() -> int:
    import torch  # noqa: PLC0415

    return torch.cuda.device_count()


def _on_gpu(runner: Runner) -> Runner:
    """The runner training on the GPU Ray gives its worker (`gpus_per_trial` > 0 with
    the default `device = "cpu"`)."""
    return Runner(replace(runner.config, device="cuda"), runner.space, runner.data,
                  runner.trainer, runner.pricer)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:500]
