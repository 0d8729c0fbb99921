"""The optimisers a user would pick instead of the default, as search strategies.

`OptunaStrategy` answers the search engine's questions (`initial`, `propose`,
`observe`, `best`) through Optuna's ask/tell interface, so that Optuna's NSGA-II
and multi-objective TPE run inside a real `Search`: same space, trainer,
budgets and journal as the default strategy, the same count of trained networks.

- Parameters are suggested by their domains (ints with their step and log scale,
  floats, ordered and unordered choices), in the program's order; a parameter
  whose activity conditions fail on the values suggested so far is not suggested
  at all (Optuna's define-by-run spaces: its samplers see a conditional space).
- A suggested point that cannot be trained (it fails `validate` or does not fit
  the target: the engine's own rule, `Pricer.price`) is told to Optuna as pruned
  and never reaches the engine, so TPE learns where the infeasible region is and
  no training budget is spent on it. A point already tried is told the values
  it had (Optuna may suggest it again; a user would not train it twice).
- Every trained network is told with its measured objectives (failed ones as
  failed).

Optuna is a benchmark-only dependency (`pip install -e .[bench]`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from sparsemod_dsl.lang import ir
from sparsemod_dsl.nets.point import Point, active, is_active
from sparsemod_dsl.search.axstrategy import Strategy
from sparsemod_dsl.search.pricing import Pricer, key
from sparsemod_dsl.search.trials import Trial

#: How many suggestions one proposed point may take before the strategy gives up
#: on that point (infeasible and already-tried suggestions are not proposed).
ASKS_PER_POINT = 500
#: The population of NSGA-II (Optuna's default is 50: too many for 40 networks).
POPULATION = 10
PEERS = ("nsga2", "tpe")


def sampler(name: str, seed: int) -> Any:
    """Optuna's sampler for a peer: `nsga2` (NSGA-II, population `POPULATION`) or `tpe`
    (multi-objective TPE, multivariate and grouped for a conditional space)."""
    import optuna

    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=POPULATION, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    raise ValueError(f"unknown peer {name!r}: use one of {', '.join(PEERS)}")


def suggest(trial: Any, param: ir.Parameter) -> ir.Scalar:
    """One parameter's value suggested by an Optuna trial, by its domain."""
    domain, name = param.domain, param.name
    if isinstance(domain, ir.FixedDomain):
        return domain.value
    if isinstance(domain, ir.ChoiceDomain):
        return trial.suggest_categorical(name, list(domain.values))
    if isinstance(domain, ir.IntDomain):
        if domain.log and domain.step == 1:
            return trial.suggest_int(name, domain.low, domain.high, log=True)
        return trial.suggest_int(name, domain.low, domain.high, step=domain.step)
    return trial.suggest_float(name, domain.low, domain.high, log=domain.log)


def suggest_point(trial: Any, program: ir.Program) -> Point:
    """A point whose active parameters are suggested, in the program's order (a
    parameter's conditions name parameters declared before it)."""
    values: dict[str, ir.Scalar] = {}
    for param in program.parameters:
        if is_active(param, values):
            values[param.name] = suggest(trial, param)
    return active(program, values)


class OptunaStrategy(Strategy):
    """An Optuna sampler driving a search; see the module docstring."""

    def __init__(self, name: str, program: ir.Program, objectives: Sequence[str],
                 pricer: Pricer, seed: int) -> None:
        import optuna

        super().__init__(program, objectives, pricer, seed)
        self.name = name
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(directions=["minimize"] * len(self.objectives),
                                         sampler=sampler(name, seed))
        self.asked: dict[str, Any] = {}
        self.known: dict[str, list[float] | None] = {}
        self.pruned = 0

    def initial(self, n: int) -> list[Point]:
        """Optuna's own start (NSGA-II's random first generation, TPE's startup trials)."""
        return self.propose(n)

    def propose(self, n: int) -> list[Point]:
        points: list[Point] = []
        for _ in range(n):
            point = self._ask()
            if point is None:
                break
            points.append(point)
        return points

    def _ask(self) -> Point | None:
        """One feasible untried point, telling Optuna what it asked for on the way."""
        from optuna.trial import TrialState

        for _ in range(ASKS_PER_POINT):
            trial = self.study.ask()
            point = suggest_point(trial, self.program)
            name = key(point)
            if name in self.known or name in self.asked:
                values = self.known.get(name)
                self.study.tell(trial, values, TrialState.COMPLETE if values else
                                TrialState.FAIL)
                continue
            reason = self.pricer.price(point).reason
            if reason is not None:
                self.last_rejection = reason
                self.pruned += 1
                self.study.tell(trial, state=TrialState.PRUNED)
                continue
            self.asked[name] = trial
            return point
        return None

    def observe(self, trial: Trial) -> None:
        """Tell Optuna a finished trial (of a point it proposed); record it either way."""
        from optuna.trial import TrialState

        super().observe(trial)
        name = key(active(self.program, trial.params))
        values = ([float(trial.objective(o)) for o in self.objectives]  # type: ignore[arg-type]
                  if trial.status == "completed" else None)
        self.known[name] = values
        asked = self.asked.pop(name, None)
        if asked is None:
            return
        if values is not None:
            self.study.tell(asked, values)
        elif trial.status == "infeasible":
            self.study.tell(asked, state=TrialState.PRUNED)
        else:
            self.study.tell(asked, state=TrialState.FAIL)

    def best(self, points: Sequence[Point]) -> int:
        return 0


def peer(name: str) -> Callable[[ir.Program, Sequence[str], Pricer, int], Strategy]:
    """A factory of the peer `name`'s strategy (the engine's strategy arguments)."""
    return lambda program, objectives, pricer, seed: OptunaStrategy(
        name, program, objectives, pricer, seed)
