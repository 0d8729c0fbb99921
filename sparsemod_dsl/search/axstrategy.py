"""The Ax-based strategies (`ax`, `gp`, `sobol`), and `Strategy`, the base of all.

Every trial is kept in an Ax experiment over the flat Ax space (`nets.axspace`):
Sobol draws are seeded by its size, and `ax` and `gp` fit Ax's BoTorch generator
(qLogNEHVI) to it. `exactstrategy.ExactStrategy` builds on the same base for its
Sobol stage. `strategy` says how the strategies differ and picks one by name.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import pandas as pd

from ..lang import ir
from ..nets import axspace
from ..nets.point import Point, active
from .feasible import fill, repaired
from .pricing import Pricer, key
from .trials import Trial

#: Acquisition optimiser settings of the `gp` strategy: Ax's defaults spend minutes
#: per batch on two cores for a few dozen parameters; these keep a batch to seconds.
ACQUISITION = {
    "num_restarts": 2,
    "raw_samples": 128,
    "options": {"maxiter_alternating": 2, "maxiter_continuous": 20, "maxiter_discrete": 2,
                "maxiter_init": 20},
}
#: Even cheaper settings for tests (`fast=True`).
FAST_ACQUISITION = {
    "num_restarts": 1,
    "raw_samples": 16,
    "options": {"maxiter_alternating": 1, "maxiter_continuous": 5, "maxiter_discrete": 1,
                "maxiter_init": 5},
}


class Strategy:
    """The `ax` strategy (or `gp` with `ACQUISITION` settings); the base of the others.

    It keeps every trial in an Ax experiment: Sobol draws are seeded by their count,
    and the model-based strategies fit Ax's BoTorch generator to it.
    """

    name = "ax"

    def __init__(self, program: ir.Program, objectives: Sequence[str], pricer: Pricer,
                 seed: int, acquisition: dict[str, Any] | None = None) -> None:
        self.program = program
        self.objectives = list(objectives)
        self.pricer = pricer
        self.seed = seed
        self.acquisition = acquisition
        self.ax = self._ax_experiment()
        self.completed = 0
        self.tried: set[str] = set()
        #: The points of completed trials (they fit), and the calls for points since the
        #: last trial (so that a call after an empty one draws others, and a resumed
        #: search draws as the uninterrupted one): what `feasible.fill` uses.
        self.fitting: list[Point] = []
        self.calls = 0
        #: Why the last point passed over was not proposed (for the search's messages).
        self.last_rejection: str | None = None
        #: Where to say that the strategy had to fall back on something simpler.
        self.report: Callable[[str], None] = lambda _: None
        #: The points of trials in flight while proposing (`pending`).
        self.in_flight: list[Point] = []

    @contextmanager
    def pending(self, points: Sequence[Point]) -> Iterator[None]:
        """Propose, within the body, knowing that `points` are being trained: none is
        proposed again, and a model-based strategy conditions on them as a batch's
        earlier picks (the exact strategy believes their predicted errors)."""
        keys = {key(active(self.program, p)) for p in points} - self.tried
        self.tried |= keys
        self.in_flight = [active(self.program, p) for p in points]
        try:
            yield
        finally:
            self.tried -= keys
            self.in_flight = []

    def _ax_experiment(self) -> Any:
        from ax.core.experiment import Experiment as AxExperiment
        from ax.core.objective import Objective
        from ax.core.optimization_config import (
            MultiObjectiveOptimizationConfig,
            OptimizationConfig,
        )

        objective = Objective(
            expression=", ".join(f"-{o}" for o in self.objectives),
            metric_name_to_signature={o: o for o in self.objectives},
        )
        config_type = (
            OptimizationConfig if len(self.objectives) == 1 else MultiObjectiveOptimizationConfig
        )
        return AxExperiment(
            search_space=axspace.search_space(self.program),
            name=self.program.name,
            optimization_config=config_type(objective=objective),
        )

    def observe(self, trial: Trial) -> None:
        """Take in a finished trial; only completed ones carry data."""
        from ax.core.arm import Arm
        from ax.core.data import Data

        self.tried.add(key(active(self.program, trial.params)))
        self.calls = 0
        ax_trial = self.ax.new_trial()
        ax_trial.add_arm(Arm(parameters=axspace.to_ax(trial.params, self.program)))
        ax_trial.mark_running(no_runner_required=True)
        if trial.status != "completed":
            ax_trial.mark_failed()
            return
        self.completed += 1
        self.fitting.append(active(self.program, trial.params))
        rows = [
            {"arm_name": ax_trial.arm.name, "metric_name": o, "metric_signature": o,
             "mean": float(trial.objective(o)), "sem": 0.0,  # type: ignore[arg-type]
             "trial_index": ax_trial.index}
            for o in self.objectives
        ]
        self.ax.attach_data(Data(df=pd.DataFrame(rows)))
        ax_trial.mark_completed()

    def _sobol(self, n: int, draw: int = 0) -> list[Point]:
        from ax.adapter.registry import Generators

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adapter = Generators.SOBOL(
                experiment=self.ax, seed=self.seed + len(self.ax.trials) + 7919 * draw
            )
            run = adapter.gen(n=n)
        return [axspace.to_point(dict(arm.parameters), self.program) for arm in run.arms]

    def initial(self, n: int) -> list[Point]:
        """Up to `n` untried points that fit to start with: Sobol points of the flat Ax
        space, repaired draws and mutations where those are rare (`feasible.fill`)."""
        return fill(self, n)

    def propose(self, n: int) -> list[Point]:
        """`n` points from Ax's BoTorch generator fitted to every observation."""
        from ax.adapter.registry import Generators
        from ax.utils.common.random import with_rng_seed

        if self.completed < 2:
            return self.initial(n)  # the surrogate needs data: explore until it has
        options: dict[str, Any] = (
            {} if self.acquisition is None else {"optimizer_kwargs": self.acquisition})
        with warnings.catch_warnings(), with_rng_seed(self.seed + len(self.ax.trials)):
            warnings.simplefilter("ignore")
            adapter = Generators.BOTORCH_MODULAR(experiment=self.ax, data=self.ax.lookup_data())
            run = adapter.gen(n=n, model_gen_options=options)
        return repaired(self, [axspace.to_point(dict(arm.parameters), self.program)
                               for arm in run.arms])

    def scores(self, points: Sequence[Point]) -> list[float]:
        """The acquisition value of each point: Ax's qLogNEHVI (log EI with one objective)."""
        from ax.adapter.registry import Generators
        from ax.core.observation import ObservationFeatures
        from ax.utils.common.random import with_rng_seed

        with warnings.catch_warnings(), with_rng_seed(self.seed + len(self.ax.trials)):
            warnings.simplefilter("ignore")
            adapter = Generators.BOTORCH_MODULAR(experiment=self.ax, data=self.ax.lookup_data())
            values = adapter.evaluate_acquisition_function(
                [ObservationFeatures(parameters=axspace.to_ax(p, self.program)) for p in points]
            )
        return [float(v) for v in values]

    def best(self, points: Sequence[Point]) -> int:
        """The index of the most promising point; the first when they cannot be told
        apart (fewer than two completed trials, or scores that cannot be computed)."""
        if self.completed < 2 or len(points) < 2:
            return 0
        from ax.exceptions.core import AxError
        from botorch.exceptions.errors import BotorchError

        try:
            values = self.scores(points)
        except (AxError, BotorchError, RuntimeError, ValueError) as error:  # e.g. not PSD
            self.report(f"the surrogate cannot score candidates ({error}); taking the first")
            return 0
        return max(range(len(points)), key=lambda k: (values[k] == values[k], values[k]))


class GPStrategy(Strategy):
    """`gp`: every objective a GP, qLogNEHVI with cheap optimiser settings."""

    name = "gp"


class SobolStrategy(Strategy):
    """`sobol`: quasi-random points in every stage; morph children in the order drawn."""

    name = "sobol"

    def propose(self, n: int) -> list[Point]:
        return self.initial(n)

    def best(self, points: Sequence[Point]) -> int:
        return 0
