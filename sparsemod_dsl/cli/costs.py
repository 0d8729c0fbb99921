"""The cost-model commands: `cost` (one point's costs on a target) and `targets` (the boards).

The costs come from the IR without building the network; `cost_summary` is the text report.
The cost model and the target files load only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import TYPE_CHECKING

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
    parser.add_argument("--sparsity", type=parse_sparsity, default=0.0, metavar="S",
                        help="fraction of weights pruned, in [0, 1) (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")


def _cost(args: argparse.Namespace) -> int:
    from ..nets import cost  # noqa: PLC0415 (torch and Ax load only when needed)
    from ..nets.targets import load_target  # noqa: PLC0415

    target = load_target(args.target)
    loaded = load_point(args)
    if loaded is None:
        return EXIT_ERRORS
    space, params = loaded
    report = cost.cost(space.program, params, target, args.quant, args.sparsity)
    fit = cost.fit(report, target)
    if args.json:
        print(json.dumps({**dataclasses.asdict(report), "fit": dataclasses.asdict(fit)},
                         indent=1))
    else:
        print(cost_summary(args.file, space.name, report, fit, target))
    return EXIT_OK


def cost_summary(file: str, arch: str, report: CostReport, fit: Fit, target: Target) -> str:
    """The text report of `sparsemodc cost`: totals, budgets, then the per-layer table."""
    from ..nets.targets import KB  # noqa: PLC0415
    lines = [
        f"{file}: arch {arch}, {report.quant}, sparsity {report.sparsity:g}, on {target.name} "
        f"({target.core}, {target.clock_mhz:g} MHz)",
        f"  parameters  {report.params:,}",
        f"  flash       {report.flash_bytes / KB:.1f} KB ({report.flash_bytes:,} bytes)",
        f"  peak RAM    {report.peak_ram_bytes / KB:.1f} KB ({report.peak_ram_bytes:,} bytes), "
        f"set by {report.peak_layer}",
        f"  MACs        {report.macs:,}",
        f"  latency     {report.latency_ms:.2f} ms",
        f"  fits        {'yes' if fit.ok else 'no'}: RAM {fit.ram_bytes / KB:.1f} of "
        f"{fit.ram_budget_bytes / KB:.1f} KB, flash {fit.flash_bytes / KB:.1f} of "
        f"{fit.flash_budget_bytes / KB:.1f} KB" + ("" if fit.ok else f" ({fit.reason})"),
        "",
    ]
    header = ("layer", "op", "output", "params", "MACs", "act B", "RAM B", "flash B", "ms")
    rows = [header] + [
        (row.name, row.op, "x".join(map(str, row.output)), f"{row.params:,}", f"{row.macs:,}",
         f"{row.activation_bytes:,}", f"{row.ram_bytes:,}", f"{row.flash_bytes:,}",
         f"{row.latency_ms:.3f}")
        for row in report.layers
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        cells = [cell.ljust(w) if i < 3 else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        peak = index > 0 and report.layers[index - 1].name == report.peak_layer
        lines.append("  ".join(cells) + ("  <- peak RAM" if peak else ""))
    return "\n".join(lines)


def _targets(args: argparse.Namespace) -> int:
    from ..nets.targets import KB, builtin_dir, builtin_targets  # noqa: PLC0415

    rows = [
        (t.name, t.core, f"{t.clock_mhz:g} MHz", f"{t.sram_bytes // KB} KB",
         f"{t.flash_bytes // KB} KB", t.source)
        for t in builtin_targets()
    ]
    print(table(rows, ("name", "core", "clock", "SRAM", "flash", "figures from"), left=6))
    print(f"\nKB = 1024 bytes. The files are in {builtin_dir()}; each figure cites its "
          "source there.\nYour own target: copy one into any folder, edit it and pass its "
          "path, e.g. `--target boards/my_board.toml` (format: docs/cost-models.md).")
    return EXIT_OK


COST = Command(
    "cost",
    help="report a point's parameters, flash, peak RAM, MACs and latency on a target",
    description="Compute from the IR, without building the network, the costs of one "
    "point of a space on a microcontroller: parameter count, flash bytes, peak RAM bytes "
    "(activations alive at once), MACs and latency, whether it fits the target's budgets, "
    "and a per-layer table that marks the layer setting the peak. Exit 1 when the point "
    "cannot be built.",
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
