"""The execution of a network at one point: its active layers in order, with shapes.

`trace` walks the IR at a (valid) point and lists what runs: each active layer
with its argument values and exact input and output shapes, and the structure
steps around residual and time-distributed bodies. The builder turns a trace
into torch modules; the cost models turn it into bytes, MACs and milliseconds,
without building anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

from ..lang import arith, infer, ir
from ..lang.layers import LayerError
from ..lang.shapes import Interval, Shape
from .point import PointError, PointEvaluator, complete

StepKind = Literal[
    "layer", "residual_begin", "residual_end", "time_distributed_begin", "time_distributed_end"
]


@dataclass(frozen=True)
class Step:
    """One step of a forward pass.

    For a layer: the IR layer, its argument values and its input and output
    shapes (batch excluded). Structure steps carry the shape at that point.
    """

    kind: StepKind
    input: Shape
    output: Shape
    layer: ir.Layer | None = None
    args: Mapping[str, ir.Scalar] = field(default_factory=dict)


def scalar(value: object) -> ir.Scalar:
    """The single value of an exact interval or a one-element set; of each side of a pair
    (a tuple (height, width))."""
    if isinstance(value, tuple):
        return tuple(scalar(side) for side in value)  # type: ignore[return-value]
    if isinstance(value, Interval):
        return int(value.lo) if float(value.lo).is_integer() else value.lo
    (only,) = value  # type: ignore[misc]
    return only  # type: ignore[no-any-return]


class _Tracer:
    def __init__(self, evaluator: PointEvaluator) -> None:
        self.evaluator = evaluator
        self.steps: list[Step] = []

    def nodes(self, nodes: tuple[ir.Node, ...], shape: Shape) -> Shape:
        for node in nodes:
            shape = self.node(node, shape)
        return shape

    def node(self, node: ir.Node, shape: Shape) -> Shape:
        ev = self.evaluator
        if isinstance(node, ir.Layer):
            return self.layer(node, shape)
        if isinstance(node, ir.Repeat):
            (count,) = ev.counts(node)
            for body in node.instances[:count]:
                shape = self.nodes(body, shape)
            return shape
        if isinstance(node, ir.Choose):
            (chosen,) = ev.alternatives(node)
            picked = dict(node.alternatives).get(chosen)
            if picked is None:
                raise PointError(f"{node.param} = {chosen!r} is not an alternative")
            return self.nodes(picked, shape)
        if isinstance(node, ir.Optional):
            (present,) = ev.presence(node)
            return self.nodes(node.body, shape) if present else shape
        if isinstance(node, ir.Residual):
            self.steps.append(Step("residual_begin", shape, shape))
            out = self.nodes(node.body, shape)
            written = scalar(ev.value(node.shortcut, shape.channels))
            args = {"name": node.name, "shortcut": written}
            self.steps.append(Step("residual_end", out, out, args=args))
            return out
        steps, features = shape.dims
        inner = Shape("vector", (features,))
        self.steps.append(Step("time_distributed_begin", shape, inner))
        out = self.nodes(node.body, inner)
        result = Shape("sequence", (steps, out.dims[0]))
        self.steps.append(Step("time_distributed_end", out, result))
        return result

    def layer(self, node: ir.Layer, shape: Shape) -> Shape:
        try:
            out, values = infer.apply_layer(node, shape, self.evaluator)
        except LayerError as error:
            raise PointError(f"{node.name}: {error.message}") from None
        args = {name: scalar(value) for name, value in values.items()}
        self.steps.append(Step("layer", shape, out, node, args))
        return out


def trace(program: ir.Program, point: Mapping[str, object]) -> tuple[Shape, list[Step]]:
    """The input shape and the steps of a forward pass at `point`.

    The point should pass `point.validate`, which says why a point fails (this only
    stops at the first layer that cannot be built); missing values take their defaults.

    Raises:
        PointError: the point cannot be built (unknown names, a value that cannot be
            computed, a layer that fails).
    """
    evaluator = PointEvaluator(program, complete(program, point))
    try:
        shape = infer.input_shape(program, evaluator)
        if shape is None:
            raise PointError("the input shape is unknown: give it when compiling")
        if infer.outside_limits(shape):
            raise PointError(f"the input shape {shape} is out of range")
        tracer = _Tracer(evaluator)
        tracer.nodes(program.network, shape)
    except arith.Fault as fault:
        raise PointError(fault.message) from None
    return shape, tracer.steps
