"""The front-end commands `check` and `fmt`: they read `.arch` text and never build a network.

They import only the language front end (`lang`), so that they start fast and work
without torch or Ax being loaded.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ArchError
from ..lang.compiler import Checked, check_file
from ..lang.fmt import format_source
from ..lang.infer import SpaceEvaluator, input_shape
from ..lang.loader import read_source
from .args import Command, add_shape_options
from .exits import EXIT_ERRORS, EXIT_OK, print_error
from .output import write_output


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE")
    add_shape_options(parser)


def _check(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for file in args.files:
        try:
            checked = check_file(file, args.input, args.classes)
        except ArchError as error:
            print_error(error)
            status = EXIT_ERRORS
            continue
        print(summary(file, checked))
        warning = rare_valid_points(checked)
        if warning is not None:
            print(f"{file}: warning: {warning}", file=sys.stderr)
    return status


def rare_valid_points(checked: Checked) -> str | None:
    """A warning when under 10% of random points of a checked space can be built."""
    program = checked.program
    if program is None or input_shape(program, SpaceEvaluator(program)) is None:
        return None
    from ..nets.sampling import survey  # noqa: PLC0415  (no torch: point, lang only)

    return survey(program, draws=100).warning()


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
        f"{file}: ok: arch {program.name}: "
        f"{_count(len(program.searchable), 'searchable parameter')}"
        f"{f' (+{fixed} fixed)' if fixed else ''}, {_count(len(program.blocks), 'block')}, "
        f"{_count(len(program.constraints) + len(program.cost_constraints), 'constraint')}; "
        f"{shapes}"
    )


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _fmt_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    mode.add_argument("--write", action="store_true", help="rewrite files in place")


def _fmt(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for file in args.files:
        text = read_source(file)
        try:
            formatted = format_source(text, file)
        except ArchError as error:
            print_error(error, {file: text})
            status = EXIT_ERRORS
            continue
        if args.check:
            if formatted != text:
                print(f"{file}: not in canonical form (run `sparsemodc fmt --write {file}`)")
                status = EXIT_ERRORS
        elif args.write:
            if formatted != text:
                write_output(file, formatted)
                print(f"{file}: reformatted")
        else:
            sys.stdout.write(formatted)
    return status


CHECK = Command(
    "check",
    help="check .arch files and summarise them",
    description="Check .arch files: syntax, names, types, and (with an input shape, from "
    "--input or the arch header) shapes that fail at every point of the space. Prints one "
    "summary line per file; errors as FILE:LINE:COL: error: message.",
    arguments=_check_arguments,
    run=_check,
)

FMT = Command(
    "fmt",
    help="print .arch files in canonical form",
    description="Print the canonical form of .arch files (comments kept). "
    "--check exits 1 when a file is not canonical; --write rewrites files in place.",
    arguments=_fmt_arguments,
    run=_fmt,
)
