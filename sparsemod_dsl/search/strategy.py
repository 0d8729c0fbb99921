"""How a search chooses the points it trains: the optimisation strategies.

Each strategy answers three questions of the search engine: which points to
train first (`initial`, the Sobol stage), which next given every observation
(`propose`, the BO stage), and which of some morphism children is most
promising (`best`, the morph stage). `experiment.toml` picks one by name:

- `exact` (the default): the error alone is modelled, by a Gaussian process
  (`surrogate`) over the encoded parameters (`encode`) and the network's exact
  weights, MACs and peak activation bytes (`FEATURES`); flash, RAM and latency
  are computed exactly from the IR for every candidate (`cost`, well under a
  millisecond each). Candidates are drawn at random from the space and by
  mutating the front and the best candidates (an evolutionary search of the
  acquisition), priced, and those that fail
  `validate` or do not fit the target are dropped before anything is scored:
  infeasible points are never proposed. The rest are scored by their expected
  hypervolume improvement in closed form (`hypervolume`), and a batch is
  chosen greedily, each choice believed observed at its predicted error before
  the next. Sobol points that do not fit are skipped the same way.
- `gp`: the earlier implementation's approach through Ax: every objective,
  flash and RAM included, is modelled by a GP, and Ax's qLogNEHVI is optimised
  with cheap settings (`ACQUISITION`). It may propose points that do not fit,
  which the search records as infeasible.
- `ax`: as `gp` with Ax's default acquisition settings (minutes per batch).
- `sobol`: quasi-random points only; the baseline BO has to beat.

docs/performance.md compares them.
"""

from __future__ import annotations

import json
import random
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..lang import ir
from ..nets import axspace
from ..nets.cost import cost, fit
from ..nets.morph import mutate
from ..nets.point import Point, PointError, active, sample, validate
from ..nets.targets import Target
from .encode import Encoder
from .experiment import STRATEGIES
from .hypervolume import expected_improvement
from .results import Trial, pareto_front
from .surrogate import ErrorModel

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

#: Sobol draws (of 4 points per point wanted) before `initial` gives up on finding fits.
SOBOL_DRAWS = 10
#: Exact properties of a network that the error model sees besides its parameters: its
#: capacity and activation size explain much of its error, and the GP learns that from
#: a handful of observations where it could not from the parameters alone.
FEATURES = ("params", "macs", "ram")
#: Random points whose feature ranges scale the features to about [0, 1].
FEATURE_SAMPLE = 256
#: Prune-threshold parameter: pruning during training ends at this sparsity.
PRUNE_THRESHOLD = "train.prune_threshold"


@dataclass(frozen=True)
class PoolSize:
    """How many candidates the `exact` strategy scores for one batch: `random` points
    drawn from the space, then `rounds` of `children` mutations of each of the
    `parents` best-scoring candidates and front networks."""

    random: int = 512
    rounds: int = 2
    parents: int = 8
    children: int = 16


FAST_POOL = PoolSize(random=64, rounds=1, parents=4, children=4)


# --- points and their exact costs ----------------------------------------------------------


@dataclass(frozen=True)
class Priced:
    """Why a point cannot be trained (None if it can), and its exact objectives."""

    reason: str | None
    values: Mapping[str, float]


@dataclass(frozen=True)
class Pricer:
    """Checks points and computes their exact objectives (flash bytes, peak RAM bytes,
    latency ms) as the search will measure them after training."""

    program: ir.Program
    target: Target | None
    precision: str
    pruning: bool

    def sparsity(self, point: Mapping[str, object]) -> float:
        """The sparsity training will reach: pruning ends at the point's threshold."""
        if not self.pruning:
            return 0.0
        return float(active(self.program, point).get(PRUNE_THRESHOLD, 0.0))

    def price(self, point: Mapping[str, object]) -> Priced:
        """Validate a point, then price it and compare with the target's budgets."""
        check = validate(self.program, point)
        if not check:
            return Priced(check.reason, {})
        report = cost(self.program, point, self.target, self.precision, self.sparsity(point))
        values = {"flash": float(report.flash_bytes), "ram": float(report.peak_ram_bytes),
                  "latency": float(report.latency_ms or 0.0), "params": float(report.params),
                  "macs": float(report.macs)}
        if self.target is not None:
            fitting = fit(report, self.target)
            if not fitting.ok:
                return Priced(fitting.reason, values)
        return Priced(None, values)


def chance_error(program: ir.Program) -> float:
    """The error of guessing among the program's classes (1.0 when unknown): the
    reference error of the hypervolume, beyond which a network has learned nothing."""
    return 1.0 - 1.0 / program.classes if program.classes else 1.0


def key(point: Mapping[str, object]) -> str:
    """A point's identity (its active values), to tell repeats apart."""
    return json.dumps(point, sort_keys=True)


# --- the Ax-based strategies --------------------------------------------------------------


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
        #: Why the last point passed over was not proposed (for the search's messages).
        self.last_rejection: str | None = None
        #: Where to say that the strategy had to fall back on something simpler.
        self.report: Callable[[str], None] = lambda _: None

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
        ax_trial = self.ax.new_trial()
        ax_trial.add_arm(Arm(parameters=axspace.to_ax(trial.params, self.program)))
        ax_trial.mark_running(no_runner_required=True)
        if trial.status != "completed":
            ax_trial.mark_failed()
            return
        self.completed += 1
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
        """`n` points to start with: Sobol points of the flat Ax space."""
        return self._sobol(n)

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
        return [axspace.to_point(dict(arm.parameters), self.program) for arm in run.arms]

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
        return self._sobol(n)

    def best(self, points: Sequence[Point]) -> int:
        return 0


# --- the default strategy ---------------------------------------------------------------


class ExactStrategy(Strategy):
    """`exact`: a GP of the error, exact costs, expected hypervolume improvement scored
    over pools of feasible candidates. See the module docstring."""

    name = "exact"

    def __init__(self, program: ir.Program, objectives: Sequence[str], pricer: Pricer,
                 seed: int, pool: PoolSize = PoolSize()) -> None:
        super().__init__(program, objectives, pricer, seed)
        self.pool_size = pool
        self.encoder = Encoder(program)
        self.scale = self._feature_scale()
        self.model = ErrorModel()
        self.trials: list[Trial] = []
        self.inputs: list[np.ndarray] = []
        self.values: list[list[float]] = []
        self.modelled = "error" in self.objectives
        self.exact = [o for o in self.objectives if o != "error"]

    def observe(self, trial: Trial) -> None:
        super().observe(trial)
        if trial.status == "completed":
            point = active(self.program, trial.params)
            self.trials.append(trial)
            self.inputs.append(self.model_inputs([point], [self.pricer.price(point)])[0])
            self.values.append([float(trial.objective(o))  # type: ignore[arg-type]
                                for o in self.objectives])

    def _feasible(self, points: Sequence[Point], taken: dict[str, Point],
                  priced: dict[str, Priced]) -> None:
        """Add the untried points that fit to `taken` (and their prices to `priced`)."""
        for point in points:
            name = key(point)
            if name in self.tried or name in taken:
                continue
            result = self.pricer.price(point)
            if result.reason is not None:
                self.last_rejection = result.reason
                continue
            taken[name] = point
            priced[name] = result

    def initial(self, n: int) -> list[Point]:
        """Sobol points, those that do not fit skipped (up to `SOBOL_DRAWS` draws)."""
        taken: dict[str, Point] = {}
        priced: dict[str, Priced] = {}
        for draw in range(SOBOL_DRAWS):
            self._feasible(self._sobol(4 * n, draw), taken, priced)
            if len(taken) >= n:
                break
        return list(taken.values())[:n]

    def propose(self, n: int) -> list[Point]:
        """`n` feasible, untried points of highest expected hypervolume improvement; Sobol
        points while fewer than two trials have completed or if the GP cannot be fitted."""
        if self.modelled and self.completed < 2:
            return self.initial(n)
        from botorch.exceptions.errors import BotorchError

        try:
            return self._propose(n)
        except (BotorchError, RuntimeError, ValueError, np.linalg.LinAlgError) as error:
            self.report(f"the error model failed ({type(error).__name__}: {error}); "
                        "drawing Sobol points instead")
            return self.initial(n)

    def _propose(self, n: int) -> list[Point]:
        rng = random.Random(self.seed * 1_000_003 + len(self.ax.trials))
        taken: dict[str, Point] = {}
        priced: dict[str, Priced] = {}
        try:
            drawn = sample(self.program, self.pool_size.random, rng.randrange(2**31))
        except PointError as error:  # constraints too tight for random draws
            self.last_rejection = str(error)
            drawn = []
        self._feasible(drawn, taken, priced)
        self._fit()
        for _ in range(self.pool_size.rounds):
            if not taken:
                break
            scores = self._scores(list(taken.values()), [priced[k] for k in taken])
            ranked = [list(taken.values())[k] for k in np.argsort(-scores)]
            parents = ranked[: self.pool_size.parents] + self._front()
            children = [mutate(self.program, p, rng) for p in parents
                        for _ in range(self.pool_size.children)]
            self._feasible([c.point for c in children if c is not None], taken, priced)
        return self._batch(list(taken.values()), [priced[k] for k in taken], n)

    def _feature_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """Low end and width of the log features over random valid points of the space
        (fixed for the search, so that fitted hyperparameters stay meaningful)."""
        try:
            drawn = sample(self.program, FEATURE_SAMPLE, self.seed)
        except PointError:
            drawn = []
        logs = np.log1p(np.array([
            [priced.values[f] for f in FEATURES]
            for priced in map(self.pricer.price, drawn) if priced.values
        ]).reshape(-1, len(FEATURES)))
        if len(logs) < 2:
            return np.zeros(len(FEATURES)), np.full(len(FEATURES), 20.0)
        return logs.min(axis=0), np.maximum(logs.max(axis=0) - logs.min(axis=0), 1e-6)

    def model_inputs(self, points: Sequence[Point], priced: Sequence[Priced]) -> np.ndarray:
        """The GP's inputs: the encoded parameters, then the scaled log features."""
        low, width = self.scale
        logs = np.log1p(np.array([[p.values[f] for f in FEATURES] for p in priced]))
        return np.hstack([self.encoder.encode(points),
                          ((logs - low) / width).reshape(len(points), len(FEATURES))])

    def _front(self) -> list[Point]:
        """The points of the observed Pareto front."""
        return [active(self.program, t.params) for t in pareto_front(self.trials, self.objectives)]

    def _fit(self) -> None:
        if self.modelled and self.trials:
            errors = [row[self.objectives.index("error")] for row in self.values]
            self.model.update(np.array(self.inputs), np.array(errors))

    def _reference(self, exact: np.ndarray) -> np.ndarray:
        """The hypervolume reference: the error of guessing (`chance_error`), the
        target's budgets for flash and RAM, and 10% above the largest value seen for
        anything without a budget. A network no better than a guess adds nothing."""
        budgets = {"error": chance_error(self.program)}
        if self.pricer.target is not None:
            budgets["flash"] = float(self.pricer.target.flash_budget_bytes)
            budgets["ram"] = float(self.pricer.target.ram_budget_bytes)
        seen = np.vstack([self._observed(), self._full(np.zeros(len(exact)), exact)])
        return np.array([
            budgets.get(o, 1.1 * float(seen[:, k].max(initial=0.0)) or 1.0)
            for k, o in enumerate(self.objectives)
        ])

    def _full(self, errors: np.ndarray, exact: np.ndarray) -> np.ndarray:
        """Rows of every objective, in order, from errors and the exact columns."""
        return exact if not self.modelled else np.column_stack([errors, exact])

    def _predict(self, encoded: np.ndarray, exact: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The uncertain first objective (mean, std) and the remaining exact ones."""
        if self.modelled:
            mean, std = self.model.predict(encoded)
            return mean, std, exact
        return exact[:, 0], np.zeros(len(exact)), exact[:, 1:]

    def _exact(self, priced: Sequence[Priced]) -> np.ndarray:
        return np.array([[p.values[o] for o in self.exact] for p in priced]).reshape(
            len(priced), len(self.exact))

    def _observed(self) -> np.ndarray:
        return np.array(self.values).reshape(-1, len(self.objectives))

    def _scores(self, points: Sequence[Point], priced: Sequence[Priced]) -> np.ndarray:
        exact = self._exact(priced)
        mean, std, rest = self._predict(self.model_inputs(points, priced), exact)
        return expected_improvement(self._observed(), self._reference(exact), mean, std, rest)

    def _batch(self, points: list[Point], priced: list[Priced], n: int) -> list[Point]:
        """Greedy batch: the best candidate, then the best given that the ones chosen
        were observed at their predicted errors (kriging believer)."""
        if not points:
            return []
        exact = self._exact(priced)
        ref = self._reference(exact)
        front = self._observed()
        encoded = self.model_inputs(points, priced)
        chosen: list[int] = []
        for _ in range(min(n, len(points))):
            mean, std, rest = self._predict(encoded, exact)
            scores = expected_improvement(front, ref, mean, std, rest)
            scores[chosen] = -np.inf
            pick = int(np.argmax(scores))
            chosen.append(pick)
            front = np.vstack([front, self._full(mean[pick:pick + 1], exact[pick:pick + 1])])
            if self.modelled:
                self.model.believe(encoded[pick:pick + 1], mean[pick:pick + 1])
        return [points[k] for k in chosen]

    def scores(self, points: Sequence[Point]) -> list[float]:
        """Expected hypervolume improvement (fraction of the reference box); points
        that cannot be trained score -inf."""
        priced = [self.pricer.price(p) for p in points]
        feasible = [k for k, p in enumerate(priced) if p.reason is None]
        out = [float("-inf")] * len(points)
        if feasible:
            self._fit()
            values = self._scores([points[k] for k in feasible], [priced[k] for k in feasible])
            for k, value in zip(feasible, values):
                out[k] = float(value)
        return out


def make_strategy(name: str, program: ir.Program, objectives: Sequence[str], pricer: Pricer,
                  seed: int, fast: bool = False) -> Strategy:
    """The strategy called `name` (one of `STRATEGIES`); `fast` shrinks its effort."""
    if name == "exact":
        return ExactStrategy(program, objectives, pricer, seed,
                             FAST_POOL if fast else PoolSize())
    if name == "sobol":
        return SobolStrategy(program, objectives, pricer, seed)
    if name == "gp":
        return GPStrategy(program, objectives, pricer, seed,
                          FAST_ACQUISITION if fast else ACQUISITION)
    if name == "ax":
        return Strategy(program, objectives, pricer, seed, FAST_ACQUISITION if fast else None)
    raise ValueError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")
