"""Trials as the search sees them: the `Trial` record, its line, the CSV table, the Pareto front.

A `Trial` is what the journal (`journal.Journal.trials`) tells of one trained or
rejected point; the strategies, the engine and the report all read trials, so the
record and what is computed from a list of them (the front, the table) live here,
apart from the files they are read from.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import SparsemodError
from ..lang.ir import Scalar
from .objective import error_column, error_phrase, in_units
from .results import write_atomic

#: Statuses of a finished trial; a started trial that never finished is "interrupted".
FINISHED = ("completed", "infeasible", "failed")
#: Trial statuses that cost a training run.
TRAINED = ("completed", "failed")
#: Objective (as in the experiment file) -> the `Trial` field that measures it.
OBJECTIVE_FIELDS = {"error": "error", "flash": "flash_bytes", "ram": "ram_bytes",
                    "latency": "latency_ms"}


@dataclass(frozen=True)
class Trial:
    """One trial as the journal tells it; metrics in bytes, ms, s and fractions."""

    id: int
    stage: str
    params: dict[str, Scalar]
    parent: int | None
    status: str
    started: str | None = None
    finished: str | None = None
    reason: str | None = None
    error: float | None = None
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    macs: int | None = None
    latency_ms: float | None = None
    train_seconds: float | None = None
    sparsity: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def objective(self, name: str) -> float | None:
        """The value of an objective named as in the experiment file (`flash`: bytes)."""
        value: float | None = getattr(self, OBJECTIVE_FIELDS[name])
        return value


def failure(error: BaseException) -> str:
    """The reason of a failed trial, from what its training raised."""
    if isinstance(error, SystemExit):
        return f"the trainer or the data called sys.exit({error.code!r})"
    if isinstance(error, SparsemodError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def summary(trial: Trial, loss: str = "cross_entropy") -> str:
    """One line per trial, in units users read (the error per `objective`)."""
    head = f"trial {trial.id:>3} [{trial.stage}]"
    if trial.status != "completed":
        return f"{head} {trial.status}: {trial.reason}"
    latency = f", latency {trial.latency_ms:.2f} ms" if trial.latency_ms is not None else ""
    return (f"{head} {error_phrase(trial.error or 0, loss)}, "
            f"flash {(trial.flash_bytes or 0) / 1024:.1f} KB, "
            f"RAM {(trial.ram_bytes or 0) / 1024:.1f} KB{latency}, "
            f"trained in {trial.train_seconds or 0:.1f} s")


def write_csv(trials: Iterable[Trial], path: Path | str, loss: str = "cross_entropy") -> None:
    """The trials as a CSV table, one row each, in real units (%, KB = 1024 bytes, ms, s).

    Columns: the fixed ones of `CSV_COLUMNS`, then one per readable parameter
    (in order of first appearance); an inactive parameter's cell is empty. For an
    `mse` network the error column is `error_mse`, the MSE in the targets' units (to 6
    significant digits); for an anomaly set it is `auc`, the validation AUC.
    """
    trials = sorted(trials, key=lambda t: t.id)
    params = list(dict.fromkeys(name for t in trials for name in t.params))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = [error_column(loss) if c == "error_pct" else c for c in CSV_COLUMNS]
    writer.writerow([*columns, *params])
    for t in trials:
        error = (_scaled(t.error, 100) if loss == "cross_entropy" or t.error is None
                 else float(f"{in_units(t.error, loss):.6g}"))  # an MSE may be far below 1e-4
        row = [t.id, t.stage, t.status, t.reason, error,
               _scaled(t.flash_bytes, 1 / 1024), _scaled(t.ram_bytes, 1 / 1024), t.macs,
               _scaled(t.latency_ms, 1), _scaled(t.train_seconds, 1),
               _scaled(t.sparsity, 100), t.parent]
        writer.writerow([*row, *(t.params.get(name) for name in params)])
    write_atomic(path, out.getvalue())


CSV_COLUMNS = ("id", "stage", "status", "reason", "error_pct", "flash_kb", "ram_kb", "macs",
               "latency_ms", "train_seconds", "sparsity_pct", "parent")


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else round(value * factor, 4)


def pareto_front(trials: Iterable[Trial], objectives: Sequence[str]) -> list[Trial]:
    """The completed trials that no other completed trial dominates, in id order.

    Args:
        objectives: minimised objectives, named as in the experiment file (`error`,
            `flash`, `ram`, `latency`) or as `Trial` fields (`flash_bytes`, ...).

    A trial dominates another when it is no worse in every objective and better in
    one; trials with equal objectives are all kept. A trial missing an objective
    (None or NaN) is not on the front.
    """
    names = [OBJECTIVE_FIELDS.get(o, o) for o in objectives]
    unknown = sorted(set(names) - set(OBJECTIVE_FIELDS.values()))
    if unknown or not names:
        raise ValueError(f"objectives must be some of {list(OBJECTIVE_FIELDS)}, got {objectives}")
    scored = []
    for trial in trials:
        values = [getattr(trial, n) for n in names]
        if trial.status == "completed" and all(v is not None and not math.isnan(v) for v in values):
            scored.append((trial, values))

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and a != b

    front = [t for t, v in scored if not any(dominates(w, v) for _, w in scored)]
    return sorted(front, key=lambda t: t.id)
