"""Constraints on costs: `constraint macs <= 2_000_000`, `constraint ram <= 64 KB`.

A cost constraint (`ir.CostConstraint`) reads the costs of a point's deployed network
(`cost.CostReport`: MACs, parameters, flash and arena bytes, latency in milliseconds)
and, like any constraint, its parameters (an inactive one counts as 0). Ax never sees
these: the search prices every candidate (`search.pricing`) and drops those failing
one before training, in the Sobol stage, the candidate pools and the engine alike.
"""

from __future__ import annotations

from typing import Mapping

from ..lang import arith, ir
from .cost import CostReport
from .point import compare, complete, constraint_values

#: The unit a cost is shown in when its constraint has none.
_PLAIN_UNITS = {"count": "", "bytes": " B", "time": " ms"}


def cost_values(report: CostReport) -> dict[str, float | None]:
    """The costs constraints may name, in bytes and milliseconds (latency: None without
    a target)."""
    return {"macs": report.macs, "params": report.params, "flash": report.flash_bytes,
            "ram": report.ram_bytes, "latency": report.latency_ms}


def failing_cost_constraint(program: ir.Program, point: Mapping[str, object],
                            report: CostReport) -> str | None:
    """Why a priced point breaks a cost constraint (the first that fails), or None."""
    if not program.cost_constraints:  # the usual case, on the pricing hot path
        return None
    values = constraint_values(program, complete(program, point))
    costs = cost_values(report)
    for constraint in program.cost_constraints:
        scale = 1 if constraint.unit is None else ir.UNITS[constraint.unit][1]

        def leaf(node: ir.ParamRef | ir.Builtin) -> ir.Scalar:
            if isinstance(node, ir.ParamRef):
                return values[node.name]
            if node.name == "classes" and program.classes is not None:
                return program.classes
            value = costs.get(node.name)
            if value is None:
                raise arith.Fault(f"'{node.name}' is unknown here"
                                  + (" (latency needs a target)" if node.name == "latency"
                                     else ""))
            return value / scale

        where = f"cost constraint at line {constraint.span.line}"
        try:
            left = arith.exact(constraint.left, leaf)
            right = arith.exact(constraint.right, leaf)
        except arith.Fault as fault:
            return f"{where} cannot be evaluated: {fault.message}"
        if not compare(left, constraint.op, right):
            named = sorted({*ir.costs(constraint.left), *ir.costs(constraint.right)})
            return f"{where} fails ({', '.join(_shown(n, costs, constraint) for n in named)})"
    return None


def _shown(name: str, costs: Mapping[str, float | None], constraint: ir.CostConstraint) -> str:
    value = costs[name]
    assert value is not None
    if constraint.unit is None:
        return f"{name} = {_number(value)}{_PLAIN_UNITS[ir.COSTS[name][0]]}"
    return f"{name} = {_number(value / ir.UNITS[constraint.unit][1])} {constraint.unit}"


def _number(value: float) -> str:
    """`1,677,352`, or `80.21` for a value that is not whole."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"
