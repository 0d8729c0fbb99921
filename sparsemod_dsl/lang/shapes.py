"""Intervals and tensor shapes, for shape inference over whole search spaces.

A dimension is an `Interval` of the sizes it can take over the points of a
space; for one concrete point every interval is a single value. The same layer
rules (`layers`) therefore answer both "can this ever work?" (the checker) and
"what is the shape here?" (validation, builders, cost models).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .arith import MAX_INT, short

Kind = Literal["image", "sequence", "vector"]

@dataclass(frozen=True, slots=True)
class Interval:
    """The closed range [lo, hi] of values an expression can take."""

    lo: float
    hi: float

    @staticmethod
    def of(value: float) -> "Interval":
        """A single value."""
        return Interval(value, value)

    @property
    def exact(self) -> bool:
        """True when the interval holds one value."""
        return self.lo == self.hi

    def __add__(self, other: "Interval") -> "Interval":
        return _bounds(self.lo + other.lo, self.hi + other.hi)

    def __sub__(self, other: "Interval") -> "Interval":
        return _bounds(self.lo - other.hi, self.hi - other.lo)

    def __mul__(self, other: "Interval") -> "Interval":
        # 0 times an unbounded end is 0: an infinite bound stands for "any finite value".
        return _bounds(*(a * b if a and b else 0 for a in (self.lo, self.hi)
                         for b in (other.lo, other.hi)))

    def __truediv__(self, other: "Interval") -> "Interval":
        if other.lo <= 0 <= other.hi:
            return UNBOUNDED
        return _bounds(*(a / b for a in (self.lo, self.hi) for b in (other.lo, other.hi)))

    def __floordiv__(self, other: "Interval") -> "Interval":
        quotient = self / other
        if quotient is UNBOUNDED:
            return UNBOUNDED
        return Interval(_floor(quotient.lo), _floor(quotient.hi))

    def __neg__(self) -> "Interval":
        return Interval(-self.hi, -self.lo)

    def hull(self, other: "Interval") -> "Interval":
        """The smallest interval holding both."""
        return Interval(min(self.lo, other.lo), max(self.hi, other.hi))

    def __str__(self) -> str:
        def show(x: float) -> str:
            if isinstance(x, int):
                return short(x)
            return str(int(x)) if x.is_integer() else f"{x:g}"

        return show(self.lo) if self.exact else f"{show(self.lo)}..{show(self.hi)}"


UNBOUNDED = Interval(-math.inf, math.inf)


def _tame(x: float) -> float:
    """A bound as a float once it leaves the language's integers, so that arithmetic on
    bounds cannot raise (an int beyond the float range becomes an infinity)."""
    if isinstance(x, int) and not -MAX_INT <= x <= MAX_INT:
        return math.copysign(math.inf, x) if x.bit_length() > 1023 else float(x)
    return x


def _bounds(*values: float) -> Interval:
    """The interval spanning `values`; unbounded when one is undefined (inf - inf)."""
    tamed = [_tame(v) for v in values]
    if any(v != v for v in tamed):
        return UNBOUNDED
    return Interval(min(tamed), max(tamed))


def _floor(x: float) -> float:
    return math.floor(x) if math.isfinite(x) else x


@dataclass(frozen=True, slots=True)
class Shape:
    """A tensor shape without the batch dimension.

    image: (channels, height, width); sequence: (steps, features);
    vector: (features,). Each dimension is an `Interval`.
    """

    kind: Kind
    dims: tuple[Interval, ...]

    @staticmethod
    def exact(kind: Kind, *dims: int) -> "Shape":
        """A shape with known sizes."""
        return Shape(kind, tuple(Interval.of(d) for d in dims))

    @property
    def channels(self) -> Interval:
        """Channels of an image, features of a sequence or vector."""
        return self.dims[0] if self.kind == "image" else self.dims[-1]

    def sizes(self) -> tuple[int, ...]:
        """The dimensions of a concrete shape as ints."""
        return tuple(int(d.hi) for d in self.dims)

    def hull(self, other: "Shape") -> "Shape":
        """A shape covering both (same kind)."""
        return Shape(self.kind, tuple(a.hull(b) for a, b in zip(self.dims, other.dims)))

    def __str__(self) -> str:
        return f"{self.kind} " + "x".join(str(d) for d in self.dims)
