"""Training and measuring one point: what a worker does for a trial.

The search's driver (`engine.Search`) decides which points to train and is the one
writer of the journal and the results directory; a `Runner` only trains and measures.
It gets a `Task` (the point, its epochs, its parent's weights for a morphism) and
returns an `Outcome` (status, reason, measurements, the trained float weights), so
that it can run in the driver's process (`execution.LocalExecutor`) or in a Ray worker
on another machine (`rayexec.RayExecutor`) with nothing shared but what travels.

Randomness: a trial's trainings are seeded by the experiment seed and the trial id
(`trial_seed`), before the network is built, so that its initial weights, batch
order, dropout and calibration are the same in every run of the same experiment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from ..nets.cost import cost
from ..nets.morph import inherit
from ..nets.point import Point
from ..space import Space
from .data import DataBundle
from .experiment import Experiment
from .prepare import clip
from .pricing import Pricer
from .resize import Resizer
from .scoring import Scored, runs
from .train import TrainConfig, Trainer, TrainingError, TrainResult, batches, evaluate
from .trials import failure

#: A network's float weights, as `state_dict()` gives them.
Weights = Mapping[str, Any]


@dataclass(frozen=True)
class Task:
    """One trial to train: its id, point and epochs, and (for a morphism's child) the
    weights of the parent network it starts from."""

    trial: int
    point: Point
    epochs: int
    parent_weights: Weights | None = None


@dataclass
class Outcome:
    """What one trial produced: a status, a reason, measurements (journal units) and,
    when completed, the first training's float weights (the network the search saves)."""

    status: str
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    weights: Weights | None = None


def trial_seed(experiment: Experiment, trial_id: int) -> int:
    """The seed of a trial's first training (a `[scoring]` run adds its offset)."""
    return experiment.seed + trial_id


class Runner:
    """Trains and measures points of one compiled space on one dataset."""

    def __init__(self, experiment: Experiment, space: Space, data: DataBundle,
                 trainer: Trainer, pricer: Pricer) -> None:
        self.config = experiment
        self.space = space
        self.program = space.program
        self.data = data
        self.trainer = trainer
        self.pricer = pricer
        self.resizer = Resizer(data)

    def evaluate(self, task: Task) -> Outcome:
        """Train and measure a task's point; whatever the user's code raises makes a
        failed outcome with the reason."""
        try:  # user code runs here (trainer, dataset, collate): anything may be raised
            scored = self.score(task)
        except (Exception, SystemExit) as error:
            return Outcome("failed", failure(error))
        return Outcome("completed", metrics=scored.metrics(),
                       weights={k: v.detach().cpu()
                                for k, v in scored.first.float_model.state_dict().items()})

    def score(self, task: Task) -> Scored:
        """Train a point once per run of `[scoring]` (`scoring.runs`), and measure it."""
        seed = trial_seed(self.config, task.trial)
        trainings = [self.train(task.point, task.epochs, task.parent_weights, seed + offset, data)
                     for data, offset in runs(self.data_for(task.point), self.config.scoring,
                                              self.config.seed)]
        sparse = trainings[0][0].sparsity if self.pricer.sparse_flash else 0.0
        return Scored(trainings, cost(self.program, task.point, self.pricer.target,
                                      self.pricer.precision, sparse))

    def train(self, point: Point, epochs: int, parent_weights: Weights | None, seed: int,
              data: DataBundle) -> tuple[TrainResult, float]:
        """Build and train one point on `data` (from its parent's weights, if any), the
        network's initial weights drawn from `seed`: its training result and test error."""
        training = self.config.training
        torch.manual_seed(seed)
        net = self.space.build(point)
        if parent_weights is not None:
            inherit(net, parent_weights)
        config = TrainConfig.from_point(
            point, epochs, training.pruning, training.quantization, self.config.device, seed,
        )
        config = clip(config, data)
        result = self.trainer(net, data, config)
        if not isinstance(result, TrainResult):
            raise TrainingError(f"the trainer returned {type(result).__name__}, not a "
                                "TrainResult")
        test_error = evaluate(result.model, batches(data.test, data, config, False), data.measure)
        return result, test_error

    def data_for(self, point: Point) -> DataBundle:
        """The data at the point's input size: resized once per searched resolution."""
        if not self.program.input.searched:
            return self.data
        return self.resizer(self.space.trace_input(point))
