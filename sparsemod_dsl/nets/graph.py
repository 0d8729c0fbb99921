"""The deployed graph: the operators TensorFlow Lite Micro runs for a network at a point.

`deployed_graph(program, point)` derives, once, from the trace of a point, what a
runtime executes: batch norm folded into the convolution or linear layer before it,
ReLU/ReLU6 fused into the operator they follow, a separable convolution as a depthwise
and a pointwise operator, flatten as a reshape, residuals as ADD (after a 1x1 CONV_2D
or an AVERAGE_POOL_2D on the skip path for a projection or pooling shortcut), dropout
gone. The TFLite backend (`tflite`) writes exactly this graph and the cost models
(`cost`) price exactly it, so what the search optimises is what the device runs.

Layouts are TFLite's, batch of one first: an image C x H x W is (1, H, W, C), a
sequence T x F is (1, 1, T, F) (a one-row image, so that conv1d and pooling are 2-D
operators), a vector F is (1, F), and inside a time-distributed body (1, 1, T, F)
(FULLY_CONNECTED keeps the leading dimensions).

Which layers fold follows `fusion.fusion_groups`, the rule torch's int8 model is fused
by; ReLUs that torch keeps apart fuse too (a quantised ReLU keeps its input's scale, so
the result is the same). A batch norm that torch keeps apart (after a pooling layer,
say) becomes a 1x1 DEPTHWISE_CONV_2D: the exported model quantises exactly the tensors
that torch's int8 model quantises.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Mapping, NamedTuple

from ..lang import ir, shortcuts
from ..lang.shapes import Shape
from .fusion import fusion_groups
from .operators import Graph, Op, Tensor, tflite_shape
from .trace import Step, trace

#: Operators whose TFLite options hold a fused activation.
_TAKES_ACTIVATION = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD",
                               "MAX_POOL_2D", "AVERAGE_POOL_2D"})
#: The fusion kind of each layer (see `fusion`); layers not listed break a run.
_KINDS = {"conv2d": "conv", "conv1d": "conv", "sepconv2d": "conv", "dwconv2d": "conv",
          "downconv2d": "conv", "linear": "linear", "relu": "relu"}
#: Layers that leave the order of a flattened vector's features alone.
_ORDER_KEEPING = frozenset({"relu", "relu6", "dropout"})

Args = Mapping[str, ir.Scalar]


class _Window(NamedTuple):
    """The sliding window of a convolution: kernel size, stride, dilation (height, width),
    padding."""

    window: tuple[int, int]
    stride: tuple[int, int]
    padding: str
    dilation: tuple[int, int] = (1, 1)


def _sides(value: object) -> tuple[int, int]:
    """(height, width) of a 2-D argument: one number for both, or a pair."""
    if isinstance(value, tuple):
        return _integer(value[0]), _integer(value[1])
    return _integer(value), _integer(value)  # type: ignore[arg-type]


def _integer(value: ir.Scalar) -> int:
    """A layer argument that shape checking made an integer."""
    assert isinstance(value, int) and not isinstance(value, bool), value
    return value


def _fusions(steps: list[Step]) -> dict[int, int]:
    """Layer position -> position of the layer it fuses into, as torch fuses them."""
    leader: dict[int, int] = {}
    run: list[tuple[int, str]] = []

    def flush() -> None:
        for start, size in fusion_groups([kind for _, kind in run]):
            for position, _ in run[start + 1:start + size]:
                leader[position] = run[start][0]
        run.clear()

    position = 0
    for step in steps:
        if step.kind != "layer":
            flush()
            continue
        assert step.layer is not None
        kind = _KINDS.get(step.layer.op, "")
        if step.layer.op == "batchnorm":
            kind = "bn2d" if step.input.kind == "image" else "bn1d"
        if kind:
            run.append((position, kind))
        else:
            flush()
        position += 1
    flush()
    return leader


class _Builder:
    """Turns the steps of a trace into tensors and operators, one step at a time."""

    def __init__(self, shape: Shape, steps: list[Step]) -> None:
        self.steps = steps
        self.leader = _fusions(steps)
        self.with_bn = {self.leader[p] for p, step in enumerate(_layers(steps))
                        if p in self.leader and step.layer is not None
                        and step.layer.op == "batchnorm"}
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.current = self.tensor(tflite_shape(shape), "input")
        self.saved: list[int] = []
        self.saved_shapes: list[Shape] = []
        self.repeat: list[int] = []
        self.fresh = False  # the last operator's output is the current tensor, unsaved
        self.order: tuple[int, int, int] | None = None  # a flatten's NHWC order, pending

    def tensor(self, shape: tuple[int, ...], name: str) -> int:
        self.tensors.append(Tensor(len(self.tensors), shape, name))
        return len(self.tensors) - 1

    @property
    def shape(self) -> tuple[int, ...]:
        return self.tensors[self.current].shape

    def emit(self, code: str, name: str, out: tuple[int, ...], **fields: object) -> None:
        inputs = fields.pop("inputs", (self.current,))
        output = self.tensor(out, name)
        self.ops.append(Op(code, name, inputs, output, **fields))  # type: ignore[arg-type]
        self.current = output
        self.fresh = True

    def fold(self, name: str, activation: str = "") -> None:
        """Fold a layer (batch norm, activation) into the last operator."""
        last = self.ops[-1]
        self.ops[-1] = replace(last, folded=(*last.folded, name),
                               activation=activation or last.activation)

    def run(self) -> Graph:
        position = 0
        for index, step in enumerate(self.steps):
            if step.kind == "layer":
                self.layer(position, index, step)
                position += 1
            else:
                self.structure(step)
        return Graph(tuple(self.tensors), tuple(self.ops), 0, self.current)

    def structure(self, step: Step) -> None:
        self.fresh = False
        if step.kind == "residual_begin":
            self.saved.append(self.current)
            self.saved_shapes.append(step.input)
        elif step.kind == "residual_end":
            saved = self.shortcut(step, self.saved.pop(), self.saved_shapes.pop())
            self.emit("ADD", str(step.args["name"]), self.shape, inputs=(self.current, saved))
            self.fresh = False  # an activation after the add follows a structure step
        elif step.kind == "time_distributed_begin":
            self.repeat.append(step.input.sizes()[0])
        else:
            self.repeat.pop()

    def shortcut(self, step: Step, saved: int, shape: Shape) -> int:
        """The skip path of a residual (lang/shortcuts.py): the tensor the ADD reads.

        A projection is a 1x1 CONV_2D with its batch norm folded (`layer` -1, `part` its
        convolution within the shortcut module); pooling an AVERAGE_POOL_2D."""
        plan = shortcuts.plan(str(step.args["shortcut"]), shape, step.input)
        if plan.kind == "identity":
            return saved
        body, name, seq = self.current, f"{step.args['name']}.shortcut", shape.kind == "sequence"
        stride = (1, plan.stride) if seq else (plan.stride, plan.stride)
        out = tflite_shape(step.input)
        if plan.kind == "avgpool":
            self.emit("AVERAGE_POOL_2D", name, out, inputs=(saved,), window=stride, stride=stride)
        else:
            inputs = self.tensors[saved].shape[-1]
            self.emit("CONV_2D", name, out, inputs=(saved,), part="conv.conv" if seq else "conv",
                      weights=(out[-1], 1, 1, inputs), bias=out[-1], stride=stride,
                      macs=math.prod(out[1:]) * inputs, mac_class="pointwise")
        projected, self.current = self.current, body
        return projected

    def layer(self, position: int, index: int, step: Step) -> None:
        layer = step.layer
        assert layer is not None
        op, args, name = layer.op, step.args, layer.name
        out = tflite_shape(step.output, self.repeat[-1] if self.repeat else 0)
        seq = step.input.kind == "sequence" or (step.input.kind == "vector" and bool(self.repeat))
        if position in self.leader:
            self.fold(name, "RELU" if op == "relu" else "")
        elif op == "dropout":
            pass
        elif op in ("relu", "relu6"):
            self.activation(name, op.upper())
        elif op == "softmax":
            self.emit("SOFTMAX", name, out)
        elif op in ("conv2d", "conv1d"):
            self.pad(name, args, seq)
            channels, groups, filters = self.shape[-1], int(args["groups"]), int(args["filters"])
            bias = bool(args["bias"]) or position in self.with_bn
            if groups > 1 and groups == channels:
                self.depthwise(position, "conv", name, out, args, seq, filters // groups, bias)
            else:
                self.conv(position, "conv", name, out, args, seq, bias, groups)
        elif op == "dwconv2d":
            self.pad(name, args, seq)
            self.depthwise(position, "depthwise", name, out, args, seq, int(args["multiplier"]))
        elif op == "sepconv2d":
            self.pad(name, args, seq)
            middle = (*out[:-1], self.shape[-1] * int(args["multiplier"]))
            self.depthwise(position, "depthwise", f"{name}.depthwise", middle, args, seq,
                           int(args["multiplier"]))
            self.pointwise(position, "pointwise", name, out)
        elif op == "downconv2d":
            bottleneck = max(1, round(float(args["ratio"]) * self.shape[-1]))
            self.pointwise(position, "reduce", f"{name}.reduce", (*self.shape[:-1], bottleneck))
            self.pad(name, args, seq)
            self.conv(position, "conv", name, out, args, seq, True, 1)
        elif op == "linear":
            self.linear(position, name, out, args, position in self.with_bn)
        elif op in ("maxpool", "avgpool"):
            size = _sides(args["size"])
            stride = size if args.get("stride") is None else _sides(args["stride"])
            self.emit("MAX_POOL_2D" if op == "maxpool" else "AVERAGE_POOL_2D", name, out,
                      window=(1, size[1]) if seq else size,
                      stride=(1, stride[1]) if seq else stride)
        elif op == "global_avg_pool":  # AVERAGE_POOL_2D rounds as torch's int8 model does
            _, height, width, channels = self.shape
            self.emit("AVERAGE_POOL_2D", f"{name}.pool", (1, 1, 1, channels),
                      window=(height, width), stride=(height, width))
            self.emit("RESHAPE", name, out, new_shape=out)
        elif op == "batchnorm":
            self.batchnorm(position, name, out, step)
        elif op == "flatten":
            self.flatten(index, name, out, step.input.kind)
        elif op in ("lstm", "gru"):
            self.recurrent(position, name, op, out, args)
        elif op == "to_sequence":
            _, height, width, channels = self.shape
            if channels > 1 and width > 1:  # torch orders a row's features C, W
                self.emit("TRANSPOSE", f"{name}.transpose", (1, height, channels, width),
                          perm=(0, 1, 3, 2))
            self.emit("RESHAPE", name, out, new_shape=out)
        elif op == "to_image":
            self.emit("RESHAPE", name, out, new_shape=out)
        else:
            raise AssertionError(f"no deployed form of layer '{op}'")

    def activation(self, name: str, code: str) -> None:
        last = self.ops[-1] if self.ops else None
        if (last is not None and self.fresh and last.code in _TAKES_ACTIVATION
                and last.activation == "NONE"):
            self.fold(name, code)
        else:
            self.emit(code, name, self.shape)

    def pad(self, name: str, args: Args, seq: bool) -> None:
        """An explicit PAD before a convolution with a numeric or causal padding."""
        padding = args["padding"]
        if padding == "causal":  # the dilated kernel's span less one, in front of the steps
            span = _integer(args["dilation"]) * (_integer(args["kernel"]) - 1)
            n, h, w, c = self.shape
            self.emit("PAD", f"{name}.pad", (n, h, w + span, c),
                      pads=((0, 0), (0, 0), (span, 0), (0, 0)))
            return
        if padding in ("same", "valid") or padding == 0:
            return
        p = _integer(padding)
        n, h, w, c = self.shape
        rows = (0, 0) if seq else (p, p)
        self.emit("PAD", f"{name}.pad", (n, h + sum(rows), w + 2 * p, c),
                  pads=((0, 0), rows, (p, p), (0, 0)))

    @staticmethod
    def window(args: Args, seq: bool) -> _Window:
        (kh, kw), (sh, sw) = _sides(args["kernel"]), _sides(args["stride"])
        dh, dw = _sides(args.get("dilation", 1))
        if seq:  # a sequence is one row: the window slides along the width
            kh, sh, dh = 1, 1, 1
        return _Window((kh, kw), (sh, sw), "SAME" if args["padding"] == "same" else "VALID",
                       (dh, dw))

    def conv(self, position: int, part: str, name: str, out: tuple[int, ...], args: Args,
             seq: bool, bias: bool, groups: int) -> None:
        window = self.window(args, seq)
        kh, kw = window.window
        inputs = self.shape[-1] // groups
        filters = out[-1]
        self.emit("CONV_2D", name, out, layer=position, part=part,
                  weights=(filters, kh, kw, inputs), bias=filters if bias else 0,
                  macs=math.prod(out[1:]) * kh * kw * inputs,
                  mac_class="pointwise" if kh * kw == 1 else "conv", **window._asdict())

    def depthwise(self, position: int, part: str, name: str, out: tuple[int, ...],
                  args: Args, seq: bool, multiplier: int, bias: bool = True) -> None:
        window = self.window(args, seq)
        kh, kw = window.window
        self.emit("DEPTHWISE_CONV_2D", name, out, layer=position, part=part,
                  weights=(1, kh, kw, out[-1]), bias=out[-1] if bias else 0,
                  multiplier=multiplier, macs=math.prod(out[1:]) * kh * kw,
                  mac_class="depthwise", **window._asdict())

    def pointwise(self, position: int, part: str, name: str, out: tuple[int, ...]) -> None:
        inputs = self.shape[-1]
        self.emit("CONV_2D", name, out, layer=position, part=part,
                  weights=(out[-1], 1, 1, inputs), bias=out[-1],
                  macs=math.prod(out[1:]) * inputs, mac_class="pointwise")

    def linear(self, position: int, name: str, out: tuple[int, ...], args: Args,
               bn: bool) -> None:
        inputs, units = self.shape[-1], out[-1]
        order, self.order = self.order, None
        self.emit("FULLY_CONNECTED", name, out, layer=position,
                  weights=(units, inputs), bias=units if args["bias"] or bn else 0,
                  macs=math.prod(out[:-1]) * inputs * units, mac_class="linear",
                  permute_from=order)

    def batchnorm(self, position: int, name: str, out: tuple[int, ...], step: Step) -> None:
        """A batch norm that folds into nothing: a 1x1 depthwise convolution."""
        part = "bn" if step.input.kind == "sequence" else ""
        flat = len(self.shape) == 2
        if flat:  # DEPTHWISE_CONV_2D needs 4-D
            self.emit("RESHAPE", f"{name}.reshape", (1, 1, 1, self.shape[-1]),
                      new_shape=(1, 1, 1, self.shape[-1]))
        channels = self.shape[-1]
        self.emit("DEPTHWISE_CONV_2D", name, self.shape, layer=position, part=part,
                  weights=(1, 1, 1, channels), bias=channels,
                  macs=math.prod(self.shape[1:]), mac_class="depthwise", emulates="batchnorm")
        if flat:
            self.emit("RESHAPE", f"{name}.unreshape", out, new_shape=out)

    def flatten(self, index: int, name: str, out: tuple[int, ...], kind: str) -> None:
        if out == self.shape:
            return  # a vector already
        _, height, width, channels = self.shape
        if kind == "image" and height * width > 1 and channels > 1:
            # torch flattens C, H, W; NHWC flattens H, W, C
            if self.next_is_linear(index):
                self.order = (height, width, channels)
            else:
                self.emit("TRANSPOSE", f"{name}.transpose", (1, channels, height, width),
                          perm=(0, 3, 1, 2))
        self.emit("RESHAPE", name, out, new_shape=out)

    def recurrent(self, position: int, name: str, op: str, out: tuple[int, ...],
                  args: Args) -> None:
        """One operator per stacked LSTM/GRU layer (priced; no TFLite Micro kernel); a
        bidirectional layer holds both directions' weights and states."""
        gates = 4 if op == "lstm" else 3
        hidden, layers = int(args["hidden"]), int(args["layers"])  # type: ignore[arg-type]
        both = 2 if args.get("bidirectional") else 1
        code = "UNIDIRECTIONAL_SEQUENCE_LSTM" if op == "lstm" else "GRU"
        steps = self.shape[-2]
        for index in range(layers):
            features = self.shape[-1]
            last = index == layers - 1
            weights = both * gates * hidden * (features + hidden)
            self.emit(code if both == 1 else f"BIDIRECTIONAL_SEQUENCE_{op.upper()}",
                      name if last else f"{name}.layer{index + 1}",
                      out if last else (1, 1, steps, both * hidden), layer=position,
                      part=f"rnn.{index}", weights=(both * gates * hidden, features + hidden),
                      bias=both * 2 * gates * hidden, macs=steps * weights,
                      mac_class="recurrent", state=both * (2 if op == "lstm" else 1) * hidden)

    def next_is_linear(self, index: int) -> bool:
        """Whether the layer after `index` that can reorder features is a linear layer."""
        for step in self.steps[index + 1:]:
            if step.kind != "layer" or step.layer is None:
                return False
            if step.layer.op not in _ORDER_KEEPING:
                return step.layer.op == "linear"
        return False


def _layers(steps: list[Step]) -> list[Step]:
    return [step for step in steps if step.kind == "layer"]


def deployed_graph(program: ir.Program, point: Mapping[str, object]) -> Graph:
    """The deployed graph of the network of `program` at (valid) `point`.

    Raises:
        PointError: the point cannot be built.
    """
    shape, steps = trace(program, point)
    return _Builder(shape, steps).run()
