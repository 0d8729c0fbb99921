"""The deployed graph's data: activation tensors, TFLite operators and the graph of a point.

`graph.deployed_graph` builds it from a trace; the TFLite backend writes it, the cost
models (`flash`, `planner`, `arena`, `cost`) price it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..lang.shapes import Shape


@dataclass(frozen=True, slots=True)
class Tensor:
    """An activation tensor: its TFLite shape and the name written into the model."""

    index: int
    shape: tuple[int, ...]
    name: str

    @property
    def elements(self) -> int:
        """Number of values (bytes at int8)."""
        return math.prod(self.shape)


@dataclass(frozen=True, slots=True)
class Op:
    """One TFLite operator of the deployed graph.

    `layer` is the position, among the trace's layers, of the IR layer whose torch module
    holds this operator's weights, and `part` the sub-module within it (`conv`,
    `depthwise`, `pointwise`, `reduce`, `bn`; "" for the layer itself); -1 for operators
    without weights. `weights` is the TFLite weight shape, `bias` its length (0: none),
    `folded` the IR layers this operator absorbed (batch norm, ReLU). `permute_from`
    (H, W, C) marks a FULLY_CONNECTED after a flatten of an NHWC image: its weight
    columns are reordered from torch's C, H, W order. `emulates` is "batchnorm" for the
    1x1 depthwise convolution that stands for a batch norm torch kept apart. `state` is
    the recurrent state a recurrent operator keeps (elements).
    """

    code: str
    name: str
    inputs: tuple[int, ...]
    output: int
    layer: int = -1
    part: str = ""
    weights: tuple[int, ...] = ()
    bias: int = 0
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: str = "VALID"
    activation: str = "NONE"
    multiplier: int = 1
    window: tuple[int, int] = (1, 1)
    macs: int = 0
    mac_class: str = ""
    folded: tuple[str, ...] = ()
    pads: tuple[tuple[int, int], ...] = ()
    new_shape: tuple[int, ...] = ()
    perm: tuple[int, ...] = ()
    axes: tuple[int, ...] = ()
    permute_from: tuple[int, int, int] | None = None
    emulates: str = ""
    state: int = 0


@dataclass(frozen=True)
class Graph:
    """The deployed graph of one point: tensors, operators in execution order, I/O."""

    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    input: int
    output: int

    @property
    def params(self) -> int:
        """Weights and biases as the deployed model stores them (batch norm folded)."""
        return sum(math.prod(op.weights) + op.bias for op in self.ops if op.weights)


def tflite_shape(shape: Shape, steps: int = 0) -> tuple[int, ...]:
    """The TFLite shape of a shape (batch excluded); `steps` > 0 inside a
    time-distributed body over that many steps."""
    sizes = shape.sizes()
    if shape.kind == "image":
        channels, height, width = sizes
        return (1, height, width, channels)
    if shape.kind == "sequence":
        return (1, 1, *sizes)
    return (1, 1, steps, sizes[0]) if steps else (1, sizes[0])
