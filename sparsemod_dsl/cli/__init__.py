"""`sparsemodc`: the command-line front end, a thin layer over the Python API.

Exit codes: 0 success; 1 errors in `.arch` sources (or `fmt --check` found a
file to reformat); 2 bad usage, unreadable input or an output that cannot be written
(a missing folder, a full disk). No traceback reaches the user for bad input; an
internal error (70) says so and how to get the traceback.

This package holds the parser and `main`; each command lives in the module of its group
(`source`: check, fmt; `space`: compile, sample, morph; `costs`: cost, targets; `search`:
search, report, show; `deploy`: export), shared argument handling in `args` and `point`,
writing output files in `output`, exit codes and error rendering in `exits`.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Callable, Sequence

from .. import __version__
from ..errors import ArchError, SparsemodError, UsageError
from . import costs, deploy, search, source, space
from .args import Command, Parser
from .exits import EXIT_ERRORS, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, print_error

#: The subcommands, in the order `sparsemodc --help` lists them.
COMMANDS: tuple[Command, ...] = (
    source.CHECK,
    space.COMPILE,
    space.SAMPLE,
    space.MORPH,
    costs.COST,
    costs.TARGETS,
    search.SEARCH,
    search.REPORT,
    search.SHOW,
    deploy.EXPORT,
    source.FMT,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `sparsemodc` and its subcommands."""
    parser = Parser(
        prog="sparsemodc",
        description="Compile .arch search spaces for neural-architecture search on "
        "microcontrollers.",
    )
    parser.add_argument("--version", action="version", version=f"sparsemodc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help,
                                  description=command.description)
        command.arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `sparsemodc`; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        status = run(args)
        if sys.stdout is not None:  # None when stdout is closed: print writes nothing then
            sys.stdout.flush()  # a full disk shows here, not in the flush at exit
        return status
    except UsageError as error:
        print(f"sparsemodc: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ArchError as error:
        print_error(error)
        return EXIT_ERRORS
    except SparsemodError as error:
        print(f"sparsemodc: error: {error}", file=sys.stderr)
        return EXIT_ERRORS
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except OSError as error:
        if error.errno not in _FULL:
            return _internal(error)
        _silence_stdout()
        print(f"sparsemodc: error: cannot write {error.filename or 'the output'}: "
              f"{error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # a bug in sparsemodc, not in the input
        return _internal(error)


#: Writing failed for want of room (a full disk or quota, a file too large) or the device
#: failed: the machine's state, never a bug; stdout to /dev/full shows it.
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def _internal(error: Exception) -> int:
    """Say that `error` is a bug in sparsemodc (or raise it again under SPARSEMOD_DEBUG)."""
    if os.environ.get("SPARSEMOD_DEBUG"):
        raise error
    print(
        f"sparsemodc: internal error: {type(error).__name__}: {error}\n"
        "This is a bug in sparsemodc; please report it with the input file. "
        "Set SPARSEMOD_DEBUG=1 to see the traceback.",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def _silence_stdout() -> None:
    """Send what is left in stdout's buffer to /dev/null, so that the flush at exit cannot
    fail again (a real stdout only; an in-process capture has no descriptor)."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)
