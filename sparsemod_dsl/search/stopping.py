"""When a search ends before its stage budgets are spent, and why a search ended.

The `[stopping]` rules of an experiment (`experiment.StoppingSettings`):

- `tolerance`: stop when the hypervolume gained at most `tolerance` percentage points
  over the last `window` trained trials (completed or failed; infeasible points cost no
  training and do not count). The hypervolume is the report's (`figdata.figures`: the
  same reference box, the same trials, from the same `setup.json` and journal), so the
  number the report plots is the number the rule reads. Only trials trained since the
  search's settings last changed count (`state.current_settings`: its start, or the
  latest `EXTEND_EVENT`), so that a search extended with raised budgets goes on for at
  least `window` trials before the rule can stop it again. While the hypervolume is 0
  (no trial inside the reference box yet) the rule never stops the search.
- `max_minutes`: stop once the search has run that long, over all its runs, as the
  report counts its time (`state.spent_seconds`); raise it to extend a stopped search.

`Stopper.check` answers "stop now, and why?"; the engine asks it when a run starts and
after each trial, journals a new stop as a `STOP_EVENT` (the journal is the single
source of truth) and trains no more points, while the CSV, the front and the final
retraining are still written. A stop journalled after the latest settings change holds
on every later run with the same settings: `nothing_left` then says so instead of
training anything. `why_stopped` tells the report and the command line why a search
ended: its stop, its budgets spent, or a last run that did not end.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .experiment import StoppingSettings
from .figdata import budgets, figures
from .final import missing
from .journal import RUN_EVENT, RUN_START_EVENT, Journal
from .results import SETUP
from .state import current_settings
from .trials import TRAINED, Trial, pareto_front

if TYPE_CHECKING:
    from .engine import Search

#: The journal event of a search stopped by a `[stopping]` rule: its `rule` (`tolerance`
#: or `time`), the `reason` in words, and the figures the rule read.
STOP_EVENT = "stopped"


@dataclass(frozen=True)
class Stop:
    """A decision to stop: its journal event, and whether it is new in this run."""

    event: dict[str, Any]
    new: bool = True

    @property
    def reason(self) -> str:
        """Why, in words, with the numbers."""
        return str(self.event["reason"])


@dataclass
class Stopper:
    """The `[stopping]` rules of one run of a search.

    Args:
        settings: the experiment's `[stopping]` section.
        results: the results directory; its `setup.json` gives the report's reference box.
        spent: the seconds the search ran before this run (`State.seconds`); this run's
            are counted from the stopper's creation.
    """

    settings: StoppingSettings
    results: Path
    spent: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def minutes(self) -> float:
        """The search's time so far, all runs, in minutes."""
        return (self.spent + time.monotonic() - self.started) / 60

    def check(self, journal: Journal) -> Stop | None:
        """Whether the search stops now, and why: the stop the journal already holds for
        the current settings (`new` False), else a rule met now, else None (at once
        without rules: a stop journalled under other rules held only until they changed)."""
        if self.settings.tolerance is None and self.settings.max_minutes is None:
            return None
        records = journal.records()
        since, _ = current_settings(records)
        held = [r for r in records[since + 1:] if r["event"] == STOP_EVENT]
        if held:
            return Stop(dict(held[-1]), new=False)
        limit = self.settings.max_minutes
        if limit is not None and (minutes := self.minutes()) >= limit:
            return Stop({"event": STOP_EVENT, "rule": "time", "minutes": round(minutes, 3),
                         "max_minutes": limit, "reason": (
                             "wall-clock limit reached: the search has run "
                             + (f"{minutes:.1f} min" if minutes >= 1 else f"{60 * minutes:.1f} s")
                             + f", stopping.max_minutes = {limit:g}")})
        if self.settings.tolerance is None:
            return None
        return self._tolerance(records, journal.trials(), since)

    def _tolerance(self, records: Sequence[Mapping[str, Any]], trials: list[Trial],
                   since: int) -> Stop | None:
        """The tolerance rule over the last `window` trials trained since `since`."""
        status = {t.id: t.status for t in trials}
        recent = [r["trial"] for r in records[since + 1:]
                  if r["event"] == "finished" and status.get(r["trial"]) in TRAINED]
        window, tolerance = self.settings.window, self.settings.tolerance
        if len(recent) < window:
            return None
        info = json.loads((self.results / SETUP).read_text(encoding="utf-8"))
        progress = hypervolumes(info, trials, records)
        last = set(recent[-window:])
        first = next((i for i, (tid, _, _) in enumerate(progress) if tid in last), None)
        now = progress[-1][2] if progress else 0.0
        before = now if first is None else progress[first - 1][2] if first else 0.0
        gain = round(now - before, 6)  # 0 is 0, whatever the rounding of two volumes
        if now <= 0.0 or gain > (tolerance or 0.0):
            return None
        return Stop({"event": STOP_EVENT, "rule": "tolerance", "gain": round(gain, 4),
                     "hypervolume": round(now, 4), "before": round(before, 4),
                     "window": window, "tolerance": tolerance, "reason": (
                         f"tolerance reached: the hypervolume gained {gain:.2f} percentage "
                         f"points ({before:.2f}% -> {now:.2f}% of the reference box) over the "
                         f"last {window} trained trials, at most stopping.tolerance = "
                         f"{tolerance:g}")})


def hypervolumes(info: Mapping[str, Any], trials: Sequence[Trial],
                 records: Sequence[Mapping[str, Any]]) -> list[tuple[int, float, float]]:
    """The report's hypervolume after each completed trial (`Figures.hypervolume`), from
    `setup.json`'s `info`, as `report.report` computes it."""
    classes = info["classes"] if info.get("loss", "cross_entropy") == "cross_entropy" else None
    return figures(trials, info["objectives"], str(info.get("measure", "cross_entropy")),
                   records, budgets(info), classes).hypervolume


def stage_budgets(stages: Mapping[str, Any]) -> dict[str, int]:
    """Networks each stage trains, from the `[stages]` settings (as journalled)."""
    return {"sobol": int(stages["sobol"]), "bo": int(stages["bo_rounds"] * stages["bo_batch"]),
            "morph": int(stages["morph_rounds"])}


def _budgets_spent(trials: Sequence[Trial], stages: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether every stage trained its networks, and the counts in words."""
    budget = stage_budgets(stages)
    done = {s: sum(t.stage == s and t.status in TRAINED for t in trials) for s in budget}
    return (all(done[s] >= n for s, n in budget.items()),
            ", ".join(f"{s} {done[s]} of {n}" for s, n in budget.items()))


def nothing_left(search: Search) -> str | None:
    """Why a re-run of `search` has nothing to do, or None: its last run ended, with no
    trial interrupted and no final retraining missing, and a stop journalled for the
    current settings or every stage's budget trained."""
    trials = search.journal.trials()
    front = pareto_front(trials, search.objectives)
    if (not _last_run_ended(search.journal.records()) or missing(search, front)
            or any(t.status == "interrupted" for t in trials)):
        return None
    stop = search.stopper.check(search.journal)
    key = "the stage budgets (stages.sobol, stages.bo_rounds, stages.morph_rounds)"
    if stop is not None and not stop.new:
        return (f"nothing left to do: the search stopped ({stop.reason}); change [stopping] "
                f"or raise {key} in {search.config.path} to go on")
    spent, counts = _budgets_spent(trials, search.state.settings["stages"])
    return (f"nothing left to do: every stage trained its budget ({counts}); raise {key} "
            f"in {search.config.path} to extend the search") if spent else None


def _last_run_ended(records: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the journal's last run ended with its `RUN_EVENT` (not killed, no error)."""
    runs = [r["event"] for r in records if r["event"] in (RUN_START_EVENT, RUN_EVENT)]
    return not runs or runs[-1] == RUN_EVENT


def why_stopped(records: Sequence[Mapping[str, Any]], trials: Sequence[Trial]) -> str:
    """Why the search of a journal ended (or has not), in words, for the report and the
    command line: its `[stopping]` rule, its budgets spent, or a last run that did not
    end."""
    since, settings = current_settings(records)
    stops = [r for r in records[since + 1:] if r["event"] == STOP_EVENT]
    if stops:
        return str(stops[-1]["reason"])
    if not _last_run_ended(records):
        return ("not yet: its last run is still going, or was killed or stopped by an "
                "error (then `sparsemodc search` again resumes it)")
    if "stages" not in settings:
        return "the search ran to its end"
    spent, counts = _budgets_spent(trials, settings["stages"])
    return (f"budget spent: every stage trained its networks ({counts})" if spent else
            f"the stages found no more points to train ({counts})")
