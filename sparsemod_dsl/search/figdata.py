"""What the report's plots show, in the units people read, for the HTML page and the PNGs.

Both renderings (`htmlreport` and `figures`) draw the same `Figures`: every completed
trial with its stage and costs, the Pareto front, the target's budgets, the hypervolume
after each trial and against search time, and the front's test against its validation
error. Errors are in the units of the search's measure (`objective`: error %, MSE or
AUC), sizes in KB (1024 bytes), latency in ms, time in minutes of search (`state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..nets.targets import load_target
from .hypervolume import hypervolume
from .objective import error_label, error_phrase, in_units, show_error
from .state import finish_seconds
from .trials import Trial, pareto_front

#: The costs plotted against the error: key, `Trial` field, axis label, scale to units.
COSTS = (("flash", "flash_bytes", "flash KB", 1 / 1024), ("ram", "ram_bytes", "RAM KB", 1 / 1024),
         ("latency", "latency_ms", "latency ms", 1.0))


@dataclass(frozen=True)
class Point:
    """One completed trial as plotted: values in display units, `tip` its hover text."""

    id: int
    stage: str
    error: float
    test: float | None
    costs: dict[str, float]
    front: bool
    tip: str


@dataclass(frozen=True)
class Figures:
    """Everything the report draws.

    Attributes:
        error_label: the error axis, naming validation error (`validation error %`).
        test_label: the same for the test error.
        points: the completed trials, in id order.
        budgets: cost key -> the target's limit in display units (flash and RAM).
        hypervolume: (trial id, search minutes, hypervolume in % of the reference box)
            after each completed trial, in the order they finished.
        objectives: the search's minimised objectives.
    """

    error_label: str
    test_label: str
    points: list[Point]
    budgets: dict[str, float]
    hypervolume: list[tuple[int, float, float]]
    objectives: list[str]

    def costs(self) -> list[tuple[str, str]]:
        """The (key, label) of each cost some trial has a value for."""
        return [(key, label) for key, _, label, _ in COSTS
                if any(key in p.costs for p in self.points)]


def budgets(info: Mapping[str, Any]) -> dict[str, float]:
    """The flash and RAM budgets in KB: `setup.json`'s `budgets` (the experiment's own
    limits), else its target's; none without a target."""
    saved = info.get("budgets")
    if isinstance(saved, dict):
        return {k: saved[f"{k}_bytes"] / 1024 for k in ("flash", "ram")
                if isinstance(saved.get(f"{k}_bytes"), int)}
    if not info.get("target"):
        return {}
    target = load_target(info["target"])
    return {"flash": target.flash_budget_bytes / 1024, "ram": target.ram_budget_bytes / 1024}


def figures(trials: Sequence[Trial], objectives: Sequence[str], measure: str,
            records: Sequence[Mapping[str, Any]], limits: Mapping[str, float],
            classes: int | None = None) -> Figures:
    """The plots' data from a journal's trials and events (`records`), for a search whose
    error is `measure`, with the budgets `limits` (`budgets`)."""
    front = {t.id for t in pareto_front(trials, objectives)}
    done = [t for t in trials if t.status == "completed" and t.error is not None]
    points = [_point(t, t.id in front, measure) for t in done]
    label = error_label(measure)
    return Figures(f"validation {label}", f"test {label}", points, dict(limits),
                   _progress(done, objectives, measure, records, limits, classes),
                   list(objectives))


def _point(trial: Trial, front: bool, measure: str) -> Point:
    costs = {key: getattr(trial, field) * scale for key, field, _, scale in COSTS
             if getattr(trial, field) is not None}
    test = trial.extra.get("test_error")
    lines = [f"trial {trial.id} [{trial.stage}]" + (" (Pareto front)" if front else ""),
             f"validation {error_phrase(trial.error, measure)}",
             f"test {error_phrase(test, measure)}" if test is not None else "",
             *(f"{label} {costs[key]:.2f}" for key, _, label, _ in COSTS if key in costs),
             f"MACs {trial.macs:,}" if trial.macs is not None else "",
             *(f"{name} = {value}" for name, value in trial.params.items())]
    return Point(trial.id, trial.stage, in_units(trial.error or 0.0, measure),
                 None if test is None else in_units(test, measure), costs, front,
                 "\n".join(line for line in lines if line))


def _progress(done: Sequence[Trial], objectives: Sequence[str], measure: str,
              records: Sequence[Mapping[str, Any]], limits: Mapping[str, float],
              classes: int | None) -> list[tuple[int, float, float]]:
    """The hypervolume of the completed trials so far after each one, in finishing order.

    The reference box is the guessing error (a classifier) or 1.1 times the largest error
    seen, the budgets for flash and RAM, and 1.1 times the largest value seen for the rest,
    as the default strategy scores points (`exactstrategy`).
    """
    when = finish_seconds(records)
    order = sorted(done, key=lambda t: (when.get(t.id, float("inf")), t.id))
    values = np.array([[float(t.objective(o) or 0.0) for o in objectives] for t in order])
    if not len(values):
        return []
    ref = []
    for k, name in enumerate(objectives):
        if name == "error" and measure == "cross_entropy" and classes:
            ref.append(1.0 - 1.0 / classes)
        elif name in limits:
            ref.append(limits[name] * 1024)
        else:
            ref.append(1.1 * float(values[:, k].max()) or 1.0)
    reference = np.array(ref)
    last = max(when.values(), default=0.0)
    return [(t.id, when.get(t.id, last) / 60, 100 * hypervolume(values[: i + 1], reference))
            for i, t in enumerate(order)]


def front_rows(figs: Figures, measure: str) -> list[list[str]]:
    """The front's rows for a table: trial, stage, errors and costs, best error first."""
    shown = sorted((p for p in figs.points if p.front), key=lambda p: (p.error, p.id))
    if measure == "auc":
        shown.reverse()
    return [[str(p.id), p.stage, _plain(p.error, measure),
             "-" if p.test is None else _plain(p.test, measure),
             *(f"{p.costs[k]:.2f}" if k in p.costs else "-" for k, _ in figs.costs())]
            for p in shown]


def _plain(value: float, measure: str) -> str:
    """A value already in display units, shown as `show_error` shows stored ones."""
    stored = value / 100 if measure == "cross_entropy" else 1 - value if measure == "auc" \
        else value
    return show_error(stored, measure)
