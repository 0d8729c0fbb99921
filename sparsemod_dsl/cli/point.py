"""The one point of a space that `morph` and `cost` work on, as the command line gives it.

FILE, its shape options and `--params` (a JSON object of readable parameter names ->
values) name the point; `load_point` compiles the space and refuses a point that cannot
be built, with the same message for both commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..lang.loader import read_source
from .args import add_space_arguments

if TYPE_CHECKING:
    from ..space import Space


def add_point_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE, --input, --classes and --params."""
    add_space_arguments(parser)
    parser.add_argument("--params", metavar="P.json",
                        help="a JSON object of readable parameter names -> values "
                        "(missing ones take their defaults; default: all defaults)")


def read_params(path: str | None) -> dict[str, Any]:
    """The point in a --params file: a JSON object of readable names -> values."""
    if path is None:
        return {}
    if not path:
        raise UsageError("--params: the path is empty: give a JSON file")
    if Path(path).is_dir():
        raise UsageError(f"{path}: is a directory, not a JSON file")
    text = read_source(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{path}: not valid JSON: {error}") from None
    except ValueError:  # Python reads integers of at most sys.get_int_max_str_digits() digits
        raise UsageError(f"{path}: a number has more than {sys.get_int_max_str_digits():,} "
                         "digits; no parameter takes such a value") from None
    except RecursionError:
        raise UsageError(f"{path}: arrays or objects are nested too deeply to read "
                         "(a point is a flat object of parameter names -> values)") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: must be a JSON object of readable parameter names -> values")
    return data


def load_point(args: argparse.Namespace) -> tuple[Space, dict[str, Any]] | None:
    """The compiled space and the point of --params; None (said on stderr) if it cannot be built."""
    from ..space import compile_file  # noqa: PLC0415 (torch and Ax load only when needed)

    params = read_params(args.params)
    space = compile_file(args.file, args.input, args.classes)
    check = space.validate(params)
    if not check:
        print(f"{args.params or args.file}: the point cannot be built: {check.reason}",
              file=sys.stderr)
        return None
    return space, params
