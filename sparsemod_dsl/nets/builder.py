"""Runtime builder: (program, point) -> a PyTorch module ready for int8 quantisation.

Turns the trace of a point (its active layers in execution order, `trace`)
into calls of a `netlib.NetBuilder`, the same one generated builders embed. Each layer's
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

from ..errors import SparsemodError
from ..lang import ir
from .netlib import NetBuilder
from .network import SparsemodNet
from .point import complete, validate
from .trace import trace


class BuildError(SparsemodError):
    """The point cannot be built; the message says why (from `validate`)."""


def bind(program: ir.Program, input_shape: Sequence[int] | None = None,
         classes: int | None = None) -> ir.Program:
    """The program with its input shape and number of classes overridden."""
    changes: dict[str, object] = {}
    if input_shape is not None:
        # searched sizes stay searched: the given shape is the stored data's
        changes["input"] = dataclasses.replace(program.input, shape=tuple(input_shape))
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
    shape, steps = trace(program, full)
    net = NetBuilder(shape.kind, shape.sizes(), full)
    for step in steps:
        if step.layer is not None:
            getattr(net, step.layer.op)(step.layer.name, **step.args)
        else:
            getattr(net, step.kind)(**step.args)
    return net.finish()
