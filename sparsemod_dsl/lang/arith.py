"""The language's arithmetic on exact values, within the range every value keeps.

Integers stay within 2**53 in magnitude (beyond it a float cannot hold every integer,
and the integer literals stop there too) and floats stay finite; a division by zero or
a value beyond that range is a `Fault`, never a Python exception from deep inside a
cost model. Lowering uses these rules on the values it knows, point validation on the
values of a point (docs/language.md, "Limits").
"""

from __future__ import annotations

import math
from typing import Callable

from . import ir

#: Largest integer magnitude a value may reach.
MAX_INT = 2**53


class Fault(Exception):
    """A value cannot be computed: a division by zero, or a result out of range."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def checked(value: object) -> ir.Scalar:
    """`value` itself when it is a value of the language within range.

    Strings and bools always are; an int must be within 2**53, a float finite.
    """
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return _within(value)
    raise Fault(f"{value!r} is not a number, a string or a bool")


def number(value: object) -> int | float:
    """A value arithmetic may use: an int or a float within range, not a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Fault(f"{value!r} is not a number")
    return _within(value)


def _within(value: int | float) -> int | float:
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise Fault(f"the integer {short(value)} is beyond 2**53")
    elif not math.isfinite(value):
        raise Fault(f"the number {value} is out of range")
    return value


def short(value: int) -> str:
    """An integer in digits; only its first ones, and their count, beyond 20."""
    text = str(value)
    return text if len(text) <= 20 else f"{text[:17]}... ({len(text)} digits)"


def apply(op: str, left: object, right: object) -> int | float:
    """`left op right` for op in + - * / // **, within range."""
    a, b = number(left), number(right)
    if op == "**":
        return power(a, b)
    if op == "+":
        return _within(a + b)
    if op == "-":
        return _within(a - b)
    if op == "*":
        return _within(a * b)
    if b == 0:
        raise Fault("division by zero")
    # Both operands are within range: only a float quotient can overflow (to inf).
    return _within(a / b if op == "/" else a // b)


def power(a: int | float, b: int | float) -> int | float:
    """`a ** b`: an int for ints (a negative exponent of an int is a fault: write 2.0),
    a float otherwise; a result beyond the range, or not real, is a fault."""
    if isinstance(a, int) and isinstance(b, int):
        if b < 0:
            raise Fault(f"{a} ** {b}: a negative power of an int (write {a}.0 ** {b})")
        if abs(a) > 1 and b * math.log2(abs(a)) > 54:
            raise Fault(f"{a} ** {b} is beyond 2**53")
        return _within(a**b)
    if a == 0 and b < 0:
        raise Fault("division by zero")
    try:
        result = float(a) ** float(b)
    except OverflowError:
        raise Fault(f"{a} ** {b} is out of range") from None
    if isinstance(result, complex):
        raise Fault(f"{a} ** {b} is not a real number")
    return _within(result)


def exact(expr: ir.Expr, leaf: Callable[[ir.ParamRef | ir.Builtin], ir.Scalar]) -> ir.Scalar:
    """The exact value of an expression; `leaf` gives the values of names.

    Raises:
        Fault: a division by zero, a value out of range, or arithmetic on a non-number.
    """
    if isinstance(expr, ir.Const):
        return checked(expr.value)
    if isinstance(expr, (ir.ParamRef, ir.Builtin)):
        return checked(leaf(expr))
    if isinstance(expr, ir.Neg):
        return -number(exact(expr.operand, leaf))
    if isinstance(expr, ir.Func):
        values = [number(exact(a, leaf)) for a in expr.args]
        try:
            return checked(ir.FUNCTIONS[expr.name](values))
        except ValueError as error:
            raise Fault(str(error)) from None
    return apply(expr.op, exact(expr.left, leaf), exact(expr.right, leaf))
