"""Runtime builder: (program, point) -> a PyTorch module ready for int8 quantisation.

Walks the IR at one point (only active layers, in execution order) and drives a
`netlib.NetBuilder`, the same one generated builders embed. Each layer's
module key comes from its readable IR name (`block[1].layer[2].conv2d` ->
`block__1__layer__2__conv2d`), so state-dict keys follow IR positions.

The result is ready for eager-mode quantisation: a `QuantStub` at the input and
a `DeQuantStub` at the output, `FloatFunctional` residual adds, LSTM/GRU and
unfusable batch norms inside a `FloatIsland` that dequantises around them, and
`fuse_model()` for Conv-BN-ReLU, Conv-ReLU, BN-ReLU, Linear-BN and Linear-ReLU
(see `quantize`).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from . import infer, ir
from .errors import SparsemodError
from .netlib import NetBuilder, SparsemodNet
from .point import PointEvaluator, complete, validate
from .shapes import Interval


class BuildError(SparsemodError):
    """The point cannot be built; the message says why (from `validate`)."""


class _Walker:
    """Drives a `NetBuilder` through the IR at one point."""

    def __init__(self, evaluator: PointEvaluator, net: NetBuilder):
        self.evaluator = evaluator
        self.net = net

    def nodes(self, nodes: tuple[ir.Node, ...]) -> None:
        for node in nodes:
            self.node(node)

    def node(self, node: ir.Node) -> None:
        ev = self.evaluator
        if isinstance(node, ir.Layer):
            self.layer(node)
        elif isinstance(node, ir.Repeat):
            (count,) = ev.counts(node)
            for body in node.instances[:count]:
                self.nodes(body)
        elif isinstance(node, ir.Choose):
            (chosen,) = ev.alternatives(node)
            self.nodes(dict(node.alternatives)[chosen])
        elif isinstance(node, ir.Optional):
            (present,) = ev.presence(node)
            if present:
                self.nodes(node.body)
        elif isinstance(node, ir.Residual):
            self.net.residual_begin()
            self.nodes(node.body)
            self.net.residual_end()
        else:
            self.net.time_distributed_begin()
            self.nodes(node.body)
            self.net.time_distributed_end()

    def layer(self, node: ir.Layer) -> None:
        channels = Interval.of(self.net.channels)
        kwargs = {name: _scalar(self.evaluator.value(expr, channels)) for name, expr in node.args}
        getattr(self.net, node.op)(node.name, **kwargs)


def _scalar(value: object) -> object:
    """A single value from an exact interval or a one-element set."""
    if isinstance(value, Interval):
        return int(value.lo) if float(value.lo).is_integer() else value.lo
    (only,) = value  # type: ignore[misc]
    return only


def bind(program: ir.Program, input_shape: Sequence[int] | None = None,
         classes: int | None = None) -> ir.Program:
    """The program with its input shape and number of classes overridden."""
    changes: dict[str, object] = {}
    if input_shape is not None:
        changes["input"] = ir.InputSpec(program.input.kind, tuple(input_shape))
    if classes is not None:
        changes["classes"] = classes
    return dataclasses.replace(program, **changes) if changes else program  # type: ignore[arg-type]


def build(
    program: ir.Program,
    point: Mapping[str, object],
    input_shape: Sequence[int] | None = None,
    classes: int | None = None,
) -> SparsemodNet:
    """Build the network of `program` at `point` (missing or inactive values ignored).

    Args:
        program: the compiled space.
        point: readable parameter names -> values; missing ones take defaults.
        input_shape: (C, H, W) or (T, F), overriding the program's.
        classes: number of classes, overriding the program's.

    Raises:
        BuildError: the point cannot be built; the message says why.
    """
    program = bind(program, input_shape, classes)
    check = validate(program, point)
    if not check.ok:
        raise BuildError(check.reason)
    full = complete(program, point)
    evaluator = PointEvaluator(program, full)
    shape = infer.input_shape(program, evaluator)
    assert shape is not None
    walker = _Walker(evaluator, NetBuilder(shape.kind, shape.sizes(), full))
    walker.nodes(program.network)
    return walker.net.finish()
