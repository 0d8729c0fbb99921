"""Semantic checks on the program IR that hold for every point of the space.

Run after `lower` (which reports naming and typing errors). Reports, all at once:
- layer arguments whose every possible value is illegal, or whose declared
  range reaches illegal values (`filters = int[0..8]`, `dropout(p = 1.5)`);
- unknown padding modes;
- with a known input shape: layers that can never be built (wrong kind of
  input, a feature map smaller than the smallest kernel at every point),
  choices whose alternatives give different kinds, and a network that does not
  end in a vector of `classes` features. A part of the network built only in
  some of the space (a repeat instance, an alternative) that can never be built
  is reported with the condition under which it exists (`where r >= 4`);
- for sequences cut into `max_len` steps, or images of a searched size: a network
  that no point of the space can build for the smallest `max_len` or size.
"""

from __future__ import annotations

from ..errors import Diagnostics, Span
from . import ir
from .infer import MAX_LEN, Inference, ShapeIssue, SpaceEvaluator, input_shape
from .layers import LAYERS, PADDING_MODES, ArgSpec
from .shapes import Interval, Shape


def check(program: ir.Program) -> None:
    """Raise `ArchError` with every problem that holds at every point of the space."""
    diags = Diagnostics()
    evaluator = SpaceEvaluator(program)
    for layer in ir.layers(program.network):
        _check_args(layer, evaluator, diags)
    _check_unused(program, diags)
    diags.raise_if_any()
    shape = input_shape(program, evaluator)
    if shape is not None:
        _check_shapes(program, evaluator, shape, diags)
    diags.raise_if_any()


def used_parameters(program: ir.Program) -> set[str]:
    """Parameters the network, its structure or its constraints read."""
    used: set[str] = set()
    for node in ir.nodes(program.network):
        if isinstance(node, ir.Layer):
            for _, expr in node.args:
                used.update(ir.references(expr))
        elif isinstance(node, ir.Repeat):
            used.update(ir.references(node.count))
        elif isinstance(node, ir.Residual):
            used.update(ir.references(node.shortcut))
        elif isinstance(node, (ir.Choose, ir.Optional)):
            used.add(node.param)
    used.update(name for name in program.input.searched if name is not None)
    for constraint in (*program.constraints, *program.cost_constraints):
        used.update(ir.references(constraint.left))
        used.update(ir.references(constraint.right))
    return used


def _check_unused(program: ir.Program, diags: Diagnostics) -> None:
    used = used_parameters(program)
    reported: set[object] = set()
    for param in program.searchable:
        if param.name in used or param.name.startswith("train.") or param.span in reported:
            continue
        reported.add(param.span)
        diags.error(
            param.span,
            f"parameter '{param.name}' is never used: the search would tune it for nothing",
        )


def _check_args(layer: ir.Layer, evaluator: SpaceEvaluator, diags: Diagnostics) -> None:
    spec = LAYERS[layer.op]
    for name, bound in layer.args:
        arg = spec.arg(name)
        assert arg is not None
        for expr in (bound.height, bound.width) if isinstance(bound, ir.Pair) else (bound,):
            value = evaluator.value(expr, Interval(1, float("inf")))
            if arg.type == "padding":
                _check_padding(layer, expr, value, evaluator, diags)
            elif isinstance(value, Interval):
                _check_range(layer, arg, expr, value, diags)


def _check_padding(
    layer: ir.Layer, expr: ir.Expr, value: object, evaluator: SpaceEvaluator, diags: Diagnostics
) -> None:
    options = value if isinstance(value, frozenset) else frozenset()
    bad = sorted(str(o) for o in options if isinstance(o, str) and o not in PADDING_MODES)
    if bad:
        diags.error(
            layer.span,
            f"'{layer.op}' padding '{bad[0]}' is not a mode: use \"same\", \"valid\""
            + (", \"causal\"" if layer.op == "conv1d" else "") + " or a number",
        )
    if isinstance(value, Interval) and value.lo < 0:
        diags.error(layer.span, f"'{layer.op}' padding cannot be negative")


def _check_range(
    layer: ir.Layer, arg: ArgSpec, expr: ir.Expr, value: Interval, diags: Diagnostics
) -> None:
    lo = arg.lo if arg.lo is not None else -float("inf")
    hi = arg.hi if arg.hi is not None else float("inf")

    def legal(x: float) -> bool:
        return lo <= x and (x < hi if arg.hi_open else x <= hi)

    everywhere_bad = not any(legal(x) for x in (value.lo, value.hi)) and (
        value.hi < lo or value.lo > hi or (arg.hi_open and value.lo >= hi)
    )
    declared = isinstance(expr, (ir.ParamRef, ir.Const))
    if everywhere_bad or (declared and not (legal(value.lo) and legal(value.hi))):
        source = f" ({expr.name} is {value})" if isinstance(expr, ir.ParamRef) else ""
        diags.error(
            layer.span,
            f"'{layer.op}' argument '{arg.name}' must be {arg.legal()}, "
            f"but it can be {value}{source}",
        )


def _report(issues: list[ShapeIssue], diags: Diagnostics, region: tuple[str, ...] = ()) -> None:
    for issue in issues:
        where = f" (at {issue.where})" if issue.where and "." in issue.where else ""
        conditions = (*region, *issue.conditions)
        scope = f"where {' and '.join(conditions)}" if conditions else "of the space"
        diags.error(issue.span, f"{issue.message}{where}; this holds at every point {scope}")


def _check_shapes(
    program: ir.Program, evaluator: SpaceEvaluator, shape: Shape, diags: Diagnostics
) -> None:
    inference = Inference(evaluator)
    out = inference.run(program.network, shape)
    _report(inference.issues, diags)
    if not inference.issues and not all(d.exact for d in shape.dims):
        # The network must take the smallest input: the shortest chunks the sequence
        # splitter makes, an image at its smallest searched size.
        smallest = Shape(shape.kind, tuple(Interval.of(d.lo) for d in shape.dims))
        shortest = Inference(evaluator)
        shortest.run(program.network, smallest)
        everywhere = [i for i in shortest.issues if not i.conditions]
        where = (f"{MAX_LEN} is {shape.dims[0].lo:g}, its smallest value"
                 if shape.kind == "sequence" else f"the input is {smallest}, its smallest size")
        _report(everywhere, diags, (where,))
    if out is None or inference.issues or not program.network:
        return
    last = _last_span(program)
    name = "classes" if program.loss == "cross_entropy" else "outputs"
    if out.kind != "vector":
        diags.error(
            last,
            f"the network must end in a vector of `{name}` features, but it ends in {out} "
            f"(end with e.g. `global_avg_pool linear({name})`)",
        )
        return
    features = out.dims[0]
    classes = program.classes
    if classes is not None and features.exact and features.lo != classes:
        wanted = f"{classes} classes" if name == "classes" else f"{classes} outputs"
        diags.error(
            last,
            f"the network ends with {features} features, not the {wanted} "
            f"(end with `linear({name})`)",
        )


def _last_span(program: ir.Program) -> Span:
    layers = list(ir.layers(program.network))
    return layers[-1].span if layers else program.network[-1].span
