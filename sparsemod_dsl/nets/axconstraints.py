"""Constraints as linear inequalities over Ax names, and as Ax `ParameterConstraint`s.

`linear_form` reads a program constraint as `sum(coeff * x) <= bound` when it is
affine in parameters that Ax models as non-log ranges; `ax_constraint` makes the
Ax constraint of such a form, when Ax's parser reads it back the same. Which
constraints `axspace` then gives Ax, and which stay filters, is its own choice.
Kept apart from `axspace` because this is algebra on IR expressions, with no
part in the shape of the search space.
"""

from __future__ import annotations

import math

from ax.core.parameter_constraint import ParameterConstraint
from ax.exceptions.core import UserInputError

from ..lang import arith, ir

#: (coefficient by Ax name, bound), standing for `sum(coeff * x) <= bound`.
LinearForm = tuple[dict[str, float], float]


def linear_form(constraint: ir.Constraint, program: ir.Program) -> LinearForm | None:
    """`constraint` as `sum(coeff * x) <= bound` over Ax names, or None when Ax cannot take it.

    None when the operator is not `<=`/`>=`, when a side is not affine in the
    parameters (a product or quotient of parameters, `//`, `min`/`max` of
    parameters, `in_channels`), when a parameter is not a non-log Ax range (log
    scales, choices, step ints), or when no parameter is left. Fixed parameters
    and `classes` are constants.
    """
    if constraint.op not in ("<=", ">="):
        return None
    params = {p.name: p for p in program.parameters}
    left = _affine(constraint.left, program, params)
    right = _affine(constraint.right, program, params)
    if left is None or right is None:
        return None
    low, high = (left, right) if constraint.op == "<=" else (right, left)
    coeffs = dict(low[0])
    for name, coeff in high[0].items():
        coeffs[name] = coeffs.get(name, 0.0) - coeff
    coeffs = {name: c for name, c in coeffs.items() if c != 0.0}
    return (coeffs, high[1] - low[1]) if coeffs else None


def _affine(expr: ir.Expr, program: ir.Program, params: dict[str, ir.Parameter]
            ) -> LinearForm | None:
    """`expr` as (coefficients by Ax name, constant), or None when it is not affine."""
    if isinstance(expr, ir.Const):
        return {}, float(expr.value)
    if isinstance(expr, ir.Builtin):
        if expr.name != "classes" or program.classes is None:
            return None
        return {}, float(program.classes)
    if isinstance(expr, ir.ParamRef):
        domain = params[expr.name].domain
        if isinstance(domain, ir.FixedDomain):
            return {}, float(domain.value)
        ranged = isinstance(domain, ir.FloatDomain) or (
            isinstance(domain, ir.IntDomain) and domain.step == 1)
        return ({ir.ax_name(expr.name): 1.0}, 0.0) if ranged and not domain.log else None
    if isinstance(expr, ir.Neg):
        inner = _affine(expr.operand, program, params)
        return None if inner is None else _scale(inner, -1.0)
    parts = [_affine(arg, program, params) for arg in
             (expr.args if isinstance(expr, ir.Func) else (expr.left, expr.right))]
    if any(part is None for part in parts):
        return None
    forms: list[LinearForm] = parts  # type: ignore[assignment]
    if all(not terms for terms, _ in forms):
        return _fold(expr, [const for _, const in forms])
    if isinstance(expr, ir.Func) or expr.op == "//":
        return None
    (lt, lc), (rt, rc) = forms
    if expr.op in ("+", "-"):
        sign = 1.0 if expr.op == "+" else -1.0
        terms = dict(lt)
        for name, coeff in rt.items():
            terms[name] = terms.get(name, 0.0) + sign * coeff
        return terms, lc + sign * rc
    if expr.op == "*" and (not lt or not rt):
        return _scale(forms[1], lc) if not lt else _scale(forms[0], rc)
    return _scale(forms[0], 1.0 / rc) if expr.op == "/" and not rt and rc else None


def _fold(expr: ir.BinOp | ir.Func, values: list[float]) -> LinearForm | None:
    """A constant sub-expression's value (None for a division by zero)."""
    if isinstance(expr, ir.Func):
        try:
            return {}, float(ir.FUNCTIONS[expr.name](values))
        except ValueError:  # make_divisible's divisor, made a float here
            return None
    a, b = values
    if expr.op in ("/", "//") and b == 0:
        return None
    if expr.op in ("+", "-"):
        return {}, a + b if expr.op == "+" else a - b
    if expr.op == "**":
        try:
            return {}, float(arith.apply("**", a, b))
        except arith.Fault:
            return None
    return {}, a * b if expr.op == "*" else (a / b if expr.op == "/" else float(a // b))


def _scale(form: LinearForm, factor: float) -> LinearForm:
    return {name: factor * c for name, c in form[0].items()}, factor * form[1]


def inequality(form: LinearForm) -> str:
    """Ax's text for a linear form: `2.0*a + -1.0*b <= 3.0`."""
    return " + ".join(f"{c!r}*{name}" for name, c in form[0].items()) + f" <= {form[1]!r}"


def ax_constraint(form: LinearForm) -> ParameterConstraint | None:
    """Ax's constraint for a form, None when Ax's parser reads it differently.

    Ax parses the text with SymPy, which refuses parameter names that are SymPy
    names (`E`, `S`, `beta`); such constraints stay filters.
    """
    try:
        made = ParameterConstraint(inequality=inequality(form))
    except (ValueError, UserInputError):
        return None
    same = made.constraint_dict.keys() == form[0].keys() and all(
        math.isclose(made.constraint_dict[n], c) for n, c in form[0].items()
    ) and math.isclose(made.bound, form[1], abs_tol=1e-12)
    return made if same else None
