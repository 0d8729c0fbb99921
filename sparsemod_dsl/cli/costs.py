"""The cost-model commands: `cost` (one point's costs on a target) and `targets` (the boards).

The costs come from the IR without building the network; `cost_summary` is the text report.
The cost model and the target files load only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..search.text import table
from .args import Command, no_arguments, parse_sparsity
from .exits import EXIT_ERRORS, EXIT_OK
from .point import add_point_arguments, load_point

if TYPE_CHECKING:
    from ..nets.cost import CostReport, Fit
    from ..nets.targets import Target


def _cost_arguments(parser: argparse.ArgumentParser) -> None:
    add_point_arguments(parser)
    parser.add_argument("--target", required=True, metavar="NAME",
                        help="a built-in target (see `sparsemodc targets`) or a target TOML file")
    parser.add_argument("--quant", choices=("int8", "float32"), default="int8",
                        help="weight and activation precision (default: int8)")
    parser.add_argument("--sparse-weights", type=parse_sparsity, default=0.0, metavar="S",
                        help="price flash with a fraction S of the weights pruned and stored "
                        "sparse (nonzeros plus a bit mask; no stock TFLite Micro kernel reads "
                        "that); default 0: dense int8, what TFLite Micro reads")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument("--measure", action="store_true",
                        help="also export the point (random weights, int8) and run it in "
                        "TensorFlow Lite Micro: its flash and arena next to the model's")


def _cost(args: argparse.Namespace) -> int:
    from ..nets import cost  # noqa: PLC0415 (torch and Ax load only when needed)
    from ..nets.targets import load_target  # noqa: PLC0415

    target = load_target(args.target)
    loaded = load_point(args)
    if loaded is None:
        return EXIT_ERRORS
    space, params = loaded
    from ..nets.budgets import failing_cost_constraint  # noqa: PLC0415

    report = cost.cost(space.program, params, target, args.quant, args.sparse_weights)
    fit = cost.fit(report, target)
    broken = failing_cost_constraint(space.program, params, report)
    measured = _measure(space, params, args.quant) if args.measure else None
    if args.json:
        extra = {"measured": dataclasses.asdict(measured)} if measured else {}
        if space.program.cost_constraints:
            extra["cost_constraint"] = broken
        print(json.dumps({**dataclasses.asdict(report), "fit": dataclasses.asdict(fit), **extra},
                         indent=1))
        return EXIT_OK
    print(cost_summary(args.file, space.name, report, fit, target))
    if space.program.cost_constraints:
        print(f"cost constraints: {'all hold' if broken is None else broken}")
    if measured is not None:
        rows = [(what, f"{predicted:,}", f"{truth:,}", f"{(predicted - truth) / truth:+.1%}")
                for what, predicted, truth in (
                    ("flash (.tflite file)", report.flash_bytes, measured.flash_bytes),
                    ("arena total", report.ram_bytes, measured.arena_bytes),
                    ("activation area", report.activation_bytes, measured.activation_bytes),
                    ("persistent data", report.persistent_bytes, measured.persistent_bytes))]
        print("\nmeasured by TensorFlow Lite Micro (random weights, int8):")
        print(table(rows, ("bytes", "model", "TFLM", "error"), left=1))
    return EXIT_OK


def _measure(space: Any, params: dict[str, Any], quant: str) -> Any:
    from ..nets.deploy.measure import measure  # noqa: PLC0415

    if quant != "int8":
        raise UsageError("--measure runs the int8 model: leave out --quant float32")
    return measure(space.program, params).measured


def cost_summary(file: str, arch: str, report: CostReport, fit: Fit, target: Target) -> str:
    """The text report of `sparsemodc cost`: totals, budgets, then the per-operator table."""
    from ..nets.targets import KB  # noqa: PLC0415

    def size(value: int) -> str:
        return f"{value / KB:.1f} KB ({value:,} bytes)"

    weights = ("dense" if not report.sparse_weights
               else f"{report.sparse_weights:g} pruned, stored sparse")
    engine = f", {report.engine} kernels" if report.engine else ""
    lines = [
        f"{file}: arch {arch}, {report.quant} ({weights}), on {target.name} "
        f"({target.core}, {target.clock_mhz:g} MHz{engine})",
        f"runtime: {report.runtime}",
        f"  parameters  {report.params:,} (batch norm folded)",
        f"  flash       {size(report.flash_bytes)}: the .tflite file",
        f"  RAM         {size(report.ram_bytes)}: TFLM's arena =",
        f"                activation area {size(report.activation_bytes)} "
        f"(live-tensor bound {report.live_bytes:,} bytes, set by {report.peak_op})",
        f"                + persistent data {size(report.persistent_bytes)}",
        f"  MACs        {report.macs:,}",
        f"  latency     {report.latency_ms:.2f} ms",
        f"  fits        {'yes' if fit.ok else 'no'}: RAM {fit.ram_bytes / KB:.1f} of "
        f"{fit.ram_budget_bytes / KB:.1f} KB, flash {fit.flash_bytes / KB:.1f} of "
        f"{fit.flash_budget_bytes / KB:.1f} KB" + ("" if fit.ok else f" ({fit.reason})"),
        "",
    ]
    header = ("operator", "TFLite op", "folded in", "output", "params", "MACs", "out B",
              "live B", "flash B", "ms")
    rows = [header] + [
        (row.name, row.op, ", ".join(row.folded), "x".join(map(str, row.output)),
         f"{row.params:,}", f"{row.macs:,}", f"{row.activation_bytes:,}", f"{row.live_bytes:,}",
         f"{row.flash_bytes:,}", f"{row.latency_ms:.3f}")
        for row in report.layers
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        cells = [cell.ljust(w) if i < 4 else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        peak = index > 0 and report.layers[index - 1].name == report.peak_op
        lines.append("  ".join(cells).rstrip() + ("  <- most live bytes" if peak else ""))
    return "\n".join(lines)


def _targets(args: argparse.Namespace) -> int:
    from ..nets.targets import KB, builtin_dir, builtin_targets  # noqa: PLC0415

    rows = [
        (t.name, t.core, f"{t.clock_mhz:g} MHz", f"{t.sram_bytes // KB} KB",
         f"{t.flash_bytes // KB} KB", t.throughput.engine if t.throughput else "-", t.source)
        for t in builtin_targets()
    ]
    print(table(rows, ("name", "core", "clock", "SRAM", "flash", "kernels", "figures from"),
                left=7))
    print(f"\nKB = 1024 bytes. The files are in {builtin_dir()}; each figure cites its "
          "source there.\nYour own target: copy one into any folder, edit it and pass its "
          "path, e.g. `--target boards/my_board.toml` (format: docs/cost-models.md).")
    return EXIT_OK


COST = Command(
    "cost",
    help="report a point's parameters, flash, RAM, MACs and latency on a target",
    description="Compute from the deployed graph (what TensorFlow Lite Micro runs: batch "
    "norm folded, activations fused), without building or writing anything, the costs of "
    "one point of a space on a microcontroller: parameters, flash (the .tflite file), RAM "
    "(TFLM's arena: the activation area of its memory plan plus its persistent data, and "
    "the live-tensor bound), MACs and latency, whether it fits the target's budgets, and "
    "the per-operator table. Exit 1 when the point cannot be built.",
    arguments=_cost_arguments,
    run=_cost,
)

TARGETS = Command(
    "targets",
    help="list the built-in microcontroller targets",
    description="List the built-in targets of `sparsemodc cost --target`: core, clock, "
    "SRAM and flash, and where their figures come from. Any TOML file of the same form "
    "is a target too: pass its path to --target.",
    arguments=no_arguments,
    run=_targets,
)
