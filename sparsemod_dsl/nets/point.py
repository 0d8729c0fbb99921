"""Points of a search space: completion, activity, validation and sampling.

A point (a parametrization) maps readable parameter names to values. Only the
parameters that are *active* at a point matter: those of repeat instances
beyond the chosen count, of unchosen alternatives and of absent optional parts
are ignored, and missing ones take their defaults. `validate` says, before any
module is built, whether a point can be built and if not why, naming the
readable parameters involved.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..errors import SparsemodError
from ..lang import arith, ir
from ..lang.infer import Inference, ShapeIssue, input_shape, outside_limits, spatial
from ..lang.layers import ArgValue
from ..lang.shapes import Interval, Shape

Point = dict[str, ir.Scalar]

#: Tolerance when comparing floats against bounds and constraints.
EPSILON = 1e-9


class PointError(SparsemodError):
    """A parametrization names unknown parameters or has values of the wrong type."""


def default(domain: ir.Domain) -> ir.Scalar:
    """The value a parameter takes when a point does not give one."""
    if isinstance(domain, ir.FixedDomain):
        return domain.value
    if isinstance(domain, ir.ChoiceDomain):
        return domain.values[0] if domain.default is None else domain.default
    return domain.low if domain.default is None else domain.default


def contains(domain: ir.Domain, value: object) -> bool:
    """True when `value` is one of the values `domain` allows."""
    if isinstance(domain, ir.FixedDomain):
        return _same(value, domain.value)
    if isinstance(domain, ir.ChoiceDomain):
        return any(_same(value, v) for v in domain.values)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(domain, ir.IntDomain):
        # Bounds first: int() of an infinity, or float() of a huge int, would raise.
        return (
            (isinstance(value, int) or value.is_integer())
            and domain.low <= value <= domain.high
            and (int(value) - domain.low) % domain.step == 0
        )
    return domain.low - EPSILON <= value <= domain.high + EPSILON


def _same(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    return a == b


def complete(program: ir.Program, point: Mapping[str, object]) -> Point:
    """Every parameter's value: the point's where given, the default elsewhere.

    Raises:
        PointError: the point names a parameter the space does not have.
    """
    names = {p.name for p in program.parameters}
    unknown = sorted(set(point) - names)
    if unknown:
        raise PointError(f"unknown parameter(s): {', '.join(unknown)}")
    full: Point = {}
    for param in program.parameters:
        value = point.get(param.name, default(param.domain))
        if type(value).__module__ == "numpy":  # numpy scalars, e.g. from Ax or pandas
            value = value.item()  # type: ignore[attr-defined]
        if isinstance(value, float) and value.is_integer() and isinstance(
            param.domain, ir.IntDomain
        ):
            value = int(value)
        full[param.name] = value  # type: ignore[assignment]
    return full


def is_active(param: ir.Parameter, point: Mapping[str, ir.Scalar]) -> bool:
    """True when every condition of the parameter holds at the (completed) point."""
    for cond in param.when:
        value = point[cond.param]
        if cond.op == ">=":
            if not (isinstance(value, (int, float)) and value >= cond.value):  # type: ignore[operator]
                return False
        elif not _same(value, cond.value):
            return False
    return True


def active(program: ir.Program, point: Mapping[str, object]) -> Point:
    """The active parameters of a point, with their values (defaults filled in)."""
    full = complete(program, point)
    return {p.name: full[p.name] for p in program.parameters if is_active(p, full)}


@dataclass
class PointEvaluator:
    """Shape inference at one point: single values, the chosen structure.

    Values are computed exactly (`arith.exact`): a division by zero or a value out
    of range raises `arith.Fault`, which validation reports as the point's problem.
    """

    program: ir.Program
    point: Point

    def value(self, expr: ir.Expr, channels: Interval, shape: Shape | None = None) -> ArgValue:
        if isinstance(expr, ir.Const):  # literals are within range
            value = expr.value
        elif isinstance(expr, ir.ParamRef):
            value = arith.checked(self.point[expr.name])
        else:
            value = _exact(expr, self.program, self.point, channels.lo, shape)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return Interval.of(value)
        return frozenset({value})

    def counts(self, node: ir.Repeat) -> range:
        value = self.value(node.count, Interval.of(1))
        if not isinstance(value, Interval) or value.lo < 0 or not float(value.lo).is_integer():
            raise arith.Fault(f"the count of repeat '{node.name}' is not a whole number")
        return range(int(value.lo), int(value.lo) + 1)

    def alternatives(self, node: ir.Choose) -> Iterable[str]:
        return [str(self.point[node.param])]

    def presence(self, node: ir.Optional) -> Iterable[bool]:
        return [bool(self.point[node.param])]


@dataclass(frozen=True)
class Validation:
    """Whether a point builds; if not, why, and which parameters are involved."""

    ok: bool
    reason: str = ""
    parameters: tuple[str, ...] = ()
    output: Shape | None = None
    shapes: tuple[tuple[ir.Layer, Shape, Shape], ...] = field(default=(), repr=False)

    def __bool__(self) -> bool:
        return self.ok


def _invalid(reason: str, parameters: Iterable[str] = ()) -> Validation:
    return Validation(False, reason, tuple(dict.fromkeys(parameters)))


def validate(program: ir.Program, point: Mapping[str, object]) -> Validation:
    """Check, without building anything, that a point of the space can be built.

    Checks that names are known, that every active value lies in its domain,
    that constraints hold, and that every layer gets an input it accepts with
    kernels that fit and channel arithmetic that works, ending in `classes`
    features. Never raises for a bad point: the answer says what is wrong.
    """
    try:
        full = complete(program, point)
    except PointError as error:
        return _invalid(str(error))
    for param in program.parameters:
        value = full[param.name]
        if is_active(param, full) and not contains(param.domain, value):
            return _invalid(f"{param.name} = {value!r} is outside its domain", [param.name])
    constraint = failing_constraint(program, full)
    if constraint is not None:
        names = [*ir.references(constraint.left), *ir.references(constraint.right)]
        live = active(program, full)
        shown = ", ".join(f"{n} = {full[n]}" if n in live else f"{n} inactive, counted as 0"
                          for n in dict.fromkeys(names))
        return _invalid(f"constraint at line {constraint.span.line} fails ({shown})", names)
    evaluator = PointEvaluator(program, full)
    try:
        shape = input_shape(program, evaluator)
        if shape is None:
            return _invalid("the input shape is unknown: give it when compiling")
        if outside_limits(shape):
            return _invalid(f"the input shape {shape} is out of range: every dimension must be "
                            f"at least 1 and at most 2**53")
        inference = Inference(evaluator)
        out = inference.run(program.network, shape)
    except arith.Fault as fault:  # a repeat count read from an inactive parameter, say
        return _invalid(fault.message)
    if inference.issues:
        issue = inference.issues[0]
        names = _blame(program, issue, inference.shapes)
        return _invalid(f"{issue.where}: {issue.message}", names)
    assert out is not None
    if out.kind != "vector" or (
        program.classes is not None and int(out.dims[0].lo) != program.classes
    ):
        wanted = "classes" if program.loss == "cross_entropy" else "outputs"
        return _invalid(f"the network ends in {out}, not a vector of {program.classes} {wanted}")
    return Validation(True, output=out, shapes=tuple(inference.shapes))


def _blame(program: ir.Program, issue: ShapeIssue,
           shapes: list[tuple[ir.Layer, Shape, Shape]]) -> list[str]:
    """Readable parameters behind a failing layer argument, or behind a residual whose
    shortcut cannot join its body: the shortcut's, and the layers' of the body built
    last, at this point."""
    for layer in ir.layers(program.network):
        if layer.name == issue.where:
            args = [expr for name, expr in layer.args if issue.arg is None or name == issue.arg]
            return [n for expr in args for n in ir.references(expr)]
    if not shapes:
        return []
    last = shapes[-1][0]
    residuals = (n for n in ir.nodes(program.network) if isinstance(n, ir.Residual))
    for node in residuals:
        body = list(ir.layers(node.body))
        if node.span == issue.span and any(layer is last for layer in body):
            built = [layer for layer, _, _ in shapes if any(layer is b for b in body)]
            return [*ir.references(node.shortcut),
                    *(n for layer in built for _, expr in layer.args for n in ir.references(expr))]
    return []


def failing_constraint(
    program: ir.Program, point: Mapping[str, ir.Scalar]
) -> ir.Constraint | None:
    """The first constraint that fails at a completed point, if any.

    Every constraint applies at every point: an inactive parameter counts as 0
    (`constraint_values`), so `block[1].filters + block[2].filters <= 20` limits
    `block[1].filters` to 20 where there is one block. One that cannot be evaluated
    (a division by zero) fails.
    """
    values = constraint_values(program, point)
    for constraint in program.constraints:
        try:
            if not holds(constraint, program, values):
                return constraint
        except PointError:
            return constraint
    return None


def constraint_values(program: ir.Program, point: Mapping[str, ir.Scalar]
                      ) -> dict[str, ir.Scalar]:
    """The values constraints read at a completed point: inactive numbers count as 0.

    The language's rule (docs/language.md, "Constraints"): a parameter that does not
    exist at a point adds nothing to a sum, rather than hiding the whole constraint.
    """
    values = dict(point)
    for param in program.parameters:
        if param.domain.type in ("int", "float") and not is_active(param, point):
            values[param.name] = 0
    return values


def value_of(expr: ir.Expr, program: ir.Program, point: Mapping[str, ir.Scalar],
             channels: int = 0) -> ir.Scalar:
    """The exact value of an expression at a completed point.

    Raises:
        PointError: a division by zero, a value out of range (`arith`), or an
            unknown number of classes.
    """
    try:
        return _exact(expr, program, point, channels)
    except arith.Fault as fault:
        raise PointError(fault.message) from None


def _exact(expr: ir.Expr, program: ir.Program, point: Mapping[str, ir.Scalar],
           channels: float, shape: Shape | None = None) -> ir.Scalar:
    def leaf(node: ir.ParamRef | ir.Builtin) -> ir.Scalar:
        if isinstance(node, ir.ParamRef):
            return point[node.name]
        if node.name == "in_channels":
            return channels
        if node.name in ir.SPATIAL:
            if shape is None:
                raise arith.Fault(f"'{node.name}' has a value only in a layer's arguments")
            return spatial(node.name, shape).lo  # type: ignore[return-value]
        if program.classes is None:
            raise arith.Fault("the number of classes is unknown: give it when compiling")
        return program.classes

    return arith.exact(expr, leaf)


def holds(constraint: ir.Constraint, program: ir.Program, point: Mapping[str, ir.Scalar]) -> bool:
    """True when a constraint is satisfied at a completed point."""
    left = value_of(constraint.left, program, point)
    right = value_of(constraint.right, program, point)
    return compare(left, constraint.op, right)


def compare(left: ir.Scalar, op: str, right: ir.Scalar) -> bool:
    """`left op right` for two numbers, equality within `EPSILON`."""
    a, b = float(left), float(right)  # type: ignore[arg-type]
    return {
        "<=": a <= b + EPSILON,
        ">=": a >= b - EPSILON,
        "<": a < b,
        ">": a > b,
        "==": abs(a - b) <= EPSILON,
        "!=": abs(a - b) > EPSILON,
    }[op]


def draw(domain: ir.Domain, rng: random.Random) -> ir.Scalar:
    """A uniformly random value of a domain (log-uniform for log scales)."""
    if isinstance(domain, ir.FixedDomain):
        return domain.value
    if isinstance(domain, ir.ChoiceDomain):
        return domain.values[rng.randrange(len(domain.values))]
    if isinstance(domain, ir.FloatDomain):
        if domain.log:
            return math.exp(rng.uniform(math.log(domain.low), math.log(domain.high)))
        return rng.uniform(domain.low, domain.high)
    if domain.log:
        value = round(math.exp(rng.uniform(math.log(domain.low - 0.5 + 1e-9),
                                           math.log(domain.high + 0.5))))
        return min(max(value, domain.low), domain.high)
    return domain.low + domain.step * rng.randrange((domain.high - domain.low) // domain.step + 1)


def sample(program: ir.Program, n: int, seed: int = 0, tries: int = 100) -> list[Point]:
    """`n` random points (active parameters only) satisfying the constraints
    (inactive parameters count as 0: see `failing_constraint`).

    Reproducible for a given seed. Points may still fail `validate` for shape
    reasons: that is the validator's job to say, not the sampler's.

    Raises:
        PointError: no point satisfying the constraints was found in `tries`
            attempts for one sample.
    """
    rng = random.Random(seed)
    points: list[Point] = []
    for _ in range(n):
        for _ in range(tries):
            full = {p.name: draw(p.domain, rng) for p in program.parameters}
            if failing_constraint(program, full) is None:
                points.append(
                    {p.name: full[p.name] for p in program.parameters if is_active(p, full)}
                )
                break
        else:
            raise PointError(
                f"no point satisfying the constraints was found in {tries} random draws"
            )
    return points
