"""Reading TOML tables into typed settings dataclasses, with problems in the user's words.

`experiment` declares each section as a frozen dataclass whose fields are its keys (a
field's metadata may hold a `check` of its value); `section` converts a table into one,
reporting a missing key, a value of the wrong TOML type or a failed check as one line.
"""

from __future__ import annotations

import json
import types
from dataclasses import MISSING, Field, fields
from typing import Any, Union, get_args, get_origin, get_type_hints


def table(raw: dict[str, Any], section: str, problems: list[str]) -> dict[str, Any]:
    """The table `[section]` of the file (empty when absent, or reported when not a table)."""
    value = raw.get(section, {})
    if isinstance(value, dict):
        return value
    problems.append(f"{section} must be a table ([{section}]), found {kind(value)}")
    return {}


def section(cls: type, table: dict[str, Any], prefix: str, problems: list[str]) -> Any:
    """An instance of a schema class from its table (a bad value is reported and left at
    its default, so later checks still run), or None when a required key is unusable."""
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):
        key = prefix + f.name
        if f.name not in table:
            if required(f):
                problems.append(f"missing required key '{key}'")
            continue
        value, problem = convert(table[f.name], hints[f.name])
        check = f.metadata["check"]
        if problem is None and check is not None:
            problem = check(value)
        if problem is None:
            values[f.name] = value
        else:
            problems.append(f"{key} {problem}")
    if any(required(f) and f.name not in values for f in fields(cls)):
        return None
    return cls(**values)


def required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def convert(value: Any, hint: Any) -> tuple[Any, str | None]:
    """`value` as the type `hint` (the TOML value for a schema type), or a problem."""
    if get_origin(hint) in (Union, types.UnionType):  # optional keys: absent means None
        hint = next(a for a in get_args(hint) if a is not type(None))
    origin, args = get_origin(hint), get_args(hint)
    if origin is tuple:
        size = None if args[-1] is Ellipsis else len(args)
        wanted = f"an array of {size or ''} {_NAMES[args[0]][1]}s".replace("  ", " ")
        if not isinstance(value, list):
            return None, f"must be {wanted}, found {kind(value)}"
        if size is not None and len(value) != size:
            return None, f"must be {wanted}, found an array of {len(value)}"
        for item in value:
            if convert(item, args[0])[1] is not None:
                return None, f"must be {wanted}, found an array holding {kind(item)}"
        return tuple(value), None
    base = origin or hint
    fits = isinstance(value, base) or (base is float and isinstance(value, int))
    if not fits or isinstance(value, bool) != (base is bool):  # true is no integer here
        return None, f"must be {_NAMES[base][0]}, found {kind(value)}"
    return (float(value) if base is float else value), None


#: Schema type -> (how an error names it, the plural stem for arrays).
_NAMES: dict[Any, tuple[str, str]] = {
    bool: ("a boolean", "boolean"), int: ("an integer", "integer"), float: ("a number", "number"),
    str: ("a string", "string"), dict: ("a table", "table"),
}


def kind(value: Any) -> str:
    """The TOML type of a value, with the value when short."""
    for python, name in ((bool, "a boolean"), (int, "an integer"), (float, "a float"),
                         (str, "a string"), (list, "an array"), (dict, "a table")):
        if isinstance(value, python):
            text = repr(value) if python in (int, float, str) else json.dumps(value, default=str)
            return f"{name} ({text})" if len(text) <= 40 else name
    return "a date or time"
