"""Wording shared by lowering's error messages: suggestions, plurals and type names."""

from __future__ import annotations

import difflib
from typing import Iterable

#: A value type as a message names it ("takes an int, not a string").
TYPE_WORDS = {"int": "an int", "float": "a float", "str": "a string", "bool": "a bool"}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def suggest(name: str, candidates: Iterable[str]) -> str:
    """`; did you mean 'x'?` when a close match exists."""
    close = difflib.get_close_matches(name, sorted(set(candidates) - {name}), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""
