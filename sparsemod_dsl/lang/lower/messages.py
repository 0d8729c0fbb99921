"""Wording shared by lowering's error messages: suggestions, plurals and type names."""

from __future__ import annotations

import difflib
from typing import Iterable

#: A value type as a message names it ("takes an int, not a string").
TYPE_WORDS = {"int": "an int", "float": "a float", "str": "a string", "bool": "a bool"}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def suggest(name: str, candidates: Iterable[str]) -> str:
    """`; did you mean 'x'?` when a candidate is a plausible typo of `name`.

    Plausible: within `_allowed(name)` typing slips (`typo_distance`), the closest one
    (ties broken by difflib's similarity). `bits` is not a slip of `bias` (t and a are
    far apart on a keyboard), so it gets no suggestion.
    """
    limit = _allowed(name)
    scored = sorted(
        (typo_distance(name.lower(), c.lower()), -difflib.SequenceMatcher(None, name, c).ratio(),
         c) for c in set(candidates) - {name}
    )
    return f"; did you mean '{scored[0][2]}'?" if scored and scored[0][0] <= limit else ""


def _allowed(name: str) -> int:
    """How many slips a name of this length may hold and still be recognised."""
    return 0 if len(name) <= 1 else 1 if len(name) <= 4 else 2 if len(name) <= 8 else 3


_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEYS = {key: (row, col) for row, keys in enumerate(_ROWS) for col, key in enumerate(keys)}


def _substitution(a: str, b: str) -> int:
    """1 for keys side by side (or above each other) on a QWERTY keyboard, else 2."""
    if a in _KEYS and b in _KEYS:
        (ra, ca), (rb, cb) = _KEYS[a], _KEYS[b]
        if abs(ra - rb) <= 1 and abs(ca - cb) <= 1:
            return 1
    return 1 if {a, b} <= {"_", "-"} else 2


def typo_distance(a: str, b: str) -> int:
    """The typing slips turning `a` into `b`: a missing, extra or swapped neighbour
    character costs 1, a wrong character 1 when its key is next to the right one, else 2.
    """
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1,
                         previous[j - 1] + (0 if x == y else _substitution(x, y)))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                row[j] = min(row[j], previous2[j - 2] + 1)
        previous2, previous = previous, row
    return previous[-1]
