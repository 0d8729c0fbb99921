"""Points as vectors in the unit cube, the input of the error surrogate.

Every searchable parameter gets its columns: one for a range (scaled to [0, 1],
on a log scale when the domain is log-scaled), one for an ordered choice or a
boolean (its rank over the number of values less one), one per value for an
unordered choice (one-hot). A parameter inactive at a point, such as the kernel
of a fourth conv layer when the count is three, has all its columns at 0: the
surrogate then sees every point without that layer alike, whatever values
Ax or a sampler left in the absent parameters, instead of noise it would try to
explain. That the part is absent is told by the count or choice that removes it.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ..lang import ir
from ..nets.point import active


def _unit(domain: ir.IntDomain | ir.FloatDomain, value: float) -> float:
    """A range value scaled to [0, 1]."""
    low, high = float(domain.low), float(domain.high)
    if high == low:
        return 0.0
    if domain.log:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


class Encoder:
    """The columns of a program's searchable parameters, and points encoded in them."""

    def __init__(self, program: ir.Program) -> None:
        self.program = program
        self.columns: dict[str, int] = {}
        width = 0
        for param in program.searchable:
            self.columns[param.name] = width
            width += self._width(param.domain)
        self.width = width

    @staticmethod
    def _width(domain: ir.Domain) -> int:
        if isinstance(domain, ir.ChoiceDomain) and not domain.ordered \
                and domain.type != "bool" and len(domain.values) > 2:
            return len(domain.values)
        return 1

    def encode(self, points: Sequence[Mapping[str, object]]) -> np.ndarray:
        """An array of shape (len(points), width) with values in [0, 1]."""
        out = np.zeros((len(points), self.width))
        for row, point in enumerate(points):
            values = active(self.program, point)
            for param in self.program.searchable:
                if param.name in values:
                    self._put(out[row], self.columns[param.name], param.domain,
                              values[param.name])
        return out

    def _put(self, row: np.ndarray, column: int, domain: ir.Domain, value: ir.Scalar) -> None:
        if isinstance(domain, (ir.IntDomain, ir.FloatDomain)):
            row[column] = _unit(domain, float(value))
        elif isinstance(domain, ir.ChoiceDomain):
            rank = domain.values.index(value)
            if self._width(domain) > 1:
                row[column + rank] = 1.0
            else:
                row[column] = rank / max(len(domain.values) - 1, 1)
