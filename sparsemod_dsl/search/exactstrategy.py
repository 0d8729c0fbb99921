"""The default `exact` strategy: a GP of the error, exact costs, EHVI over candidates.

Only the error is modelled (`surrogate.ErrorModel`, over `encode.Encoder`'s encoding
and the exact `FEATURES`); the costs of every candidate are computed exactly
(`pricing.Pricer`), so infeasible points are dropped before anything is scored.
Each batch scores a pool of candidates (`PoolSize`: random draws, then mutations of
the best and of the front; the best untried ones kept for the next batch, which adds
fewer) by expected hypervolume improvement (`hypervolume`) and picks greedily. The
module docstring of `strategy` tells the whole method.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..lang import ir
from ..nets.morph import mutate
from ..nets.point import Point, PointError, active, sample
from ..nets.sampling import find
from .axstrategy import Strategy
from .encode import Encoder
from .feasible import REPAIR_DRAWS, fitting
from .hypervolume import expected_improvement
from .pricing import Priced, Pricer, key
from .surrogate import ErrorModel
from .trials import Trial, pareto_front

#: Exact properties of a network that the error model sees besides its parameters: its
#: capacity and activation size explain much of its error, and the GP learns that from
#: a handful of observations where it could not from the parameters alone.
FEATURES = ("params", "macs", "ram")
#: Random points whose feature ranges scale the features to about [0, 1].
FEATURE_SAMPLE = 256


@dataclass(frozen=True)
class PoolSize:
    """How many candidates the `exact` strategy scores for one batch: `random` points
    drawn from the space, then `rounds` of `children` mutations of each of the
    `parents` best-scoring candidates and front networks.

    With `kept` > 0, the `kept` best-scoring untried candidates of a batch stay for
    the next, whose fresh candidates are only those of `later` per point asked for
    (`later.parents` best candidates and as many front networks as parents): pricing
    candidates is most of a proposal's time, and a candidate priced once need not be
    drawn and priced again."""

    random: int = 512
    rounds: int = 2
    parents: int = 8
    children: int = 16
    kept: int = 0
    later: "PoolSize | None" = None


FAST_POOL = PoolSize(random=64, rounds=1, parents=4, children=4, kept=32,
                     later=PoolSize(random=8, rounds=1, parents=1, children=4))
#: The default: a full pool for the first batch, then the kept candidates refreshed.
DEFAULT_POOL = PoolSize(kept=256, later=PoolSize(random=16, rounds=1, parents=2, children=4))


def chance_error(program: ir.Program) -> float:
    """The error of guessing among the program's classes (1.0 when unknown): the
    reference error of the hypervolume, beyond which a network has learned nothing."""
    return 1.0 - 1.0 / program.classes if program.classes else 1.0


class ExactStrategy(Strategy):
    """`exact`: a GP of the error, exact costs, expected hypervolume improvement scored
    over pools of feasible candidates. See the module docstring of `strategy`."""

    name = "exact"

    def __init__(self, program: ir.Program, objectives: Sequence[str], pricer: Pricer,
                 seed: int, pool: PoolSize = DEFAULT_POOL) -> None:
        super().__init__(program, objectives, pricer, seed)
        self.pool_size = pool
        self.encoder = Encoder(program)
        self.scale = self._feature_scale()
        self.model = ErrorModel()
        self.trials: list[Trial] = []
        self.inputs: list[np.ndarray] = []
        self.values: list[list[float]] = []
        #: Per observation, whether it counts in the observed front (not a stopped trial).
        self.finished: list[bool] = []
        self.modelled = "error" in self.objectives
        self.exact = [o for o in self.objectives if o != "error"]
        #: The untried candidates kept from the last batch (`PoolSize.kept`), priced.
        self.kept: dict[str, tuple[Point, Priced]] = {}

    def observe(self, trial: Trial) -> None:
        """Completed trials and stopped ones (`earlystop`) train the error model, the
        latter at the error they had when stopped; only completed ones make the front."""
        super().observe(trial)
        if trial.status in ("completed", "stopped"):
            self.finished.append(trial.status == "completed")
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
        self.calls += 1  # an empty batch's next call draws other points
        rng = random.Random(self.seed * 1_000_003 + len(self.ax.trials) + 7919 * self.calls)
        taken: dict[str, Point] = {}
        priced: dict[str, Priced] = {}
        size = self._size(n, taken, priced)
        try:
            drawn = sample(self.program, size.random, rng.randrange(2**31))
        except PointError as error:  # constraints too tight for random draws
            self.last_rejection = str(error)
            drawn = []
        self._feasible(drawn, taken, priced)
        if len(taken) < n:  # feasible points are rare: repair random draws into them
            try:
                found = find(self.program, n, rng.randrange(2**31), fitting(self.pricer),
                             REPAIR_DRAWS)
            except PointError:  # the last pricing's reason stays the one to report
                found = []
            self._feasible(found, taken, priced)
        self._fit()
        ranked: list[Point] = []
        for _ in range(size.rounds):
            if not taken:
                break
            scores = self._scores(list(taken.values()), [priced[k] for k in taken])
            ranked = [list(taken.values())[k] for k in np.argsort(-scores)]
            front = self._front()
            if size is not self.pool_size:  # a later batch: as many front parents as best
                front = rng.sample(front, min(len(front), size.parents))
            parents = ranked[: size.parents] + front
            children = [mutate(self.program, p, rng) for p in parents
                        for _ in range(size.children)]
            self._feasible([c.point for c in children if c is not None], taken, priced)
        batch = self._batch(list(taken.values()), [priced[k] for k in taken], n)
        self._keep(ranked, taken, priced, {key(p) for p in batch})
        return batch

    def _size(self, n: int, taken: dict[str, Point], priced: dict[str, Priced]) -> PoolSize:
        """This batch's pool size; the kept untried candidates go into `taken` first."""
        later = self.pool_size.later
        for name, (point, price) in self.kept.items():
            if name not in self.tried:
                taken[name], priced[name] = point, price
        if not taken or later is None:
            return self.pool_size
        return PoolSize(later.random * n, later.rounds, later.parents * n, later.children)

    def _keep(self, ranked: Sequence[Point], taken: dict[str, Point],
              priced: dict[str, Priced], chosen: set[str]) -> None:
        """Keep for the next batch the best `PoolSize.kept` of the last ranking and the
        candidates found after it, except the batch's own."""
        if not self.pool_size.kept:
            return
        seen = {key(p) for p in ranked}
        best = [key(p) for p in ranked[: self.pool_size.kept]]
        unranked = [name for name in taken if name not in seen]
        self.kept = {name: (taken[name], priced[name]) for name in [*best, *unranked]
                     if name not in chosen}

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
        anything without a budget (the error of an `mse` network too: it has no
        guessing rate). A network no better than a guess adds nothing."""
        budgets = {"error": chance_error(self.program)} if self.program.loss == "cross_entropy" \
            else {}
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
        """The objectives of the completed trials (the front's candidates)."""
        kept = [row for row, done in zip(self.values, self.finished) if done]
        return np.array(kept).reshape(-1, len(self.objectives))

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
        front = self._believe_in_flight()
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

    def _believe_in_flight(self) -> np.ndarray:
        """The observed objectives, with the points in flight (`pending`) added at their
        predicted errors, which the error model is told it observed: the batch's first
        pick is then chosen as if they were its earlier picks."""
        front = self._observed()
        if not self.in_flight:
            return front
        priced = [self.pricer.price(p) for p in self.in_flight]
        exact = self._exact(priced)
        encoded = self.model_inputs(self.in_flight, priced)
        mean, _, _ = self._predict(encoded, exact)
        if self.modelled:
            self.model.believe(encoded, mean)
        return np.vstack([front, self._full(mean, exact)])

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
