"""Turn written domains (`int[1..100] log`) into IR domains, reporting what is wrong.

Empty, inverted or single-value ranges, log scales reaching zero, steps that do
not fit the range, defaults outside the domain and mixed-type choices are all
errors at the place they are written.
"""

from __future__ import annotations

from ..errors import Diagnostics
from . import ir
from . import syntax as s


def literal_value(node: s.Literal) -> ir.Scalar:
    """The Python value of a literal node."""
    return node.value


def convert(domain: s.Domain, diags: Diagnostics) -> ir.Domain | None:
    """The IR domain for `domain`, or None (with errors recorded) when it is invalid."""
    if isinstance(domain, s.IntRange):
        return _int_range(domain, diags)
    if isinstance(domain, s.FloatRange):
        return _float_range(domain, diags)
    return _choice(domain, diags)


def fixed(node: s.Literal) -> ir.FixedDomain:
    """A fixed parameter's domain."""
    return ir.FixedDomain(literal_value(node))


def _bounds(domain: s.IntRange | s.FloatRange, diags: Diagnostics) -> bool:
    low, high = domain.low.value, domain.high.value
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
        return False
    if low > high:
        diags.error(domain.span, f"inverted range: {domain.low.text} is above {domain.high.text}")
        return False
    if low == high:
        diags.error(
            domain.span,
            f"the range holds the single value {domain.low.text}; write the value itself "
            "for a fixed parameter",
        )
        return False
    if domain.log and low <= 0:
        diags.error(domain.span, f"a log-scaled range must start above 0, not at {low:g}")
        return False
    return True


def _default(node: s.Literal | None, allowed: str, ok: bool, diags: Diagnostics) -> bool:
    if node is not None and not ok:
        diags.error(node.span, f"default {_show(node)} is not {allowed}")
        return False
    return True


def _show(node: s.Literal) -> str:
    if isinstance(node, s.String):
        return f'"{node.value}"'
    if isinstance(node, s.Bool):
        return "true" if node.value else "false"
    return node.text or str(node.value)


def _int_range(domain: s.IntRange, diags: Diagnostics) -> ir.IntDomain | None:
    low, high = domain.low.value, domain.high.value
    if not isinstance(low, int) or not isinstance(high, int) or not _bounds(domain, diags):
        return None
    step = 1
    if domain.step is not None:
        step = int(domain.step.value)
        if step < 1:
            diags.error(domain.step.span, "the step must be at least 1")
            return None
        if domain.log:
            diags.error(domain.step.span, "a range cannot have both a step and a log scale")
            return None
        if (high - low) % step:
            diags.error(
                domain.step.span,
                f"step {step} does not fit the range: {high} is not {low} plus a multiple "
                f"of {step}",
            )
            return None
    default = domain.default
    value = None if default is None else default.value
    good = (
        isinstance(value, int) and not isinstance(value, bool)
        and low <= value <= high and (value - low) % step == 0
    )
    if not _default(default, f"an integer in int[{low}..{high}] on the step", good, diags):
        return None
    return ir.IntDomain(low, high, step, domain.log, low if value is None else int(value))


def _float_range(domain: s.FloatRange, diags: Diagnostics) -> ir.FloatDomain | None:
    if not _bounds(domain, diags):
        return None
    low, high = float(domain.low.value), float(domain.high.value)
    default = domain.default
    value = None if default is None else default.value
    good = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
    if not _default(default, f"a number in float[{low:g}..{high:g}]", good, diags):
        return None
    return ir.FloatDomain(low, high, domain.log, low if value is None else float(value))


def _choice(domain: s.Choice, diags: Diagnostics) -> ir.ChoiceDomain | None:
    values = [literal_value(v) for v in domain.values]
    if len(values) < 2:
        diags.error(
            domain.span,
            "a choice needs at least two values" + (
                "; write the value itself for a fixed parameter" if values else ""
            ),
        )
        return None
    types = {ir.value_type(v) for v in values}
    if types == {"int", "float"}:
        values = [float(v) for v in values]
    elif len(types) > 1:
        diags.error(
            domain.span, "choice values must all have one type: " + ", ".join(sorted(types))
        )
        return None
    seen: set[ir.Scalar] = set()
    for node, value in zip(domain.values, values):
        if value in seen:
            diags.error(node.span, f"{_show(node)} is listed twice")
            return None
        seen.add(value)
    default = domain.default
    value = None if default is None else default.value
    if isinstance(value, int) and not isinstance(value, bool) and types == {"int", "float"}:
        value = float(value)
    good = value in values and ir.value_type(value) == ir.value_type(values[0])
    if not _default(default, "one of the choices", good, diags):
        return None
    return ir.ChoiceDomain(tuple(values), domain.ordered, values[0] if value is None else value)
