"""Reading a results directory: the Pareto table, plots, and one network in detail.

Everything here reads what the search wrote (`journal.jsonl`, `setup.json`,
`networks/`) and prints or draws it in units people read: error in per cent (the
mean squared error in the targets' units for `loss = mse`, the AUC for an anomaly set,
see `objective`), flash and
RAM in KB (1024 bytes), latency in milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ..errors import UsageError
from ..lang import ir
from ..nets.cost import cost
from ..nets.deploy.standardize import standardized_program
from ..nets.targets import load_target
from .experiment import OBJECTIVES
from .figdata import Figures, budgets, figures
from .figures import plot
from .final import final_table
from .htmlreport import page
from .journal import Journal
from .objective import error_label, error_phrase, show_error
from .results import JOURNAL, SETUP, write_atomic
from .state import runs, spent_seconds
from .stopping import why_stopped
from .text import table
from .trials import Trial, pareto_front
from .windows import setup_space

#: Columns of the Pareto table: header, how to show a trial's value.
_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("trial", lambda t: str(t.id)),
    ("stage", lambda t: t.stage),
    ("val error %", lambda t: _pct(t.error)),
    ("test error %", lambda t: _pct(t.extra.get("test_error"))),
    ("flash KB", lambda t: _kb(t.flash_bytes)),
    ("arena KB", lambda t: _kb(t.ram_bytes)),
    ("latency ms", lambda t: "-" if t.latency_ms is None else f"{t.latency_ms:.2f}"),
    ("MACs", lambda t: "-" if t.macs is None else f"{t.macs:,}"),
    ("sparsity %", lambda t: _pct(t.sparsity)),
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _tally(trials: Sequence[Trial]) -> str:
    """"N trials: X trained, Y infeasible, Z failed"."""
    counts = {s: sum(t.status == s for t in trials) for s in ("completed", "infeasible", "failed")}
    return (f"{len(trials)} trials: {counts['completed']} trained, {counts['infeasible']} "
            f"infeasible, {counts['failed']} failed")


def _precision(info: dict[str, Any]) -> str:
    """The precision the search priced networks at, from `setup.json`."""
    return "float32" if info.get("quantization") == "none" else "int8"


def _kb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024:.1f}"


def setup(results: Path) -> dict[str, Any]:
    """What the search recorded about its space, data and target (`setup.json`)."""
    path = results / SETUP
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{results}: not a results directory (no setup.json)") from None
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: unreadable: {error}") from None
    if not isinstance(info, dict):
        raise UsageError(f"{path}: not a JSON object")
    for key, valid in _SETUP_FIELDS.items():
        if not valid(info.get(key)):
            raise UsageError(f"{path}: {key!r} is missing or malformed "
                             f"(got {info.get(key)!r}); the search writes it anew when resumed")
    return info


def measure(info: dict[str, Any], program: ir.Program) -> str:
    """How the search measured the error (`objective`): `auc` for an anomaly set, else
    the program's loss (setup files written before anomaly sets have no `measure`)."""
    value = info.get("measure")
    return value if value in ("cross_entropy", "mse", "auc") else program.loss


def _text(value: object) -> bool:
    return isinstance(value, str)


def _texts(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _sizes(value: object) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(type(v) is int and 0 < v < 2**31 for v in value))


#: The fields of setup.json that `report`, `show` and `export` read, and their checks.
_SETUP_FIELDS = {
    "experiment": lambda v: v is None or isinstance(v, str),
    "arch": _text,
    "input_shape": _sizes,
    "classes": lambda v: type(v) is int and 0 < v < 2**31,
    "objectives": lambda v: _texts(v) and set(v) <= set(OBJECTIVES),
    "target": lambda v: v is None or isinstance(v, str),
    "quantization": lambda v: v is None or isinstance(v, str),
    "weights": lambda v: v is None or isinstance(v, str),
}


def pareto_table(trials: Sequence[Trial], objectives: Sequence[str],
                 program: ir.Program | None = None, precision: str = "int8",
                 measure: str | None = None) -> str:
    """The Pareto-front trials of a search, best error first.

    With the `program`, the RAM columns also give the activation area of TFLite Micro's
    memory plan and the live-tensor bound beside its whole arena (the RAM objective).
    The error columns are in the units of `measure` (by default the program's loss).
    """
    front = sorted(pareto_front(trials, objectives), key=lambda t: (t.error or 0.0, t.id))
    head = (f"{_tally(trials)}; Pareto front over {', '.join(objectives)}: "
            f"{len(front)} networks")
    columns = list(_COLUMNS)
    loss = measure or (program.loss if program is not None else "cross_entropy")
    if loss != "cross_entropy":
        label = error_label(loss)
        columns[2:4] = [(f"val {label}", lambda t: show_error(t.error, loss)),
                        (f"test {label}", lambda t: show_error(t.extra.get("test_error"), loss))]
    if program is not None:
        reports = {t.id: cost(program, t.params, quant=precision) for t in front}
        at = [h for h, _ in columns].index("arena KB") + 1
        columns[at:at] = [
            ("activations KB", lambda t: _kb(reports[t.id].activation_bytes)),
            ("live KB", lambda t: _kb(reports[t.id].live_bytes))]
    rows = [[show(t) for _, show in columns] for t in front]
    note = ("\narena: TensorFlow Lite Micro's whole arena (the RAM objective), activations: "
            "its memory plan's activation area, live: the most activation bytes alive at once"
            if program is not None else "")
    return head + "\n\n" + table(rows, [h for h, _ in columns], left=2) + note


def report(results: Path) -> tuple[str, list[Path]]:
    """The Pareto table of a results directory, and the page and plots written into it
    (`report.html`, then the PNGs of `figures`)."""
    info = setup(results)
    journal = Journal(results / JOURNAL)
    trials = journal.trials()
    if not trials:
        raise UsageError(f"{results}: the search has no trials yet")
    objectives = list(info["objectives"])
    records = journal.records()
    seconds, count = spent_seconds(results, records), runs(records)
    spent = (f"\nsearch time: {seconds / 60:.1f} min"
             + (f" over {count} runs" if count > 1 else "") if seconds else "")
    stopped = f"stopped: {why_stopped(records, trials)}"
    space = setup_space(info)
    precision = _precision(info)
    loss = measure(info, space.program)
    figs = figures(trials, objectives, loss, records, budgets(info), space.program.classes
                   if space.program.loss == "cross_entropy" else None)
    try:
        plots = write_page(results, figs, info, trials, spent.strip(), loss, stopped)
        plots += plot(figs, results)
    except OSError as error:  # a read-only results directory, a full disk
        raise UsageError(f"{error.filename or results}: cannot write the plots: "
                         f"{error.strerror or error}") from None
    table = pareto_table(trials, objectives, space.program, precision, loss)
    final = final_table(trials, records, loss)
    return table + spent + f"\n{stopped}" + (f"\n\n{final}" if final else ""), plots


def write_page(results: Path, figs: Figures, info: dict[str, Any], trials: Sequence[Trial],
               spent: str, loss: str, stopped: str = "") -> list[Path]:
    """Write `report.html` (`htmlreport`) with a summary of the search (`stopped`: why
    it stopped, `stopping.why_stopped`); returns its path."""
    limits = ", ".join(f"{k} {v:.1f} KB" for k, v in figs.budgets.items())
    summary = [f"{_tally(trials)}; objectives: {', '.join(figs.objectives)}"
               f"; error: {figs.error_label} (the search's score), {figs.test_label} on the "
               "held-out test set",
               f"target: {info.get('target') or 'none'}" + (f" (budgets: {limits})" if limits
                                                             else "")
               + (f"; {spent}" if spent else ""),
               f"space: {info['arch']}", *([stopped] if stopped else [])]
    path = results / "report.html"
    write_atomic(path, page(figs, f"Search report: {Path(info['arch']).stem}", summary, loss))
    return [path]


def show(results: Path, trial_id: int) -> str:
    """One trial: its status, parameters, and its network's layers, shapes and costs."""
    info = setup(results)
    trial = Journal(results / JOURNAL).trial(trial_id)
    lines = [f"trial {trial.id} [{trial.stage}] {trial.status}"
             + (f": {trial.reason}" if trial.reason else "")]
    if trial.parent is not None:
        lines.append(f"child of trial {trial.parent}: " + "; ".join(trial.extra.get("changes", [])))
    lines += [f"  {name} = {value!r}" for name, value in trial.params.items()]
    if trial.status != "completed":
        return "\n".join(lines)
    space = setup_space(info)
    target = load_target(info["target"]) if info.get("target") else None
    precision = _precision(info)
    sparse = (trial.sparsity or 0.0) if info.get("weights") == "sparse" else 0.0
    measured = cost(space.program, trial.params, target, precision, sparse)
    rows = [[r.name, r.op, ", ".join(r.folded), "x".join(map(str, r.output)), f"{r.params:,}",
             f"{r.macs:,}",
             f"{r.live_bytes / 1024:.1f}" + (" <- peak" if r.name == measured.peak_op else "")]
            for r in measured.layers]
    lines += ["", table(rows, ["operator", "TFLite op", "folded in", "output", "params", "MACs",
                               "live KB"], left=4), ""]
    loss = measure(info, space.program)
    errors = (f"validation {error_phrase(trial.error, loss)}, "
              f"test {error_phrase(trial.extra.get('test_error'), loss)}")
    lines.append(
        errors + f", flash {_kb(measured.flash_bytes)} KB, RAM {_kb(measured.ram_bytes)} KB"
        " TFLM arena"
        f" ({_kb(measured.activation_bytes)} KB activations, {_kb(measured.live_bytes)} KB live)"
        f" ({precision}, {_pct(trial.sparsity)}% of weights pruned), {measured.macs:,} MACs"
        + (f", {measured.latency_ms:.2f} ms on {target.name}" if target and measured.latency_ms
           is not None else "")
    )
    if info.get("normalization") and precision == "int8":
        lines.append(_exported_costs(space.program, trial.params, target, sparse))
    weights = results / "networks" / f"trial-{trial.id}.pt"
    if weights.exists():
        lines.append(f"weights: {weights} (a Pareto network)")
    return "\n".join(lines)


def _exported_costs(program: ir.Program, params: dict[str, Any], target: Any,
                    sparse: float) -> str:
    """The costs of the model `sparsemodc export` writes for a standardised search: the
    network after its standardising first operator (docs/cost-models.md)."""
    exported = cost(standardized_program(program), params, target, "int8", sparse)
    return (f"exported (raw input, standardised by its first operator): flash "
            f"{_kb(exported.flash_bytes)} KB, RAM {_kb(exported.ram_bytes)} KB TFLM arena")
