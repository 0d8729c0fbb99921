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
stage whose networks all fail stops it (`_check_stage`). With `[early_stopping]`, a
task carries the curves of comparable finished trials, and a trial worse than them
after an epoch is stopped and recorded as stopped (`earlystop`). A broken data binding
stops it before any training. A search holds its results directory's lock
(`lock.locked`) while it runs; every event goes to the append-only journal
first, so re-running the same command resumes where the last run stopped.
"""

from __future__ import annotations

import json
import random
import time
from functools import partial
from typing import Callable, Sequence, TypeVar

from tqdm import tqdm

from ..nets.morph import Mutation, mutate
from ..nets.point import Point, active
from ..space import Space, compile_file
from .axstrategy import Strategy
from .checks import SearchError, check_device, check_loss, check_splitter
from .data import DataError, resolve
from .earlystop import peers
from .execution import Executor, LocalExecutor, make_executor
from .experiment import Experiment
from .feasible import LOOSEN
from .final import final_data, retrain
from .identity import canonical_settings, experiment_hash
from .journal import RUN_EVENT, RUN_START_EVENT, SEARCH_EVENT, Journal
from .lock import locked
from .networks import load_network_record, prune_networks, save_network
from .prepare import fit_space, importable, load_prepared
from .pricing import Pricer, budget_bytes, budgeted_target, key
from .results import CSV, JOURNAL, SETUP, sha256_text, write_atomic, writing
from .runner import Outcome, Runner, Task
from .scoring import runs
from .state import State, extension, load_state, save_state, search_event
from .stopping import Stop, Stopper, nothing_left
from .strategy import make_strategy
from .timings import Timings
from .train import Trainer, default_trainer
from .trials import TRAINED, Trial, pareto_front, summary, write_csv
from .windows import pinned_steps

#: How many points a stage may propose per network it is to train before giving up.
PROPOSALS_PER_TRIAL = 10

T = TypeVar("T")




Proposal = tuple[Point, "Trial | None", Sequence[str]]


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
        check_splitter(experiment, self.program, self.data)
        check_loss(experiment, self.program, self.data)
        self._bound("scoring", partial(runs, self.data, experiment.scoring, experiment.seed))
        self._bound("final", partial(final_data, self.data, experiment.final))
        self.arch_source = experiment.arch.read_text(encoding="utf-8")
        self.target = budgeted_target(experiment.target)
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
        self.runner = Runner(experiment, self.space, self.data, self.trainer, self.pricer)
        #: Where trials train; set up (Ray started or joined) when the search runs.
        self.executor: Executor = LocalExecutor(self.runner)
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

    def _start(self, stage: str, point: Point, epochs: int, parent: Trial | None,
               changes: Sequence[str], trial_id: int | None) -> int:
        """Journal a trial's start (a new id unless it is re-run); returns its id."""
        if trial_id is None:  # the journal's next id: never one it has used
            trial_id = self.state.next_trial
            self.state.next_trial += 1
        self.journal.append({
            "event": "started", "trial": trial_id, "stage": stage, "params": point,
            "parent": None if parent is None else parent.id, "changes": list(changes),
            "epochs": epochs,
        })
        save_state(self.results, self.state)
        return trial_id

    def _task(self, trial_id: int) -> Task:
        """What a worker needs to train a started trial: its parent's weights travel
        with it (workers share no filesystem with the driver)."""
        trials = self.journal.trials()
        trial = next(t for t in trials if t.id == trial_id)
        weights = None if trial.parent is None else load_network_record(
            self.results, trial.parent).state_dict
        return Task(trial_id, trial.params, int(trial.extra.get("epochs", 1)), weights,
                    peers(self.config, trials, trial, self.data.measure, self.pricer))

    def _finish_trial(self, trial_id: int, point: Point, outcome: Outcome) -> Trial:
        """Save a completed trial's network, journal its outcome, tell the strategy."""
        if outcome.status == "completed" and outcome.weights is not None:
            normalization = self.data.normalization
            save_network(self.results, trial_id, outcome.weights, point, self.arch_source, {
                    "val_error": outcome.metrics["error"],
                    "normalization": normalization and normalization.as_json()})
        self.journal.append({
            "event": "finished", "trial": trial_id, "status": outcome.status,
            "reason": outcome.reason, **outcome.metrics,
        })
        trial = self.journal.trial(trial_id)
        self.strategy.observe(trial)
        self.report(summary(trial, self.data.measure))
        return trial

    def _submit(self, stage: str, proposal: Proposal, epochs: int,
                trial_id: int | None = None) -> Trial | None:
        """Start a proposed trial on the executor; an infeasible point is recorded at once
        (it costs no training) and returned."""
        point, parent, changes = proposal
        trial_id = self._start(stage, point, epochs, parent, changes, trial_id)
        reason = self.infeasibility(point)
        if reason is not None:
            return self._finish_trial(trial_id, point, Outcome("infeasible", reason))
        self.executor.submit(self._task(trial_id))
        return None

    def _collect(self) -> Trial:
        """Wait for the next trial to finish on the executor, and record it."""
        with self.timings.measure("training"):
            task, outcome = self.executor.next()
        return self._finish_trial(task.trial, task.point, outcome)

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
        self.executor = make_executor(self.config, self.runner)
        try:
            self._rerun_interrupted()
            stages = self.config.stages
            epochs = stages.epochs
            self._stage("sobol", stages.sobol, 1, epochs[0], self._sobol_batch)
            self._stage("bo", stages.bo_rounds * stages.bo_batch, stages.bo_batch, epochs[1],
                        self._bo_batch)
            self._stage("morph", stages.morph_rounds, 1, epochs[2], self._morph_batch)
        finally:
            self.executor.close()
        front = self._finish()
        retrain(self, front)
        seconds = time.monotonic() - started
        self.timings.total += seconds
        self.state.seconds += seconds
        self.journal.append({"event": RUN_EVENT, "seconds": round(seconds, 3)})
        save_state(self.results, self.state)
        return front

    def _rerun_interrupted(self) -> None:
        """Train again, under their ids, the trials a killed run left unfinished (all at
        once on Ray); the strategy sees every finished trial first."""
        waiting = []
        for trial in self.journal.trials():
            if trial.status == "interrupted":
                self.report(f"trial {trial.id} was interrupted: running it again")
                waiting.append(trial)
            else:
                self.strategy.observe(trial)
        while waiting or self.executor.running():
            while waiting and self.executor.free():
                trial = waiting.pop(0)
                parent = None if trial.parent is None else self.journal.trial(trial.parent)
                self._submit(trial.stage, (trial.params, parent, trial.extra.get("changes", ())),
                             int(trial.extra.get("epochs", 1)), trial.id)
            if self.executor.running():
                self._collect()

    def _stage(self, stage: str, total: int, batch: int, epochs: int,
               propose: Callable[[int], list[Proposal]]) -> None:
        """Train `total` networks in a stage (resuming counts), with a progress bar on a
        terminal. Infeasible points cost no training and do not count, but a stage gives
        up after `PROPOSALS_PER_TRIAL` proposals per network it was to train.

        With one worker the stage's batches are proposed whole and trained in turn; with
        several, each free worker gets the next point at once, proposed while the points
        in flight are pending (`Strategy.pending`)."""
        def counts() -> tuple[int, int]:
            mine = [t for t in self.journal.trials() if t.stage == stage]
            return sum(t.status in TRAINED for t in mine), len(mine)

        empty, short = 0, None
        ran: list[Trial] = []
        queued: list[Proposal] = []  # proposed, not yet started (one worker: a batch)
        done, proposed = counts()
        self.strategy.last_rejection = None
        executor = self.executor
        with tqdm(total=total, initial=done, desc=f"{stage:>5}", unit="net", leave=False,
                  disable=None if self.progress else True) as bar:
            while (done < total and self.stop is None) or executor.running() or queued:
                if self.stop is not None:
                    queued = []  # proposed, never started: nothing to record
                while queued and executor.free():
                    if (trial := self._submit(stage, queued.pop(0), epochs)) is not None:
                        ran.append(trial)
                room = total - done - len(executor.running()) - len(queued)
                if short is None and self.stop is None and not queued and room > 0 \
                        and executor.free():
                    if proposed >= PROPOSALS_PER_TRIAL * total:
                        short = f"{proposed - done} of {proposed} infeasible"
                    else:
                        queued = self._propose(stage, min(batch, room) if executor.batches
                                               else min(room, executor.free()), propose)
                        empty += not queued
                        why = self.strategy.last_rejection
                        if empty > 3:
                            short = f"no new candidates{f' (last rejected: {why})' if why else ''}"
                        continue
                if short is not None and not executor.running():
                    self._short(stage, done, total, short)
                    break
                if executor.running():
                    ran.append(self._collect())
                    self._stopping()  # stopping hook 2 of 2: after each trained trial
                done, proposed = counts()
                bar.n = done
                bar.refresh()
        self._check_stage(stage, [t for t in ran if t.status in TRAINED])

    def _propose(self, stage: str, asked: int,
                 propose: Callable[[int], list[Proposal]]) -> list[Proposal]:
        """`asked` proposals, the points in flight pending, timed as generation."""
        before = self.timings.generation
        with self.timings.measure("generation"), self.strategy.pending(
                [task.point for task in self.executor.running()]):
            proposals = propose(asked)
        self.timings.batches.append((stage, asked, self.timings.generation - before))
        return proposals

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
        children of random Pareto-front networks (drawn from the seed and the next trial
        id: a resumed search draws as the uninterrupted one)."""
        front = pareto_front(self.journal.trials(), self.objectives)
        rng = random.Random(f"morph {self.config.seed} {self.state.next_trial}")
        candidates: list[tuple[Mutation, Trial]] = []
        for _ in range(self.config.stages.morph_candidates if front else 0):
            parent = rng.choice(front)
            mutation = mutate(self.program, parent.params, rng)
            if mutation is not None and key(active(self.program, mutation.point)) not in \
                    self.strategy.tried and self.infeasibility(mutation.point) is None:
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
