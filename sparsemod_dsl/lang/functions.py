"""The language's built-in functions, as plain Python on numbers.

`min`, `max` (two or more arguments), `round`, `floor`, `ceil` (one argument; an int
comes back) and `make_divisible(x, d)`, the MobileNet width rule. This module needs
nothing else from the package, so the generated builder embeds it verbatim
(`codegen`) and computes exactly what the runtime builder computes.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

Number = float  # an int is accepted wherever a float is


def round_half_up(values: Sequence[Number]) -> int:
    """`round(x)`: the nearest integer, halves away from zero (2.5 -> 3, -2.5 -> -3).

    Not Python's `round`, which rounds halves to the even neighbour (2.5 -> 2).
    """
    (x,) = values
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def floor_int(values: Sequence[Number]) -> int:
    """`floor(x)`: the largest integer not above x."""
    (x,) = values
    return math.floor(x)


def ceil_int(values: Sequence[Number]) -> int:
    """`ceil(x)`: the smallest integer not below x."""
    (x,) = values
    return math.ceil(x)


def make_divisible(values: Sequence[Number]) -> int:
    """`make_divisible(x, d)`: x rounded to a multiple of d, at least d, and not more
    than 10% below x (the rule of the MobileNet and MCUNet width multipliers).

    Raises:
        ValueError: d is not a positive integer.
    """
    x, d = values
    if isinstance(d, float) or d < 1:
        raise ValueError(f"make_divisible needs a positive integer divisor, not {d!r}")
    rounded = max(d, int(x + d / 2) // d * d)
    return rounded + d if rounded < 0.9 * x else rounded


def min_of(values: Sequence[Number]) -> Number:
    """`min(a, b, ...)`."""
    return min(values)


def max_of(values: Sequence[Number]) -> Number:
    """`max(a, b, ...)`."""
    return max(values)


#: Every function: its Python implementation, and its fewest and most arguments.
FUNCTIONS: dict[str, tuple[Callable[[Sequence[Number]], Number], int, int]] = {
    "min": (min_of, 2, 1000),
    "max": (max_of, 2, 1000),
    "round": (round_half_up, 1, 1),
    "floor": (floor_int, 1, 1),
    "ceil": (ceil_int, 1, 1),
    "make_divisible": (make_divisible, 2, 2),
}

#: The functions whose value is always an int, whatever their arguments.
INTEGER_RESULT = frozenset({"round", "floor", "ceil", "make_divisible"})
