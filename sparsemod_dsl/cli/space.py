"""The commands over a compiled space: `compile` (emit it), `sample` and `morph` (points of it).

They compile the `.arch` file into a `Space`, which loads torch and Ax; those imports are
made inside the commands so that the front-end commands never pay for them.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import UsageError
from ..lang import ir
from .args import MAX_COUNT, Command, add_space_arguments, parse_count
from .exits import EXIT_ERRORS, EXIT_OK
from .output import write_output
from .point import add_point_arguments, load_point


def _draw_options(parser: argparse.ArgumentParser, n: int) -> None:
    """-n (how many points, default `n`) and --seed of the random draws."""
    parser.add_argument("-n", type=parse_count, default=n, metavar="N",
                        help=f"how many (default {n}, at most {MAX_COUNT:,})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _compile_arguments(parser: argparse.ArgumentParser) -> None:
    add_space_arguments(parser)
    parser.add_argument("--emit", choices=("searchspace", "builder", "ir"),
                        default="searchspace", help="what to produce (default: searchspace)")
    parser.add_argument("-o", "--output", metavar="PATH", help="write here instead of stdout")


def _compile(args: argparse.Namespace) -> int:
    from ..nets import axspace, codegen  # noqa: PLC0415 (torch and Ax load only when needed)
    from ..space import compile_file  # noqa: PLC0415

    space = compile_file(args.file, args.input, args.classes)
    if args.emit == "searchspace":
        text = json.dumps(axspace.describe(space.program), indent=1) + "\n"
    elif args.emit == "builder":
        text = codegen.builder_source(space.program)
    else:
        text = codegen.ir_json(space.program) + "\n"
    if args.output is not None:
        write_output(args.output, text)
        print(f"{args.output}: written ({args.emit})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    add_space_arguments(parser)
    _draw_options(parser, 10)
    parser.add_argument("--valid", action="store_true",
                        help="only points that can be built and meet the cost constraints")
    parser.add_argument("--target", metavar="NAME",
                        help="with --valid: the target that prices latency constraints")


def _sample(args: argparse.Namespace) -> int:
    from ..space import compile_file  # noqa: PLC0415

    space = compile_file(args.file, args.input, args.classes)
    if args.valid:
        from ..nets.point import PointError  # noqa: PLC0415
        from ..nets.sampling import DRAWS_PER_POINT, find, within_budget  # noqa: PLC0415
        from ..nets.targets import load_target  # noqa: PLC0415

        if args.target is None and any("latency" in (*ir.costs(c.left), *ir.costs(c.right))
                                       for c in space.program.cost_constraints):
            raise UsageError("a latency constraint needs a target: pass --target NAME")
        target = None if args.target is None else load_target(args.target)
        try:
            points = find(space.program, args.n, args.seed,
                          within_budget(space.program, target))
        except PointError as error:
            raise UsageError(str(error)) from None
        if len(points) < args.n:
            raise UsageError(f"only {len(points)} different points of {args.n} could be built "
                             f"in {args.n * DRAWS_PER_POINT} repaired random draws")
    else:
        points = space.sample(args.n, args.seed)
    for point in points:
        print(json.dumps(point))
    return EXIT_OK


def _morph_arguments(parser: argparse.ArgumentParser) -> None:
    add_point_arguments(parser)
    _draw_options(parser, 5)


def _morph(args: argparse.Namespace) -> int:
    import random  # noqa: PLC0415

    from ..nets.morph import mutate  # noqa: PLC0415 (torch loads only when needed)
    from ..nets.point import active  # noqa: PLC0415

    loaded = load_point(args)
    if loaded is None:
        return EXIT_ERRORS
    space, params = loaded
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


COMPILE = Command(
    "compile",
    help="compile a .arch file to an Ax search space, a network builder or the IR",
    description="Compile one .arch file. --emit searchspace prints the Ax parameters and "
    "constraints as JSON; --emit builder writes a standalone Python module (torch only) "
    "with build(params); --emit ir prints the program IR as JSON.",
    arguments=_compile_arguments,
    run=_compile,
)

SAMPLE = Command(
    "sample",
    help="print random points of a space as JSON lines",
    description="Print N reproducible random points (active parameters, readable names), "
    "one JSON object per line. Points satisfy the parameter constraints; with --valid, "
    "only points that validate (can be built) and meet the cost constraints (`constraint "
    "ram <= 20 KB`: priced as `sparsemodc cost` prices them; latency on --target) are "
    "printed.",
    arguments=_sample_arguments,
    run=_sample,
)

MORPH = Command(
    "morph",
    help="print mutated parametrizations of a point as JSON lines",
    description="Print N reproducible mutations of the point in --params (the children "
    "the search's morphism stage draws from), one JSON object per line: the child's "
    "active parameters (\"params\"), the operator and what it changed (\"changes\"). "
    "Every child can be built. Exit 1 when the point itself cannot be built.",
    arguments=_morph_arguments,
    run=_morph,
)
