"""`sparsemodc`: the command-line front end, a thin layer over the Python API.

Exit codes: 0 success; 1 errors in `.arch` sources (or `fmt --check` found a
file to reformat); 2 bad usage or unreadable input. No traceback reaches the
user for bad input; an internal error says so and how to get the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from . import __version__
from .errors import ArchError, SparsemodError, UsageError, render
from .lang.compiler import Checked, check_file
from .lang.fmt import format_source
from .lang.infer import SpaceEvaluator, input_shape
from .lang.loader import read_source
from .search.results import write_atomic
from .search.text import table

if TYPE_CHECKING:
    from .nets.cost import CostReport, Fit
    from .nets.targets import Target

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70


def parse_shape(text: str) -> tuple[int, ...]:
    """`1x8x8` -> (1, 8, 8); `50x40` -> (50, 40)."""
    parts = text.lower().split("x")
    if len(parts) not in (2, 3) or not all(p.isdigit() and 0 < int(p) <= 100_000 for p in parts):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a shape: write CxHxW for images (1x8x8) or TxF for sequences (50x40)"
        )
    return tuple(int(p) for p in parts)


def parse_classes(text: str) -> int:
    """A number of classes, at least 2."""
    if not text.isdigit() or not 2 <= int(text) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of classes (2 or more)")
    return int(text)


def parse_sparsity(text: str) -> float:
    """A fraction of pruned weights in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a sparsity: give a number in [0, 1)")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, exiting with code 2 and a one-line hint on usage errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `sparsemodc` and its subcommands."""
    parser = _Parser(
        prog="sparsemodc",
        description="Compile .arch search spaces for neural-architecture search on "
        "microcontrollers.",
    )
    parser.add_argument("--version", action="version", version=f"sparsemodc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    check = commands.add_parser(
        "check",
        help="check .arch files and summarise them",
        description="Check .arch files: syntax, names, types, and (with an input shape, from "
        "--input or the arch header) shapes that fail at every point of the space. Prints one "
        "summary line per file; errors as FILE:LINE:COL: error: message.",
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    _shape_options(check)
    check.set_defaults(run=_check)

    compile_ = commands.add_parser(
        "compile",
        help="compile a .arch file to an Ax search space, a network builder or the IR",
        description="Compile one .arch file. --emit searchspace prints the Ax parameters and "
        "constraints as JSON; --emit builder writes a standalone Python module (torch only) "
        "with build(params); --emit ir prints the program IR as JSON.",
    )
    compile_.add_argument("file", metavar="FILE")
    _shape_options(compile_)
    compile_.add_argument("--emit", choices=("searchspace", "builder", "ir"),
                          default="searchspace", help="what to produce (default: searchspace)")
    compile_.add_argument("-o", "--output", metavar="PATH", help="write here instead of stdout")
    compile_.set_defaults(run=_compile)

    sample = commands.add_parser(
        "sample",
        help="print random points of a space as JSON lines",
        description="Print N reproducible random points (active parameters, readable names), "
        "one JSON object per line. Points satisfy the constraints; with --valid, only points "
        "that validate (can be built) are printed.",
    )
    sample.add_argument("file", metavar="FILE")
    _shape_options(sample)
    sample.add_argument("-n", type=int, default=10, metavar="N", help="how many (default 10)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("--valid", action="store_true", help="only points that can be built")
    sample.set_defaults(run=_sample)

    morph = commands.add_parser(
        "morph",
        help="print mutated parametrizations of a point as JSON lines",
        description="Print N reproducible mutations of the point in --params (the children "
        "the search's morphism stage draws from), one JSON object per line: the child's "
        "active parameters (\"params\"), the operator and what it changed (\"changes\"). "
        "Every child can be built. Exit 1 when the point itself cannot be built.",
    )
    morph.add_argument("file", metavar="FILE")
    _shape_options(morph)
    morph.add_argument("--params", metavar="P.json",
                       help="a JSON object of readable parameter names -> values "
                       "(missing ones take their defaults; default: all defaults)")
    morph.add_argument("-n", type=int, default=5, metavar="N", help="how many (default 5)")
    morph.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    morph.set_defaults(run=_morph)

    cost = commands.add_parser(
        "cost",
        help="report a point's parameters, flash, peak RAM, MACs and latency on a target",
        description="Compute from the IR, without building the network, the costs of one "
        "point of a space on a microcontroller: parameter count, flash bytes, peak RAM bytes "
        "(activations alive at once), MACs and latency, whether it fits the target's budgets, "
        "and a per-layer table that marks the layer setting the peak. Exit 1 when the point "
        "cannot be built.",
    )
    cost.add_argument("file", metavar="FILE")
    _shape_options(cost)
    cost.add_argument("--params", metavar="P.json",
                      help="a JSON object of readable parameter names -> values "
                      "(missing ones take their defaults; default: all defaults)")
    cost.add_argument("--target", required=True, metavar="NAME",
                      help="a built-in target (see `sparsemodc targets`) or a target TOML file")
    cost.add_argument("--quant", choices=("int8", "float32"), default="int8",
                      help="weight and activation precision (default: int8)")
    cost.add_argument("--sparsity", type=parse_sparsity, default=0.0, metavar="S",
                      help="fraction of weights pruned, in [0, 1) (default: 0)")
    cost.add_argument("--json", action="store_true", help="print the full report as JSON")
    cost.set_defaults(run=_cost)

    targets = commands.add_parser(
        "targets",
        help="list the built-in microcontroller targets",
        description="List the built-in targets of `sparsemodc cost --target`: core, clock, "
        "SRAM and flash, and where their figures come from. Any TOML file of the same form "
        "is a target too: pass its path to --target.",
    )
    targets.set_defaults(run=_targets)

    search = commands.add_parser(
        "search",
        help="run (or resume) a SpArSe search described by an experiment file",
        description="Run the search of an experiment file (docs/experiment.md): Sobol points, "
        "multi-objective Bayesian optimisation, then morphisms of the Pareto front. Prints one "
        "line per trial. Re-running the same command on the same results directory resumes "
        "where the last run stopped, also after a crash.",
    )
    search.add_argument("experiment", metavar="EXPERIMENT.toml")
    search.set_defaults(run=_search)

    report = commands.add_parser(
        "report",
        help="print the Pareto table of a results directory and write plots",
        description="Print the Pareto-front networks of a search in real units (error %, "
        "flash KB, RAM KB, latency ms) and write pareto.png and best_error.png into the "
        "results directory.",
    )
    report.add_argument("results", metavar="RESULTS_DIR")
    report.set_defaults(run=_report)

    show = commands.add_parser(
        "show",
        help="print one trial's network: layers, shapes and costs",
        description="Print a trial of a search: its parameters, and its network's layers "
        "with output shapes, parameters, MACs and live RAM, and its totals.",
    )
    show.add_argument("results", metavar="RESULTS_DIR")
    show.add_argument("--trial", type=int, required=True, metavar="ID")
    show.set_defaults(run=_show)

    fmt = commands.add_parser(
        "fmt",
        help="print .arch files in canonical form",
        description="Print the canonical form of .arch files (comments kept). "
        "--check exits 1 when a file is not canonical; --write rewrites files in place.",
    )
    fmt.add_argument("files", nargs="+", metavar="FILE")
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    mode.add_argument("--write", action="store_true", help="rewrite files in place")
    fmt.set_defaults(run=_fmt)
    return parser


def _shape_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", type=parse_shape, metavar="SHAPE",
                        help="input shape, CxHxW for images or TxF for sequences "
                        "(default: the arch header's)")
    parser.add_argument("--classes", type=parse_classes, metavar="N",
                        help="number of classes (default: the arch header's)")


def _compile(args: argparse.Namespace) -> int:
    from .nets import axspace, codegen  # noqa: PLC0415 (torch and Ax load only when needed)
    from .space import compile_file  # noqa: PLC0415

    space = compile_file(args.file, args.input, args.classes)
    if args.emit == "searchspace":
        text = json.dumps(axspace.describe(space.program), indent=1) + "\n"
    elif args.emit == "builder":
        text = codegen.builder_source(space.program)
    else:
        text = codegen.ir_json(space.program) + "\n"
    if args.output:
        write_atomic(Path(args.output), text)
        print(f"{args.output}: written ({args.emit})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _sample(args: argparse.Namespace) -> int:
    from .space import compile_file  # noqa: PLC0415

    if args.n < 1:
        raise UsageError("-n must be at least 1")
    space = compile_file(args.file, args.input, args.classes)
    if args.valid:
        points = [p for p in space.sample(args.n * 20, args.seed) if space.validate(p)][: args.n]
        if len(points) < args.n:
            raise UsageError(f"only {len(points)} of {args.n * 20} random points can be built")
    else:
        points = space.sample(args.n, args.seed)
    for point in points:
        print(json.dumps(point))
    return EXIT_OK


def _morph(args: argparse.Namespace) -> int:
    import random  # noqa: PLC0415

    from .nets.morph import mutate  # noqa: PLC0415 (torch loads only when needed)
    from .nets.point import active  # noqa: PLC0415
    from .space import compile_file  # noqa: PLC0415

    if args.n < 1:
        raise UsageError("-n must be at least 1")
    params = _read_params(args.params)
    space = compile_file(args.file, args.input, args.classes)
    check = space.validate(params)
    if not check:
        print(f"{args.params or args.file}: the point cannot be built: {check.reason}",
              file=sys.stderr)
        return EXIT_ERRORS
    parent, rng = active(space.program, params), random.Random(args.seed)
    seen: set[str] = set()
    for _ in range(20 * args.n):  # distinct children; small spaces may have fewer
        mutation = mutate(space.program, parent, rng)
        if mutation is None:
            break
        key = json.dumps(mutation.point, sort_keys=True)
        if key not in seen:
            seen.add(key)
            print(json.dumps({"operator": mutation.operator,
                              "changes": list(mutation.changes), "params": mutation.point}))
        if len(seen) == args.n:
            return EXIT_OK
    if not seen:
        print(f"{args.file}: no operator found a valid mutation", file=sys.stderr)
        return EXIT_ERRORS
    print(f"{args.file}: only {len(seen)} distinct mutations found", file=sys.stderr)
    return EXIT_OK


def _cost(args: argparse.Namespace) -> int:
    from .nets import cost  # noqa: PLC0415 (torch and Ax load only when needed)
    from .nets.targets import load_target  # noqa: PLC0415
    from .space import compile_file  # noqa: PLC0415

    target = load_target(args.target)
    params = _read_params(args.params)
    space = compile_file(args.file, args.input, args.classes)
    check = space.validate(params)
    if not check:
        print(f"{args.params or args.file}: the point cannot be built: {check.reason}",
              file=sys.stderr)
        return EXIT_ERRORS
    report = cost.cost(space.program, params, target, args.quant, args.sparsity)
    fit = cost.fit(report, target)
    if args.json:
        print(json.dumps({**dataclasses.asdict(report), "fit": dataclasses.asdict(fit)},
                         indent=1))
    else:
        print(cost_summary(args.file, space.name, report, fit, target))
    return EXIT_OK


def _read_params(path: str | None) -> dict[str, Any]:
    """The point in a --params file: a JSON object of readable names -> values."""
    if path is None:
        return {}
    try:
        data = json.loads(read_source(path))
    except json.JSONDecodeError as error:
        raise UsageError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: must be a JSON object of readable parameter names -> values")
    return data


def cost_summary(file: str, arch: str, report: CostReport, fit: Fit, target: Target) -> str:
    """The text report of `sparsemodc cost`: totals, budgets, then the per-layer table."""
    from .nets.targets import KB  # noqa: PLC0415
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


def _search(args: argparse.Namespace) -> int:
    from .search.engine import Search  # noqa: PLC0415
    from .search.experiment import load_experiment  # noqa: PLC0415
    from .search.report import pareto_table  # noqa: PLC0415

    experiment = load_experiment(args.experiment)
    engine = Search(experiment, progress=True)
    engine.run()
    print()
    print(pareto_table(engine.journal.trials(), engine.objectives))
    spent = engine.timings
    print(f"\ntime: {spent.total:.0f} s, of which {spent.training:.0f} s training and "
          f"{spent.generation:.1f} s choosing points ({engine.strategy.name} strategy)")
    print(f"results: {experiment.results} (`sparsemodc report {experiment.results}`)")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from .search.report import report  # noqa: PLC0415

    text, plots = report(Path(args.results))
    print(text)
    print("\nplots: " + ", ".join(str(p) for p in plots))
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from .search.report import show  # noqa: PLC0415

    print(show(Path(args.results), args.trial))
    return EXIT_OK


def _targets(args: argparse.Namespace) -> int:
    from .nets.targets import KB, builtin_dir, builtin_targets  # noqa: PLC0415

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


def _check(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for file in args.files:
        try:
            checked = check_file(file, args.input, args.classes)
        except ArchError as error:
            _print_error(error)
            status = EXIT_ERRORS
            continue
        print(summary(file, checked))
    return status


def summary(file: str, checked: Checked) -> str:
    """The one-line report of a checked file."""
    program = checked.program
    if program is None:
        return f"{file}: ok: library with {_count(checked.library_blocks, 'block')}"
    shape = input_shape(program, SpaceEvaluator(program))
    shapes = (
        f"shapes checked for {'x'.join(str(d) for d in shape.dims)}" if shape is not None
        else "shapes not checked (no input shape: give --input)"
    )
    fixed = len(program.parameters) - len(program.searchable)
    return (
        f"{file}: ok: arch {program.name}: {_count(len(program.searchable), 'searchable parameter')}"
        f"{f' (+{fixed} fixed)' if fixed else ''}, {_count(len(program.blocks), 'block')}, "
        f"{_count(len(program.constraints), 'constraint')}; {shapes}"
    )


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _fmt(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for file in args.files:
        text = read_source(file)
        try:
            formatted = format_source(text, file)
        except ArchError as error:
            _print_error(error, {file: text})
            status = EXIT_ERRORS
            continue
        if args.check:
            if formatted != text:
                print(f"{file}: not in canonical form (run `sparsemodc fmt --write {file}`)")
                status = EXIT_ERRORS
        elif args.write:
            if formatted != text:
                try:
                    write_atomic(Path(file), formatted)
                except OSError as error:
                    raise UsageError(f"{file}: cannot write: {error.strerror or error}") from None
                print(f"{file}: reformatted")
        else:
            sys.stdout.write(formatted)
    return status


def _print_error(error: ArchError, sources: dict[str, str] | None = None) -> None:
    """Render errors with the quoted source lines (read from disk unless given)."""
    sources = dict(sources or {})
    for diagnostic in error.diagnostics:
        name = diagnostic.span.file
        if name not in sources:
            try:
                sources[name] = read_source(name)
            except UsageError:
                pass
    print(render(error, sources), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `sparsemodc`; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except UsageError as error:
        print(f"sparsemodc: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ArchError as error:
        _print_error(error)
        return EXIT_ERRORS
    except SparsemodError as error:
        print(f"sparsemodc: error: {error}", file=sys.stderr)
        return EXIT_ERRORS
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as error:  # a bug in sparsemodc, not in the input
        if os.environ.get("SPARSEMOD_DEBUG"):
            raise
        print(
            f"sparsemodc: internal error: {type(error).__name__}: {error}\n"
            "This is a bug in sparsemodc; please report it with the input file. "
            "Set SPARSEMOD_DEBUG=1 to see the traceback.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
