"""Early stopping of hopeless trials: the rules of `[early_stopping]`.

With a rule on, the trainer measures the validation error after every epoch and asks
a `Monitor` whether to go on. The monitor judges a trial by `Peers`, a small picklable
snapshot of the per-epoch error curves of comparable finished trials, which the driver
builds from the journal when it hands the trial out (`peers`): a worker never reads the
journal, and a resumed search rebuilds the same snapshots from it.

- `median`: stop after epoch k when the error is worse (higher) than the median of the
  completed trials' errors after epoch k;
- `asha`: at the rung epochs r, r*eta, r*eta^2, ... (r = `grace_epochs`), stop unless
  the error is among the best ceil(n/eta) of the n trials (this one included, stopped
  ones too) that reached the rung: successive halving without synchronous rounds.

No trial is stopped before `grace_epochs` epochs, nor after its last epoch, nor while
fewer than `min_trials` comparable trials have an error at that epoch. Comparable
trials train the same epochs (the pruning schedule depends on them) and start alike:
from scratch, or (morphism children) from a parent's weights, so a child is judged
only against other children. With `compare = "cheaper"`, they also cost no more in
any cost objective (flash, RAM, latency, as minimised): a trial is then stopped only
when it is likely dominated, and a small network is never stopped for erring more
than large ones. With `[scoring]` runs, run i is judged against the peers' run i. The
errors of a curve are those of the float network (before quantisation).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable

from .experiment import EarlyStoppingSettings, Experiment
from .objective import error_phrase
from .pricing import Pricer
from .trials import Trial

#: The journalled field of a trial's per-epoch validation errors, one list per run.
CURVES = "curves"


@dataclass(frozen=True)
class Peers:
    """What a rule needs to judge one trial's trainings (it travels in the `Task`).

    Attributes:
        settings: the `[early_stopping]` section.
        epochs: the trial's epochs (it is never stopped after its last).
        measure: how errors read (`objective`), for the reason.
        curves: per scoring run, the error curves of the comparable finished trials.
    """

    settings: EarlyStoppingSettings
    epochs: int
    measure: str
    curves: tuple[tuple[tuple[float, ...], ...], ...]

    @property
    def trials(self) -> str:
        """What the peers are, for the reason."""
        return "trials that cost no more" if self.settings.compare == "cheaper" else "trials"

    def at(self, run: int, epoch: int) -> list[float]:
        """The peers' errors after `epoch` (from 1) of scoring run `run`."""
        runs = self.curves[run] if run < len(self.curves) else ()
        return [curve[epoch - 1] for curve in runs if len(curve) >= epoch]

    def rungs(self) -> list[int]:
        """The epochs at which `asha` judges: grace_epochs * eta**i before the last."""
        rung, found = self.settings.grace_epochs, []
        while rung < self.epochs:
            found.append(rung)
            rung *= self.settings.eta
        return found

    def verdict(self, run: int, epoch: int, error: float) -> str | None:
        """Why to stop a training whose error after `epoch` is `error`; None: go on."""
        settings = self.settings
        if not settings.grace_epochs <= epoch < self.epochs or math.isnan(error):
            return None
        if settings.rule == "asha" and epoch not in self.rungs():
            return None
        values = self.at(run, epoch)
        if len(values) < settings.min_trials:
            return None
        head = (f"validation {error_phrase(error, self.measure)} after epoch {epoch} of "
                f"{self.epochs}")
        if settings.rule == "median":
            median = statistics.median(values)
            if error <= median:
                return None
            return (f"{head} is worse than the median {error_phrase(median, self.measure)} "
                    f"of {len(values)} completed {self.trials} at epoch {epoch}")
        keep = math.ceil((len(values) + 1) / settings.eta)
        if sum(v < error for v in values) < keep:
            return None
        cutoff = sorted(values)[keep - 1]
        return (f"{head} is not in the best {keep} of {len(values) + 1} {self.trials} at rung "
                f"epoch {epoch} (asha, eta {settings.eta}: the best have "
                f"{error_phrase(cutoff, self.measure)} or better)")


class Monitor:
    """The per-epoch callback of one training (`TrainConfig.monitor`): True stops it,
    and `reason` says why."""

    def __init__(self, peers: Peers, run: int) -> None:
        self.peers = peers
        self.run = run
        self.reason: str | None = None

    def __call__(self, epoch: int, error: float) -> bool:
        self.reason = self.peers.verdict(self.run, epoch, error)
        return self.reason is not None


def peers(experiment: Experiment, trials: Iterable[Trial], trial: Trial, measure: str,
          pricer: Pricer) -> Peers | None:
    """The snapshot that judges `trial`, from the finished trials (None: no rule).

    `median` compares with completed trials, `asha` with every trial that reached the
    rung (stopped ones too); only trials of the same epochs and start (`comparable`),
    and with `compare = "cheaper"` that cost no more than `trial` (priced by `pricer`)
    in each cost objective."""
    settings = experiment.early_stopping
    if settings.rule == "none":
        return None
    statuses = ("completed",) if settings.rule == "median" else ("completed", "stopped")
    costs: dict[str, float] = {}
    if settings.compare == "cheaper":
        values = pricer.price(trial.params).values
        costs = {o: values[o] for o in experiment.objectives.minimize if o != "error"}
    found = [t.extra[CURVES] for t in trials
             if t.id != trial.id and t.status in statuses and comparable(t, trial)
             and t.extra.get(CURVES) and all(
                 (cost := t.objective(o)) is not None and cost <= limit
                 for o, limit in costs.items())]
    runs = max((len(c) for c in found), default=0)
    return Peers(settings, epochs(trial), measure, tuple(
        tuple(tuple(c[r]) for c in found if len(c) > r) for r in range(runs)))


def epochs(trial: Trial) -> int:
    """The epochs a trial trains (as journalled when it started)."""
    return int(trial.extra.get("epochs", 1))


def comparable(a: Trial, b: Trial) -> bool:
    """Whether two trials' curves may be compared: same epochs, same start."""
    return epochs(a) == epochs(b) and (a.parent is None) == (b.parent is None)


def stopped_reason(monitor: Monitor | None, epochs_run: int) -> str:
    """Why a training stopped early: the rule's reason, or the trainer's own decision."""
    if monitor is not None and monitor.reason is not None:
        return monitor.reason
    return f"the trainer stopped it after epoch {epochs_run}"
