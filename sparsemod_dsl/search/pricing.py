"""Exact pricing of candidate points: can a point be trained, and what will it cost?

Flash, RAM (TFLite Micro's arena) and latency are computed from the deployed graph
(`nets.cost`) in about a millisecond per point, exactly as the search measures them
after training, so the
strategies price every candidate before choosing and the engine prices every point
before training it. `key` names a point by its active values, by which strategies
tell the points already tried or priced apart.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Mapping

from ..lang import ir
from ..nets.budgets import failing_cost_constraint
from ..nets.cost import cost, fit
from ..nets.point import active, validate
from ..nets.targets import Target, load_target
from .experiment import TargetSettings

#: Prune-threshold parameter: pruning during training ends at this sparsity.
PRUNE_THRESHOLD = "train.prune_threshold"


@dataclass(frozen=True)
class Priced:
    """Why a point cannot be trained (None if it can), and its exact objectives."""

    reason: str | None
    values: Mapping[str, float]


@dataclass(frozen=True)
class Pricer:
    """Checks points and computes their exact objectives (flash bytes, arena bytes,
    latency ms) as the search will measure them after training.

    `sparse_flash`: pruned weights are stored sparse (experiment key `target.weights`),
    so flash is priced at the sparsity pruning will reach; else dense, whatever pruning.
    """

    program: ir.Program
    target: Target | None
    precision: str
    sparse_flash: bool

    def sparsity(self, point: Mapping[str, object]) -> float:
        """The sparsity flash is priced at: pruning ends at the point's threshold."""
        if not self.sparse_flash:
            return 0.0
        return float(active(self.program, point).get(PRUNE_THRESHOLD, 0.0))

    def price(self, point: Mapping[str, object]) -> Priced:
        """Validate a point, then price it and compare with the target's budgets and the
        program's cost constraints (`constraint macs <= ...`)."""
        check = validate(self.program, point)
        if not check:
            return Priced(check.reason, {})
        report = cost(self.program, point, self.target, self.precision, self.sparsity(point))
        values = {"flash": float(report.flash_bytes), "ram": float(report.ram_bytes),
                  "latency": float(report.latency_ms or 0.0), "params": float(report.params),
                  "macs": float(report.macs)}
        if self.target is not None:
            fitting = fit(report, self.target)
            if not fitting.ok:
                return Priced(fitting.reason, values)
        return Priced(failing_cost_constraint(self.program, point, report), values)


def key(point: Mapping[str, object]) -> str:
    """A point's identity (its active values), to tell repeats apart."""
    return json.dumps(point, sort_keys=True)


def budgeted_target(settings: TargetSettings) -> Target | None:
    """The experiment's target (None without a name), its budgets overridden by the
    experiment's `ram_kb` and `flash_kb`: the budget itself, with nothing reserved on top."""
    if settings.name is None:
        return None
    target = load_target(settings.name)
    if settings.ram_bytes is not None:
        target = dataclasses.replace(target, sram_bytes=settings.ram_bytes,
                                     reserved_ram_bytes=0)
    if settings.flash_bytes is not None:
        target = dataclasses.replace(target, flash_bytes=settings.flash_bytes,
                                     reserved_flash_bytes=0)
    return target


def budget_bytes(target: Target | None) -> dict[str, int] | None:
    """The flash and RAM budgets in bytes that points are priced against (the target's,
    or the experiment's own), for `setup.json` and the report's budget lines; None
    without a target."""
    return None if target is None else {"flash_bytes": target.flash_budget_bytes,
                                         "ram_bytes": target.ram_budget_bytes}
