"""`sparsemodc`: the command-line front end, a thin layer over the Python API.

Exit codes: 0 success; 1 errors in `.arch` sources (or `fmt --check` found a
file to reformat); 2 bad usage or unreadable input. No traceback reaches the
user for bad input; an internal error says so and how to get the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__
from .compiler import Checked, check_file
from .errors import ArchError, SparsemodError, UsageError, render
from .fmt import format_source
from .infer import SpaceEvaluator, input_shape
from .loader import read_source

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
    from . import axspace, codegen  # noqa: PLC0415 (torch and Ax load only when needed)
    from .space import compile_file  # noqa: PLC0415

    space = _compiled(args, compile_file)
    if space is None:
        return EXIT_ERRORS
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
    space = _compiled(args, compile_file)
    if space is None:
        return EXIT_ERRORS
    if args.valid:
        points = [p for p in space.sample(args.n * 20, args.seed) if space.validate(p)][: args.n]
        if len(points) < args.n:
            raise UsageError(f"only {len(points)} of {args.n * 20} random points can be built")
    else:
        points = space.sample(args.n, args.seed)
    for point in points:
        print(json.dumps(point))
    return EXIT_OK


def _compiled(args: argparse.Namespace, compile_file: Callable[..., Any]) -> Any:
    """The compiled space of `args.file`, or None after printing its errors."""
    try:
        return compile_file(args.file, args.input, args.classes)
    except ArchError as error:
        _print_error(error, args.file)
        return None


def _check(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for file in args.files:
        try:
            checked = check_file(file, args.input, args.classes)
        except ArchError as error:
            _print_error(error, file)
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
            _print_error(error, file, text)
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


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so that readers never see a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _print_error(error: ArchError, file: str, text: str | None = None) -> None:
    sources: dict[str, str] = {} if text is None else {file: text}
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
