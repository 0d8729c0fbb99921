"""Where trials train: in the search's process, or on Ray workers (`rayexec`).

An executor takes `runner.Task`s and hands back `(task, outcome)` pairs as trials
finish, in the order they finish. The driver (`engine.Search`) asks it how many
trials it can start now (`free`), so that a free worker gets the next point at once
instead of waiting for the slowest trial of a batch. `LocalExecutor` (one worker,
`[execution] workers = 1` without an address) trains the tasks one after another
when their outcomes are asked for, with no Ray import: today's in-process search.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

from ..errors import UsageError
from .runner import Outcome, Runner, Task

if TYPE_CHECKING:
    from .experiment import Experiment


class ExecutionError(UsageError):
    """Trials cannot run where `[execution]` asks: Ray missing, not reachable, or
    without the CPUs or GPUs one trial reserves (exit 2)."""


class Executor(Protocol):
    """Runs trials; the driver is the only one that writes results."""

    #: Whether the driver proposes a stage's whole batch at once (one worker: the
    #: batch's points are chosen together and trained in turn) rather than one point
    #: per free worker.
    batches: bool

    def free(self) -> int:
        """How many more trials can start now."""
        ...

    def running(self) -> list[Task]:
        """The tasks submitted and not yet handed back."""
        ...

    def submit(self, task: Task) -> None:
        """Start (or queue) a task."""
        ...

    def next(self) -> tuple[Task, Outcome]:
        """Wait for a submitted task to finish; its outcome (a worker's death makes a
        failed outcome once retrying does not help)."""
        ...

    def close(self) -> None:
        """Release the workers (a local Ray is shut down)."""
        ...


class LocalExecutor:
    """Trials in the search's own process, one after another."""

    batches = True

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.queue: deque[Task] = deque()

    def free(self) -> int:
        return 0 if self.queue else 1

    def running(self) -> list[Task]:
        return list(self.queue)

    def submit(self, task: Task) -> None:
        self.queue.append(task)

    def next(self) -> tuple[Task, Outcome]:
        task = self.queue.popleft()
        return task, self.runner.evaluate(task)

    def close(self) -> None:
        self.queue.clear()


def make_executor(experiment: Experiment, runner: Runner) -> Executor:
    """The executor `[execution]` asks for: in-process, or Ray workers each holding a
    copy of `runner` (its data put in Ray's object store once)."""
    if not experiment.execution.uses_ray:
        return LocalExecutor(runner)
    try:
        from .rayexec import RayExecutor  # noqa: PLC0415 (Ray only when asked for)
    except ImportError as error:
        raise ExecutionError(
            f"{experiment.path}: [execution] asks for Ray workers, but Ray cannot be imported "
            f"({error}): install it with `pip install 'sparsemod-dsl[ray]'`, or set "
            "execution.workers = 1 without address and gpus_per_trial") from None
    return RayExecutor(experiment, runner)
