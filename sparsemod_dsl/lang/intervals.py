"""Interval arithmetic over expressions: every value an expression can take in a space
(an interval of numbers, or a set of symbols), from the values of its leaves. Shape
inference (`infer`) and the lowering of expressions (`lower.exprs`) bound expressions
with it.
"""

from __future__ import annotations

import math
from typing import Callable

from . import ir
from .layers import ArgValue
from .shapes import UNBOUNDED, Interval


def interval_of(domain: ir.Domain) -> ArgValue:
    """Every value a parameter's domain allows: an interval, or a set of symbols."""
    if isinstance(domain, (ir.IntDomain, ir.FloatDomain)):
        return Interval(domain.low, domain.high)
    values = domain.values if isinstance(domain, ir.ChoiceDomain) else (domain.value,)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return Interval(min(values), max(values))  # type: ignore[type-var]
    return frozenset(values)


def evaluate(
    expr: ir.Expr, leaf: Callable[[ir.ParamRef | ir.Builtin], ArgValue]
) -> ArgValue:
    """Evaluate an expression with interval arithmetic; `leaf` gives parameter values."""
    if isinstance(expr, ir.Const):
        return constant(expr.value)
    if isinstance(expr, (ir.ParamRef, ir.Builtin)):
        return leaf(expr)
    if isinstance(expr, ir.Neg):
        return negate(evaluate(expr.operand, leaf))
    if isinstance(expr, ir.Func):
        return pick(expr.name, [evaluate(a, leaf) for a in expr.args])
    return combine(expr.op, evaluate(expr.left, leaf), evaluate(expr.right, leaf))


def constant(value: ir.Scalar) -> ArgValue:
    """The values of a constant: one number, or one symbol."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Interval.of(value)
    return frozenset({value})


def negate(operand: ArgValue) -> ArgValue:
    """The values of `-x` for x in `operand`."""
    return -operand if isinstance(operand, Interval) else UNBOUNDED


def pick(name: str, values: list[ArgValue]) -> ArgValue:
    """The values of a function (`min`, `round`, `make_divisible`, ...) of the given values.

    Every function is non-decreasing in its first argument, so the ends of the interval
    come from the ends of the arguments; `make_divisible` with a divisor that varies is
    bounded by max(d, 0.9x) below and max(d, x + d) above.
    """
    if not all(isinstance(v, Interval) for v in values):
        return UNBOUNDED
    intervals: list[Interval] = values  # type: ignore[assignment]
    if name in ("min", "max"):
        choose = ir.FUNCTIONS[name]
        return Interval(choose([v.lo for v in intervals]), choose([v.hi for v in intervals]))
    if name == "make_divisible":
        x, d = intervals
        if d.lo < 1 or isinstance(d.lo, float) or not (d.exact and _finite(x)):
            return Interval(max(d.lo, 0.9 * x.lo), max(d.hi, x.hi + d.hi))
        return Interval(*(ir.FUNCTIONS[name]([end, d.lo]) for end in (x.lo, x.hi)))
    (x,) = intervals
    if not _finite(x):
        return Interval(math.floor(x.lo) if math.isfinite(x.lo) else x.lo,
                        math.ceil(x.hi) if math.isfinite(x.hi) else x.hi)
    return Interval(ir.FUNCTIONS[name]([x.lo]), ir.FUNCTIONS[name]([x.hi]))


def _power(base: Interval, exponent: Interval) -> Interval:
    """The values of `base ** exponent`: bounded by the corners where both are at least
    0 (x ** y is monotone in each there), anything otherwise."""
    if base.lo < 0 or exponent.lo < 0:
        return UNBOUNDED

    def corner(x: float, y: float) -> float:
        try:
            return float(x) ** float(y)
        except OverflowError:
            return math.inf

    corners = [corner(x, y) for x in (base.lo, base.hi) for y in (exponent.lo, exponent.hi)]
    return Interval(min(corners), max(corners))


def _finite(interval: Interval) -> bool:
    return math.isfinite(interval.lo) and math.isfinite(interval.hi)


def combine(op: str, left: ArgValue, right: ArgValue) -> ArgValue:
    """The values of `left op right` (op in + - * / // **)."""
    if not isinstance(left, Interval) or not isinstance(right, Interval):
        return UNBOUNDED
    if op == "**":
        return _power(left, right)
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        return left / right
    return left // right
