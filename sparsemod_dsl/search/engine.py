"""The SpArSe search engine: Sobol points, multi-objective BO, morphisms.

A search compiles the experiment's `.arch` file for its dataset, then runs
three stages, each trial being one network trained and measured:

1. `sobol`: quasi-random points of the Ax search space;
2. `bo`: rounds of `bo_batch` points proposed by multi-objective Bayesian
   optimisation from every observation so far;
3. `morph`: children of Pareto-front networks (`morph`), the most promising one
   trained from its parent's weights.

How points are chosen is the experiment's strategy (`strategy`; by default a GP
of the error, exact costs and expected hypervolume improvement). A point that
`validate` rejects or that does not fit the target is never trained: the
default strategy never proposes one, and one that another strategy proposes is
recorded as infeasible, with the reason. A trial that raises, whatever it
raises, is recorded as failed with the reason and the search goes on; only a
stage whose networks all fail stops it (`_check_stage`). A broken data binding
stops it before any training. A search holds its results directory's lock
(`lock.locked`) while it runs; every event goes to the append-only journal
first, so re-running the same command resumes where the last run stopped.
"""

from __future__ import annotations

import json
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterator, Sequence, TypeVar

from tqdm import tqdm

from ..nets.cost import cost
from ..nets.morph import Mutation, inherit, mutate
from ..nets.point import Point
from ..space import Space, compile_file
from .axstrategy import Strategy
from .checks import SearchError, check_device, check_loss, check_splitter
from .data import DataBundle, DataError, resolve
from .experiment import Experiment, canonical_settings, experiment_hash
from .feasible import LOOSEN
from .final import final_data, retrain
from .journal import RUN_EVENT, RUN_START_EVENT, SEARCH_EVENT, Journal
from .lock import locked
from .networks import load_network_record, prune_networks, save_network
from .prepare import clip, fit_space, importable, load_prepared
from .pricing import Pricer, budget_bytes, budgeted_target
from .resize import Resizer
from .results import CSV, JOURNAL, SETUP, sha256_text, write_atomic, writing
from .scoring import Scored, runs
from .state import State, extension, load_state, save_state, search_event
from .stopping import Stop, Stopper, nothing_left
from .strategy import make_strategy
from .train import (
    TrainConfig,
    Trainer,
    TrainingError,
    TrainResult,
    batches,
    default_trainer,
    evaluate,
)
from .trials import TRAINED, Trial, failure, pareto_front, summary, write_csv
from .windows import pinned_steps

#: How many points a stage may propose per network it is to train before giving up.
PROPOSALS_PER_TRIAL = 10

T = TypeVar("T")


@dataclass
class Outcome:
    """What one trial produced: a status, a reason, and measurements (journal units)."""

    status: str
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


Proposal = tuple[Point, "Trial | None", Sequence[str]]


@dataclass
class Timings:
    """Wall-clock seconds of one run: choosing points (`generation`), training and
    measuring networks (`training`), and the whole run (`total`)."""

    generation: float = 0.0
    training: float = 0.0
    total: float = 0.0
    #: (stage, points asked for, seconds) of every call for points.
    batches: list[tuple[str, int, float]] = field(default_factory=list)

    @contextmanager
    def measure(self, part: str) -> Iterator[None]:
        """Add the time spent in the `with` body to `part`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, part, getattr(self, part) + time.perf_counter() - start)


class Search:
    """One experiment: its space, data, target, results directory and optimiser."""

    def __init__(
        self,
        experiment: Experiment,
        trainer: Trainer | None = None,
        report: Callable[[str], None] = tqdm.write,
        fast: bool = False,
        progress: bool = False,
    ) -> None:
        check_device(experiment)  # a GPU asked for and missing: refused before anything
        self.config = experiment
        self.report = report
        self.progress = progress
        with importable(experiment.path.parent):
            if experiment.data.collate:
                self._bound("data.collate", partial(resolve, experiment.data.collate))
            self.data = self._bound("data.dataset", partial(load_prepared, experiment))
            custom = experiment.training.trainer
            self.trainer: Trainer = trainer or (
                self._bound("training.trainer", partial(resolve, custom)) if custom
                else default_trainer)
        self.space: Space
        self.space, notes = fit_space(compile_file(
            experiment.arch, self.data.input_shape, self.data.classes
        ), self.data, experiment.data.splitter)
        for note in notes:
            report(f"note: {note}")
        self.program = self.space.program
        self.resizer = Resizer(self.data)
        check_splitter(experiment, self.program, self.data)
        check_loss(experiment, self.program, self.data)
        self._bound("scoring", partial(runs, self.data, experiment.scoring, experiment.seed))
        self._bound("final", partial(final_data, self.data, experiment.final))
        self.arch_source = experiment.arch.read_text(encoding="utf-8")
        self.target = budgeted_target(experiment.target)
        self.rng = random.Random(experiment.seed)
        self.results = experiment.results
        self.journal = Journal(self.results / JOURNAL)
        #: Rebuilt from the journal when the search runs (`_resume`).
        self.state = State(experiment_hash(experiment), sha256_text(self.arch_source),
                           canonical_settings(experiment))
        self.objectives = list(experiment.objectives.minimize)
        self.pricer = Pricer(self.program, self.target, self._precision(),
                             experiment.training.pruning and experiment.target.weights == "sparse")
        self.strategy: Strategy = make_strategy(
            experiment.stages.strategy, self.program, self.objectives, self.pricer,
            experiment.seed, fast,
        )
        self.strategy.report = report
        self.timings = Timings()
        #: The `[stopping]` rules (`stopping`), from `_run`; the stop once found.
        self.stopper = Stopper(experiment.stopping, self.results)
        self.stop: Stop | None = None

    def _bound(self, key: str, load: Callable[[], T]) -> T:
        """`load()`, its DataError naming the experiment file and key it came from."""
        try:
            return load()
        except DataError as error:
            raise DataError(f"{self.config.path}: {key}: {error}") from None

    def _write_setup(self) -> None:
        """What `report` and `show` need to rebuild networks without the experiment file."""
        write_atomic(self.results / SETUP, json.dumps({
            "experiment": str(self.config.path),
            "arch": str(self.config.arch),
            "input_shape": list(self.data.input_shape),
            "classes": self.data.classes,
            "loss": self.data.loss,
            "measure": self.data.measure,
            "normalization": self.data.normalization and self.data.normalization.as_json(),
            "target": self.config.target.name,
            "quantization": self.config.training.quantization,
            "weights": self.config.target.weights,
            "objectives": self.objectives,
            "budgets": budget_bytes(self.pricer.target),
            "windows": None if self.config.data.splitter else pinned_steps(self.program),
        }, indent=1) + "\n")

    # --- one trial ------------------------------------------------------------------------

    def _precision(self) -> str:
        return "float32" if self.config.training.quantization == "none" else "int8"

    def infeasibility(self, point: Point) -> str | None:
        """Why a point cannot be trained (invalid, or too big for the target), or None."""
        return self.pricer.price(point).reason

    def run_trial(self, stage: str, point: Point, epochs: int, parent: Trial | None = None,
                  changes: Sequence[str] = (), trial_id: int | None = None) -> Trial:
        """Check, train and measure one point, journalling before and after."""
        if trial_id is None:  # the journal's next id: never one it has used
            trial_id = self.state.next_trial
            self.state.next_trial += 1
        self.journal.append({
            "event": "started", "trial": trial_id, "stage": stage, "params": point,
            "parent": None if parent is None else parent.id, "changes": list(changes),
            "epochs": epochs,
        })
        save_state(self.results, self.state)
        with self.timings.measure("training"):
            outcome = self._evaluate(point, epochs, parent, trial_id)
        self.journal.append({
            "event": "finished", "trial": trial_id, "status": outcome.status,
            "reason": outcome.reason, **outcome.metrics,
        })
        trial = self.journal.trial(trial_id)
        self.strategy.observe(trial)
        self.report(summary(trial, self.data.measure))
        return trial

    def _evaluate(self, point: Point, epochs: int, parent: Trial | None, trial_id: int) -> Outcome:
        reason = self.infeasibility(point)
        if reason is not None:
            return Outcome("infeasible", reason)
        try:  # user code runs here (trainer, dataset, collate): anything may be raised
            scored = self._score(point, epochs, parent, trial_id)
        except (Exception, SystemExit) as error:
            return Outcome("failed", failure(error))
        normalization = self.data.normalization
        save_network(self.results, trial_id, scored.first.float_model.state_dict(), point,
                     self.arch_source, {"val_error": scored.first.val_error, "normalization":
                                        normalization and normalization.as_json()})
        return Outcome("completed", metrics=scored.metrics())

    def _score(self, point: Point, epochs: int, parent: Trial | None, trial_id: int) -> Scored:
        """Train one point once per run of `[scoring]` (`scoring.runs`), and measure it."""
        seed = self.config.seed + trial_id
        trainings = [self._train(point, epochs, parent, seed + offset, data) for data, offset
                     in runs(self._data(point), self.config.scoring, self.config.seed)]
        sparse = trainings[0][0].sparsity if self.pricer.sparse_flash else 0.0
        return Scored(trainings, cost(self.program, point, self.target, self._precision(),
                                      sparse))

    def _train(self, point: Point, epochs: int, parent: Trial | None, seed: int,
               data: DataBundle) -> tuple[TrainResult, float]:
        """Build and train one point on `data` (from its parent's weights, if any): its
        training result and test error."""
        training = self.config.training
        net = self.space.build(point)
        if parent is not None:
            inherit(net, load_network_record(self.results, parent.id).state_dict)
        config = TrainConfig.from_point(
            point, epochs, training.pruning, training.quantization,
            self.config.device, seed,
        )
        config = clip(config, data)
        result = self.trainer(net, data, config)
        if not isinstance(result, TrainResult):
            raise TrainingError(f"the trainer returned {type(result).__name__}, not a "
                                "TrainResult")
        test_error = evaluate(result.model, batches(data.test, data, config, False), data.measure)
        return result, test_error

    def _data(self, point: Point) -> DataBundle:
        """The data at the point's input size: resized once per searched resolution."""
        if not self.program.input.searched:
            return self.data
        return self.resizer(self.space.trace_input(point))

    # --- stages ---------------------------------------------------------------------------

    def run(self) -> list[Trial]:
        """Run (or resume) the whole search, holding the results directory's lock; returns
        the Pareto front.

        Raises:
            LockError: another search is writing the results directory.
            ResultsWriteError: the results cannot be written (read-only, disk full, ...).
            ResumeError: the directory holds a search of something else.
            SearchError: every network of a stage failed.
        """
        with locked(self.results), writing(self.results):
            return self._run()

    def _resume(self) -> None:
        """The state rebuilt from the journal (which gets its first event if new), cached
        in `state.json`, and the setup written."""
        records = self.journal.records()
        self.state = load_state(self.results, self.state.experiment_hash, self.state.arch_hash,
                                self.state.settings, records)
        if not any(r["event"] == SEARCH_EVENT for r in records):
            self.journal.append(search_event(self.state))
            if self.state.seconds:  # the time of a journal written before the first event
                self.journal.append({"event": RUN_EVENT, "seconds": self.state.seconds})
        elif (extended := extension(records, self.state.settings)) is not None:
            self.journal.append(extended)  # raised budgets, other [stopping] rules
            self.report("extending the search: " + "; ".join(extended["changes"]))
        save_state(self.results, self.state)
        self._write_setup()

    def _run(self) -> list[Trial]:
        started = time.monotonic()
        self._resume()
        # stopping hook 1 of 2 (`stopping`): the rules' clock starts; a finished search ends
        self.stopper = Stopper(self.config.stopping, self.results, self.state.seconds)
        if (idle := nothing_left(self)) is not None:
            self.report(idle)
            return self._finish()
        self._stopping()  # a stop already journalled, or a time limit already passed
        self.journal.append({"event": RUN_START_EVENT})  # a killed run counts up to its last event
        for trial in self.journal.trials():
            if trial.status == "interrupted":
                self.report(f"trial {trial.id} was interrupted: running it again")
                parent = None if trial.parent is None else self.journal.trial(trial.parent)
                self.run_trial(trial.stage, trial.params, int(trial.extra.get("epochs", 1)),
                               parent, trial.extra.get("changes", ()), trial.id)
            else:
                self.strategy.observe(trial)
        stages = self.config.stages
        epochs = stages.epochs
        self._stage("sobol", stages.sobol, 1, epochs[0], self._sobol_batch)
        self._stage("bo", stages.bo_rounds * stages.bo_batch, stages.bo_batch, epochs[1],
                    self._bo_batch)
        self._stage("morph", stages.morph_rounds, 1, epochs[2], self._morph_batch)
        front = self._finish()
        retrain(self, front)
        seconds = time.monotonic() - started
        self.timings.total += seconds
        self.state.seconds += seconds
        self.journal.append({"event": RUN_EVENT, "seconds": round(seconds, 3)})
        save_state(self.results, self.state)
        return front

    def _stage(self, stage: str, total: int, batch: int, epochs: int,
               propose: Callable[[int], list[Proposal]]) -> None:
        """Train `total` networks in a stage (resuming counts), with a progress bar on a
        terminal. Infeasible points cost no training and do not count, but a stage gives
        up after `PROPOSALS_PER_TRIAL` proposals per network it was to train."""
        def counts() -> tuple[int, int]:
            mine = [t for t in self.journal.trials() if t.stage == stage]
            return sum(t.status in TRAINED for t in mine), len(mine)

        empty = 0
        ran: list[Trial] = []
        done, proposed = counts()
        self.strategy.last_rejection = None
        with tqdm(total=total, initial=done, desc=f"{stage:>5}", unit="net", leave=False,
                  disable=None if self.progress else True) as bar:
            while done < total and self.stop is None:
                if proposed >= PROPOSALS_PER_TRIAL * total:
                    self._short(stage, done, total, f"{proposed - done} of {proposed} infeasible")
                    break
                asked, before = min(batch, total - done), self.timings.generation
                with self.timings.measure("generation"):
                    proposals = propose(asked)
                self.timings.batches.append((stage, asked, self.timings.generation - before))
                if not proposals:
                    empty += 1
                    if empty > 3:
                        why = self.strategy.last_rejection
                        self._short(stage, done, total, "no new candidates"
                                    f"{f' (last rejected: {why})' if why else ''}")
                        break
                for point, parent, changes in proposals:
                    ran.append(self.run_trial(stage, point, epochs, parent, changes))
                    if self._stopping():  # stopping hook 2 of 2: after each trial
                        break
                done, proposed = counts()
                bar.n = done
                bar.refresh()
        self._check_stage(stage, [t for t in ran if t.status in TRAINED])

    def _stopping(self) -> bool:
        """Whether a `[stopping]` rule ends the search (`Stopper.check`); a new stop is
        journalled and said once, and kept in `self.stop`, so later stages train nothing."""
        if self.stop is None:
            self.stop = self.stopper.check(self.journal)
            if self.stop is not None and self.stop.new:
                self.journal.append(self.stop.event)
                self.report(f"stopping the search: {self.stop.reason}")
        return self.stop is not None

    def _short(self, stage: str, done: int, total: int, why: str) -> None:
        """Say why a stage trains fewer networks than it asks for; stop the search when
        nothing could ever be trained (no point fits the budgets)."""
        short = f"stage {stage}: no more points to train ({done} of {total} networks): {why}"
        if done == 0 and not any(t.status == "completed" for t in self.journal.trials()):
            raise SearchError(f"{self.config.path}: no network of {self.config.arch.name} "
                              f"can be trained: {short}. {LOOSEN}")
        self.report(f"{short}; going on")

    def _check_stage(self, stage: str, trained: list[Trial]) -> None:
        """Stop the search when every network a stage trained in this run failed: two or
        more, or one while nothing has completed (then the cause is the trainer, the
        data or the device, not the points)."""
        if not trained or any(t.status != "failed" for t in trained):
            return
        if len(trained) == 1 and any(t.status == "completed" for t in self.journal.trials()):
            return
        raise SearchError(
            f"every network of stage {stage} failed ({len(trained)} of {len(trained)}); the "
            f"last because: {trained[-1].reason}. The failed trials are in {self.journal.path}"
            "; fix the cause and run the search again to go on")

    def _sobol_batch(self, n: int) -> list[Proposal]:
        return [(p, None, ()) for p in self.strategy.initial(n)]

    def _bo_batch(self, n: int) -> list[Proposal]:
        return [(p, None, ()) for p in self.strategy.propose(n)]

    def _morph_batch(self, n: int) -> list[Proposal]:
        """The most promising (by the strategy's score) of `morph_candidates` feasible
        children of random Pareto-front networks."""
        front = pareto_front(self.journal.trials(), self.objectives)
        candidates: list[tuple[Mutation, Trial]] = []
        for _ in range(self.config.stages.morph_candidates if front else 0):
            parent = self.rng.choice(front)
            mutation = mutate(self.program, parent.params, self.rng)
            if mutation is not None and self.infeasibility(mutation.point) is None:
                candidates.append((mutation, parent))
        if not candidates:
            return []
        best, parent = candidates[self.strategy.best([m.point for m, _ in candidates])]
        return [(best.point, parent, best.changes)]

    # --- results ---------------------------------------------------------------------------

    def _finish(self) -> list[Trial]:
        """Keep only Pareto networks and write the CSV; returns the front."""
        trials = self.journal.trials()
        front = pareto_front(trials, self.objectives)
        prune_networks(self.results, {t.id for t in front})
        write_csv(trials, self.results / CSV, self.data.measure)
        return front
