"""The front end in one call: read a file, resolve imports, lower, check.

`compile_file` is what the CLI and the Python API use; later backends take the
`ir.Program` it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import ir
from .check import check
from .loader import Unit, load, load_text
from .lower import check_library, is_library, lower


@dataclass(frozen=True)
class Checked:
    """The outcome of checking one file: a program, or a library of blocks."""

    unit: Unit
    program: ir.Program | None
    library_blocks: int = 0


def check_unit(
    unit: Unit, input_shape: tuple[int, ...] | None = None, classes: int | None = None
) -> Checked:
    """Lower and check a loaded file.

    Raises:
        ArchError: every error found, with positions.
    """
    if is_library(unit) and unit.library.module.items:
        return Checked(unit, None, check_library(unit))
    program = lower(unit, input_shape, classes)
    check(program)
    return Checked(unit, program)


def check_file(
    path: str | Path, input_shape: tuple[int, ...] | None = None, classes: int | None = None
) -> Checked:
    """Read, lower and check a file (see `check_unit`).

    Raises:
        UsageError: the file cannot be read.
        ArchError: errors in the file or its imports.
    """
    return check_unit(load(path), input_shape, classes)


def compile_source(
    text: str,
    file: str = "<string>",
    input_shape: tuple[int, ...] | None = None,
    classes: int | None = None,
) -> ir.Program:
    """Compile source text to a checked program (it must have a header and a network)."""
    program = lower(load_text(text, file), input_shape, classes)
    check(program)
    return program
