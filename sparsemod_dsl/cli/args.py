"""How `sparsemodc` reads its command line: the parser class, argument types, shared options.

Every subcommand is a `Command` (name, texts, arguments, run function) that the package's
`build_parser` adds in its place; the options several commands take (the input shape and
classes of a space) are declared once here, so that they read the same everywhere.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable

from .exits import EXIT_USAGE


@dataclass(frozen=True)
class Command:
    """One subcommand: its name and help texts, how it declares its arguments, how it runs."""

    name: str
    help: str
    description: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def parse_shape(text: str) -> tuple[int, ...]:
    """`1x8x8` -> (1, 8, 8); `50x40` -> (50, 40); `640` -> (640,)."""
    parts = text.lower().split("x")
    if len(parts) > 3 or not all(p.isdigit() and 0 < int(p) <= 100_000 for p in parts):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a shape: write CxHxW for images (1x8x8), TxF for sequences "
            "(50x40) or N for vectors (640)"
        )
    return tuple(int(p) for p in parts)


def parse_classes(text: str) -> int:
    """A number of classes, at least 2."""
    if not text.isdigit() or not 2 <= int(text) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of classes (2 or more)")
    return int(text)


#: The most points `sample` and `morph` print (`-n`): 100,000 take about ten seconds.
MAX_COUNT = 100_000


def parse_count(text: str) -> int:
    """A number of points to print, 1 to MAX_COUNT."""
    if not text.isdigit() or not 1 <= int(text) <= MAX_COUNT:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a number of points: give a whole number from 1 to {MAX_COUNT:,}")
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


class Parser(argparse.ArgumentParser):
    """argparse, exiting with code 2 and a one-line hint on usage errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def add_shape_options(parser: argparse.ArgumentParser) -> None:
    """--input and --classes: override the arch header's input shape and number of classes."""
    parser.add_argument("--input", type=parse_shape, metavar="SHAPE",
                        help="input shape, CxHxW for images, TxF for sequences or N for vectors "
                        "(default: the arch header's)")
    parser.add_argument("--classes", type=parse_classes, metavar="N",
                        help="number of classes, or outputs of an `output: vector` head "
                        "(default: the arch header's)")


def add_space_arguments(parser: argparse.ArgumentParser) -> None:
    """One .arch FILE and its shape options: the space a command compiles."""
    parser.add_argument("file", metavar="FILE")
    add_shape_options(parser)


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """For a command that takes no arguments."""
