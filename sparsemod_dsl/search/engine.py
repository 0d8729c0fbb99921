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
recorded as infeasible, with the reason. A trial that raises is recorded as
failed and the search goes on. Every event goes to the append-only journal
first, so re-running the same command resumes where the last run stopped.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from tqdm import tqdm

from ..errors import SparsemodError
from ..lang.infer import MAX_LEN
from ..nets.cost import cost
from ..nets.morph import Mutation, inherit, mutate
from ..nets.point import Point
from ..nets.targets import Target, load_target
from ..space import Space, compile_file
from .axstrategy import Strategy
from .data import load_dataset, resolve
from .experiment import Experiment, canonical_settings, experiment_hash
from .journal import Journal
from .networks import load_network_record, prune_networks, save_network
from .pricing import Pricer
from .results import CSV, JOURNAL, SETUP, sha256_text, write_atomic
from .state import load_state, save_state
from .strategy import make_strategy
from .train import TrainConfig, Trainer, batches, default_trainer, evaluate
from .trials import Trial, pareto_front, write_csv

#: Trial statuses that cost a training run.
TRAINED = ("completed", "failed")
#: How many points a stage may propose per network it is to train before giving up.
PROPOSALS_PER_TRIAL = 10


class SearchError(SparsemodError):
    """The search cannot run (bad data binding, no feasible point found, ...)."""


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
        self.config = experiment
        self.report = report
        self.progress = progress
        data = experiment.data
        options = {**data.options, **({"collate": data.collate} if data.collate else {})}
        self.data = load_dataset(data.dataset, experiment.seed, options)
        self.space: Space = compile_file(
            experiment.arch, self.data.input_shape, self.data.classes
        )
        self.program = self.space.program
        self._check_splitter()
        self.arch_source = experiment.arch.read_text(encoding="utf-8")
        self.target = self._target()
        custom = experiment.training.trainer
        self.trainer: Trainer = trainer or (resolve(custom) if custom else default_trainer)
        self.rng = random.Random(experiment.seed)
        self.results = experiment.results
        self.results.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.results / JOURNAL)
        self.state = load_state(
            self.results, experiment_hash(experiment), sha256_text(self.arch_source),
            canonical_settings(experiment),
        )
        self.objectives = list(experiment.objectives.minimize)
        self.pricer = Pricer(self.program, self.target, self._precision(),
                             experiment.training.pruning and experiment.target.weights == "sparse")
        self.strategy: Strategy = make_strategy(
            experiment.stages.strategy, self.program, self.objectives, self.pricer,
            experiment.seed, fast,
        )
        self.strategy.report = report
        self.timings = Timings()
        self._write_setup()

    def _check_splitter(self) -> None:
        """`data.splitter` and a `train.max_len` parameter go together: the network sees
        chunks of max_len steps, which only the splitter makes."""
        declared = any(p.name == MAX_LEN for p in self.program.parameters)
        if self.config.data.splitter != declared:
            raise SearchError(
                f"{self.config.path}: data.splitter is {str(self.config.data.splitter).lower()}"
                f" but {self.config.arch.name} {'declares' if declared else 'has no'} "
                f"`max_len` in its train section; they go together (the splitter cuts "
                f"sequences into chunks of train.max_len steps)"
            )
        if declared and self.data.kind != "sequence":
            raise SearchError(f"{self.config.path}: data.splitter needs sequence data")

    def _target(self) -> Target | None:
        settings = self.config.target
        if settings.name is None:
            return None
        target = load_target(settings.name)
        if settings.ram_bytes is not None:  # the budget itself: nothing reserved on top
            target = dataclasses.replace(target, sram_bytes=settings.ram_bytes,
                                         reserved_ram_bytes=0)
        if settings.flash_bytes is not None:
            target = dataclasses.replace(target, flash_bytes=settings.flash_bytes,
                                         reserved_flash_bytes=0)
        return target

    def _write_setup(self) -> None:
        """What `report` and `show` need to rebuild networks without the experiment file."""
        write_atomic(self.results / SETUP, json.dumps({
            "experiment": str(self.config.path),
            "arch": str(self.config.arch),
            "input_shape": list(self.data.input_shape),
            "classes": self.data.classes,
            "target": self.config.target.name,
            "quantization": self.config.training.quantization,
            "weights": self.config.target.weights,
            "objectives": self.objectives,
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
        if trial_id is None:
            trial_id = self.state.next_trial
            self.state.next_trial += 1
            save_state(self.results, self.state)
        self.journal.append({
            "event": "started", "trial": trial_id, "stage": stage, "params": point,
            "parent": None if parent is None else parent.id, "changes": list(changes),
            "epochs": epochs,
        })
        with self.timings.measure("training"):
            outcome = self._evaluate(point, epochs, parent, trial_id)
        self.journal.append({
            "event": "finished", "trial": trial_id, "status": outcome.status,
            "reason": outcome.reason, **outcome.metrics,
        })
        trial = self.journal.trial(trial_id)
        self.strategy.observe(trial)
        self.report(summary(trial))
        return trial

    def _evaluate(self, point: Point, epochs: int, parent: Trial | None, trial_id: int) -> Outcome:
        reason = self.infeasibility(point)
        if reason is not None:
            return Outcome("infeasible", reason)
        training = self.config.training
        try:
            net = self.space.build(point)
            if parent is not None:
                inherit(net, load_network_record(self.results, parent.id).state_dict)
            config = TrainConfig.from_point(
                point, epochs, training.pruning, training.quantization,
                self.config.device, self.config.seed + trial_id,
            )
            result = self.trainer(net, self.data, config)
            test_error = evaluate(result.model, batches(self.data.test, self.data, config, False))
        except SparsemodError as error:
            return Outcome("failed", str(error))
        except (RuntimeError, ValueError) as error:  # e.g. out of memory, NaNs in torch
            return Outcome("failed", f"{type(error).__name__}: {error}")
        sparse = result.sparsity if self.pricer.sparse_flash else 0.0
        measured = cost(self.program, point, self.target, self._precision(), sparse)
        save_network(self.results, trial_id, result.float_model.state_dict(), point,
                     self.arch_source, {"val_error": result.val_error})
        return Outcome("completed", metrics={
            "error": result.val_error,
            "flash_bytes": measured.flash_bytes,
            "ram_bytes": measured.ram_bytes,
            "macs": measured.macs,
            "latency_ms": measured.latency_ms,
            "train_seconds": result.train_seconds,
            "sparsity": result.sparsity,
            "test_error": test_error,
        })

    # --- stages ---------------------------------------------------------------------------

    def run(self) -> list[Trial]:
        """Run (or resume) the whole search; returns the Pareto front."""
        started = time.monotonic()
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
        self.timings.total += time.monotonic() - started
        self.state.seconds += time.monotonic() - started
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
        done, proposed = counts()
        self.strategy.last_rejection = None
        with tqdm(total=total, initial=done, desc=f"{stage:>5}", unit="net", leave=False,
                  disable=None if self.progress else True) as bar:
            while done < total:
                if proposed >= PROPOSALS_PER_TRIAL * total:
                    self.report(f"stage {stage}: {proposed} points proposed, {done} feasible;"
                                " going on")
                    return
                asked, before = min(batch, total - done), self.timings.generation
                with self.timings.measure("generation"):
                    proposals = propose(asked)
                self.timings.batches.append((stage, asked, self.timings.generation - before))
                if not proposals:
                    empty += 1
                    if empty > 3:
                        why = self.strategy.last_rejection
                        self.report(f"stage {stage}: no new candidates"
                                    f"{f' (last rejected: {why})' if why else ''}; going on")
                        return
                for point, parent, changes in proposals:
                    self.run_trial(stage, point, epochs, parent, changes)
                done, proposed = counts()
                bar.n = done
                bar.refresh()

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
        write_csv(trials, self.results / CSV)
        return front


def summary(trial: Trial) -> str:
    """One line per trial, in units users read."""
    head = f"trial {trial.id:>3} [{trial.stage}]"
    if trial.status != "completed":
        return f"{head} {trial.status}: {trial.reason}"
    latency = f", latency {trial.latency_ms:.2f} ms" if trial.latency_ms is not None else ""
    return (f"{head} error {100 * (trial.error or 0):.1f}%, "
            f"flash {(trial.flash_bytes or 0) / 1024:.1f} KB, "
            f"RAM {(trial.ram_bytes or 0) / 1024:.1f} KB{latency}, "
            f"trained in {trial.train_seconds or 0:.1f} s")
