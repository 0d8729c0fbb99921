"""The Ax search space of a program, and the mapping between Ax arms and points.

Two encodings of the same IR program:

- flat (default): one Ax parameter per IR parameter, named `Parameter.ax_name`.
  Ax sees every parameter at every arm; those inactive at a point (instances
  beyond a repeat count, unchosen alternatives, absent optional parts) are
  simply ignored when the arm is mapped back.
- hierarchical: inactive parameters are not modelled. Each parameter hangs
  under its last activity condition: `==` conditions become `dependents` of the
  choose/optional parameter. A repeat count cannot be a parent directly, since
  instance i is active for every count >= i and Ax wants a strict tree. So a
  count with possible values v0 < v1 < ... < vk becomes a chain of boolean gates
  `<count>__gate__<vj>` ("count >= vj"), gate j+1 hanging under gate j being
  true; the count itself is derived (the last vj of the leading true gates, v0
  when none). This needs the conditions to nest (a parameter's conditions are
  those of its parent plus one); `lower` produces nesting conditions except for
  a count parameter shared by repeats in different scopes, which raises.

IR defaults are not passed to Ax: in Ax 1.3 a parameter with a `default_value`
is *disabled* (fixed to it); `to_ax` fills missing values from them instead.

Constraints linear in parameters that Ax models as non-log ranges, all of them
present at every point, become Ax `ParameterConstraint`s (`axconstraints` finds
them). Every other constraint is a *filter*: Ax does not know it, so its arms may
violate it, and callers must check `filters(...)` with `point.failing_constraint`
(or `point.validate`) before evaluating an arm. A constraint over a parameter that
may be inactive is always a filter: the language counts an inactive parameter as 0
(`point.constraint_values`), which Ax, seeing every parameter's value, cannot do.
"""

from __future__ import annotations

from typing import Any, Mapping

from ax.core.parameter import (
    MAX_VALUES_CHOICE_PARAM,
    ChoiceParameter,
    FixedParameter,
    Parameter,
    ParameterType,
    RangeParameter,
)
from ax.core.parameter_constraint import ParameterConstraint
from ax.core.search_space import SearchSpace

from ..lang import ir
from ..lang.fmt import quote
from . import point as pt
from .axconstraints import ax_constraint, inequality, linear_form

GATE = "__gate__"

_TYPES = {
    "int": ParameterType.INT,
    "float": ParameterType.FLOAT,
    "str": ParameterType.STRING,
    "bool": ParameterType.BOOL,
}

#: Where a hierarchical parameter hangs: (Ax parent name, parent value), None at the root.
Slot = tuple[str, ir.Scalar] | None
Tree = dict[str, dict[ir.Scalar, list[str]]]


# --- the search space ------------------------------------------------------------------


def search_space(program: ir.Program, hierarchical: bool = False) -> SearchSpace:
    """The Ax search space of a program, flat or hierarchical (see the module doc).

    Raises:
        ValueError: `hierarchical` is asked for a program whose conditions do not nest.
    """
    if not hierarchical:
        params = [_parameter(p) for p in program.parameters]
    else:
        counts = _counts(program)
        dependents = _tree(program, counts)
        params = []
        for p in program.parameters:
            if p.name not in counts:
                params.append(_parameter(p, dependents.get(p.ax_name)))
                continue
            for value in counts[p.name][1:]:
                name = gate_name(p.name, value)
                params.append(_choice(name, ParameterType.BOOL, [False, True], True,
                                      dependents.get(name)))
    return SearchSpace(params, _split(program, hierarchical)[0])


def gate_name(count: str, value: int) -> str:
    """The Ax name of the gate "repeat count `count` >= `value`"."""
    return ir.ax_name(count) + GATE + str(value)


def filters(program: ir.Program, hierarchical: bool = False) -> list[ir.Constraint]:
    """The constraints Ax is not given in that form: `point.validate` checks them."""
    return _split(program, hierarchical)[1]


def _parameter(param: ir.Parameter, dependents: dict[ir.Scalar, list[str]] | None = None
               ) -> Parameter:
    """The Ax parameter of an IR parameter (a step int becomes an ordered choice)."""
    domain, name = param.domain, param.ax_name
    if isinstance(domain, ir.FixedDomain):
        return FixedParameter(name, _TYPES[domain.type], domain.value, dependents=dependents)
    if isinstance(domain, ir.ChoiceDomain):
        return _choice(name, _TYPES[domain.type], list(domain.values), domain.ordered,
                       dependents)
    if isinstance(domain, ir.IntDomain) and domain.step != 1:
        return _choice(name, ParameterType.INT, list(_count_values(domain)), True, dependents)
    assert dependents is None, f"{param.name} cannot be a parent"
    kind = ParameterType.INT if isinstance(domain, ir.IntDomain) else ParameterType.FLOAT
    return RangeParameter(name, kind, domain.low, domain.high, log_scale=domain.log)


def _choice(name: str, kind: ParameterType, values: list[ir.Scalar], ordered: bool,
            dependents: dict[ir.Scalar, list[str]] | None) -> ChoiceParameter:
    """A choice parameter. Ax treats two values as ordered and wants ordered numbers sorted."""
    return ChoiceParameter(
        name, kind, values, is_ordered=ordered, is_task=False,
        sort_values=kind.is_numeric and (ordered or len(values) == 2),
        log_scale=False, dependents=dependents,
        bypass_cardinality_check=len(values) > MAX_VALUES_CHOICE_PARAM,
    )


# --- the hierarchical structure ---------------------------------------------------------


def _count_values(domain: ir.Domain) -> tuple[int, ...]:
    """The sorted values of an integer domain (a repeat count or a step int)."""
    if isinstance(domain, ir.IntDomain):
        return tuple(range(domain.low, domain.high + 1, domain.step))
    if isinstance(domain, ir.ChoiceDomain):
        return tuple(sorted(int(v) for v in domain.values))
    assert isinstance(domain, ir.FixedDomain), "a repeat count is an integer"
    return (int(domain.value),)


def _counts(program: ir.Program) -> dict[str, tuple[int, ...]]:
    """The repeat counts that other parameters depend on, with their possible values."""
    names = {c.param for p in program.parameters for c in p.when if c.op == ">="}
    return {p.name: _count_values(p.domain) for p in program.parameters if p.name in names}


def _gate_value(cond: ir.Condition, counts: dict[str, tuple[int, ...]]) -> int:
    """The count value whose gate stands for `count >= cond.value`."""
    values = counts[cond.param]
    if values[0] < cond.value <= values[-1]:  # type: ignore[operator]
        return next(v for v in values if v >= cond.value)  # type: ignore[operator]
    raise ValueError(f"condition {cond.param} >= {cond.value} is not a repeat instance's")


def _slot(cond: ir.Condition, counts: dict[str, tuple[int, ...]]) -> Slot:
    if cond.op == ">=":
        return gate_name(cond.param, _gate_value(cond, counts)), True
    return ir.ax_name(cond.param), cond.value


def _canonical(conds: tuple[ir.Condition, ...], counts: dict[str, tuple[int, ...]]
               ) -> frozenset[tuple[str, str, ir.Scalar]]:
    """A set of conditions with each count's tests reduced to the strongest gate."""
    reach: dict[str, int] = {}
    out: set[tuple[str, str, ir.Scalar]] = set()
    for cond in conds:
        if cond.op == ">=":
            reach[cond.param] = max(reach.get(cond.param, 0), _gate_value(cond, counts))
        else:
            out.add((cond.param, cond.op, cond.value))
    return frozenset(out | {(name, ">=", value) for name, value in reach.items()})


def _tree(program: ir.Program, counts: dict[str, tuple[int, ...]]) -> Tree:
    """For each parent's Ax name, the Ax names hanging under each of its values.

    Raises:
        ValueError: a parameter's conditions are not its parent's plus one.
    """
    params = {p.name: p for p in program.parameters}
    tree: Tree = {}

    def hang(slot: Slot, name: str) -> None:
        if slot is not None:
            tree.setdefault(slot[0], {}).setdefault(slot[1], []).append(name)

    for p in program.parameters:
        slot = None
        if p.when:
            owner = params[p.when[-1].param]
            if _canonical(p.when, counts) != _canonical((*owner.when, p.when[-1]), counts):
                raise ValueError(
                    f"{p.name}: its activity conditions do not nest, so it has no single "
                    "parent in a hierarchical Ax space; use the flat form"
                )
            slot = _slot(p.when[-1], counts)
        if p.name not in counts:
            hang(slot, p.ax_name)
            continue
        for value in counts[p.name][1:]:
            hang(slot, gate_name(p.name, value))
            slot = gate_name(p.name, value), True
    return tree


# --- constraints -------------------------------------------------------------------------


def _split(program: ir.Program, hierarchical: bool
           ) -> tuple[list[ParameterConstraint], list[ir.Constraint]]:
    """The constraints given to Ax and the filters."""
    always = {p.ax_name for p in program.parameters if not p.when} - {
        ir.ax_name(name) for name in _counts(program)
    }
    for_ax: list[ParameterConstraint] = []
    rest: list[ir.Constraint] = []
    for constraint in program.constraints:
        form = linear_form(constraint, program)
        made = None if form is None else ax_constraint(form)
        # Only over parameters present at every point: in the flat form Ax would apply a
        # constraint to the values of inactive parameters, which the language reads as 0.
        if made is not None and made.constraint_dict.keys() <= always:
            for_ax.append(made)
        else:
            rest.append(constraint)
    return for_ax, rest


# --- arms and points ----------------------------------------------------------------------


def to_point(ax_parameters: Mapping[str, Any], program: ir.Program,
             hierarchical: bool = False) -> pt.Point:
    """The point (readable names, active parameters only) of an Ax parametrization.

    In the hierarchical form gates are dropped and each count rebuilt from them.

    Raises:
        point.PointError: a name is not one of the space's.
    """
    readable = {p.ax_name: p.name for p in program.parameters}
    counts = _counts(program) if hierarchical else {}
    gates = {gate_name(c, v) for c, values in counts.items() for v in values[1:]}
    unknown = sorted(set(ax_parameters) - set(readable) - gates)
    if unknown:
        raise pt.PointError(f"unknown Ax parameter(s): {', '.join(unknown)}")
    values = {readable[k]: v for k, v in ax_parameters.items() if k not in gates}
    for count, options in counts.items():
        if gate_name(count, options[1]) not in ax_parameters:
            continue
        values[count] = options[0]
        for value in options[1:]:
            if not ax_parameters.get(gate_name(count, value)):
                break
            values[count] = value
    return pt.active(program, values)


def to_ax(point: Mapping[str, object], program: ir.Program,
          hierarchical: bool = False) -> dict[str, ir.Scalar]:
    """The Ax parametrization of a point, missing values taken from the defaults.

    Flat: every parameter. Hierarchical: only the active path, counts as gates.
    """
    values = pt.complete(program, point) if not hierarchical else pt.active(program, point)
    counts = _counts(program) if hierarchical else {}
    out: dict[str, ir.Scalar] = {}
    for p in program.parameters:
        if p.name not in values:
            continue
        value = values[p.name]
        if p.name not in counts:
            out[p.ax_name] = float(value) if p.domain.type == "float" else value  # type: ignore
            continue
        for option in counts[p.name][1:]:
            out[gate_name(p.name, option)] = value >= option  # type: ignore[operator]
            if value < option:  # type: ignore[operator]
                break
    return out


# --- description ------------------------------------------------------------------------------


def describe(program: ir.Program) -> dict[str, list[dict[str, Any]]]:
    """The JSON-ready search space for `sparsemodc compile --emit searchspace`; cost
    constraints, which Ax never sees, are listed apart when there are any."""
    kept = filters(program)
    out: dict[str, list[dict[str, Any]]] = {
        "parameters": [_describe_parameter(p) for p in program.parameters],
        "constraints": [_describe_constraint(c, program, c not in kept)
                        for c in program.constraints],
    }
    if program.cost_constraints:
        out["cost_constraints"] = [
            {"expression": f"{show(c.left)} {c.op} {show(c.right)}"
             + ("" if c.unit is None else f" {c.unit}")} for c in program.cost_constraints]
    return out


def _describe_parameter(param: ir.Parameter) -> dict[str, Any]:
    domain = param.domain
    out: dict[str, Any] = {"name": param.name, "ax_name": param.ax_name}
    if isinstance(domain, ir.FixedDomain):
        out.update(type="fixed", value_type=domain.type, value=domain.value)
    elif isinstance(domain, ir.ChoiceDomain):
        out.update(type="choice", value_type=domain.type, values=list(domain.values),
                   ordered=domain.ordered)
    else:
        out.update(type=domain.type, value_type=domain.type, bounds=[domain.low, domain.high],
                   log_scale=domain.log)
        if isinstance(domain, ir.IntDomain):
            out["step"] = domain.step
    out["default"] = pt.default(domain)
    out["active_when"] = [{"param": c.param, "op": c.op, "value": c.value} for c in param.when]
    return out


def _describe_constraint(constraint: ir.Constraint, program: ir.Program, given: bool
                         ) -> dict[str, Any]:
    """A constraint, whether it is linear, and the inequality Ax is `given` (None: a filter)."""
    form = linear_form(constraint, program)
    return {
        "expression": f"{show(constraint.left)} {constraint.op} {show(constraint.right)}",
        "linear": form is not None,
        "ax": inequality(form) if given else None,  # type: ignore[arg-type]
    }


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "**": 3}
_TIGHT = 3  # unary minus, atoms and calls


def _rank(expr: ir.Expr) -> int:
    return _PRECEDENCE[expr.op] if isinstance(expr, ir.BinOp) else _TIGHT


def show(expr: ir.Expr) -> str:
    """An expression as readable source text: `block[2].filters >= 2 * block[1].filters`."""
    if isinstance(expr, ir.Const):
        value = expr.value
        if isinstance(value, bool):
            return "true" if value else "false"
        return quote(value) if isinstance(value, str) else repr(value)
    if isinstance(expr, (ir.ParamRef, ir.Builtin)):
        return expr.name
    if isinstance(expr, ir.Neg):
        inner = show(expr.operand)
        return f"-({inner})" if isinstance(expr.operand, ir.BinOp) else f"-{inner}"
    if isinstance(expr, ir.Func):
        return f"{expr.name}({', '.join(show(a) for a in expr.args)})"
    left, right = show(expr.left), show(expr.right)
    if expr.op == "**":  # an atom on the left, groups to the right
        tight = isinstance(expr.left, (ir.BinOp, ir.Neg))
        loose = isinstance(expr.right, ir.BinOp) and expr.right.op != "**"
        return f"{f'({left})' if tight else left} ** {f'({right})' if loose else right}"
    if _rank(expr.left) < _rank(expr):
        left = f"({left})"
    if _rank(expr.right) <= _rank(expr):  # operators group to the left
        right = f"({right})"
    return f"{left} {expr.op} {right}"
