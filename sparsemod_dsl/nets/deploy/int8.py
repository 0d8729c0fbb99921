"""The numbers of a deployed graph, read from torch's int8 model of the same network.

`int8_graph(graph, model)` takes the deployed graph of a point (`graph`) and the
network built at that point after `quantize.static_int8`, and collects, in TFLite's
conventions, what an int8 runtime needs: the scale and zero point of every activation
tensor (torch's unsigned 0..255 shifted to -128..127), per-channel int8 weights in
TFLite layout (OHWI, depthwise 1HWC) with their scales, int32 biases quantised with
input scale x weight scale, and, for a batch norm torch kept apart, the 1x1 depthwise
weights that compute it. The TFLite writer (`tflite`) then only serialises.

The exported model is the model whose accuracy the search measured: every scale comes
from torch's calibration, so TFLite Micro's outputs match torch's int8 outputs within
one quantisation step (requantisation rounds in fixed point on the device, in float in
torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..int8_kernels import Int8BatchNorm, Int8Softmax, quantized_bias
from ..modules import FloatIsland
from ..network import SparsemodNet
from ..operators import Graph, Op

#: Codes whose output keeps the scale and zero point of their (first) input.
_KEEPS_QPARAMS = frozenset({"MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "RESHAPE", "TRANSPOSE",
                            "PAD", "RELU", "RELU6"})


class Int8Error(ValueError):
    """The torch model does not hold what the deployed graph needs (not int8, say)."""


@dataclass(frozen=True)
class QParams:
    """Scales and zero points: one each for a tensor, or one per channel along `axis`."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    @staticmethod
    def of(scale: float, zero_point: int) -> "QParams":
        return QParams(np.array([scale], np.float32), np.array([zero_point], np.int64))


#: Scale and zero point TFLite requires of an int8 SOFTMAX output.
SOFTMAX_QPARAMS = QParams.of(Int8Softmax.SCALE, -128)


@dataclass(frozen=True)
class Int8Op:
    """An operator with its int8 weights and int32 bias (None where it has none)."""

    op: Op
    weights: np.ndarray | None = None
    weight_q: QParams | None = None
    bias: np.ndarray | None = None
    bias_q: QParams | None = None


@dataclass(frozen=True)
class Int8Graph:
    """A deployed graph with the quantisation of every tensor and the weights of every op."""

    graph: Graph
    activations: tuple[QParams, ...]
    ops: tuple[Int8Op, ...]


def _shifted(scale: float | torch.Tensor, zero_point: int | torch.Tensor) -> QParams:
    """torch's quint8 (0..255) parameters as TFLite int8 (-128..127) ones."""
    return QParams.of(float(scale), int(zero_point) - 128)


def _output_qparams(module: nn.Module, what: str) -> QParams:
    if isinstance(module, FloatIsland):
        module = module.quant
    scale, zero_point = getattr(module, "scale", None), getattr(module, "zero_point", None)
    if scale is None or zero_point is None:
        raise Int8Error(f"{what}: the torch model is not quantised to int8 here "
                        f"({type(module).__name__}); quantise it with static_int8 first")
    return _shifted(scale, zero_point)


def _weights(module: nn.Module, op: Op) -> tuple[np.ndarray, QParams]:
    """Per-channel int8 weights in TFLite layout, with their scales."""
    weight = module.weight()  # type: ignore[operator]
    values = weight.int_repr().numpy().astype(np.int8)
    channels = values.shape[0]
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        scales = weight.q_per_channel_scales().numpy().astype(np.float32)
        zero_points = weight.q_per_channel_zero_points().numpy()
    else:
        scales = np.full(channels, weight.q_scale(), np.float32)
        zero_points = np.full(channels, weight.q_zero_point())
    if np.any(zero_points != 0):
        raise Int8Error(f"{op.name}: TFLite needs symmetric int8 weights (zero point 0)")
    if op.code == "FULLY_CONNECTED":
        if op.permute_from is not None:  # torch's C, H, W columns -> NHWC's H, W, C
            height, width, depth = op.permute_from
            values = values.reshape(channels, depth, height, width).transpose(0, 2, 3, 1)
            values = values.reshape(channels, -1)
        return values, QParams(scales, np.zeros(channels, np.int64), 0)
    if values.ndim == 3:  # conv1d (O, I, k): a one-row 2-D kernel
        values = values[:, :, None, :]
    values = values.transpose(0, 2, 3, 1)  # OIHW -> OHWI
    if op.code == "DEPTHWISE_CONV_2D":  # (C*m, kh, kw, 1) -> (1, kh, kw, C*m)
        return values.transpose(3, 1, 2, 0).copy(), QParams(scales, np.zeros(channels, np.int64), 3)
    return np.ascontiguousarray(values), QParams(scales, np.zeros(channels, np.int64), 0)


def _bias(values: torch.Tensor | np.ndarray | None, input_scale: float, weight: QParams,
          channels: int) -> tuple[np.ndarray, QParams]:
    bias = torch.as_tensor(values) if isinstance(values, np.ndarray) else values
    quantised, scales = quantized_bias(bias, input_scale, weight.scale, channels)
    return quantised, QParams(scales, np.zeros(channels, np.int64), 0)


class _Reader:
    """Walks the deployed graph's operators beside the torch model's modules."""

    def __init__(self, graph: Graph, model: SparsemodNet) -> None:
        self.graph = graph
        self.model = model
        self.keys = [key for step, key in model.plan if step == "layer"]
        self.adds = iter([key for step, key in model.plan if step == "add"])
        #: The residual projections, in order (pooling shortcuts have no weights).
        self.projections = iter([key for step, key in model.plan if step == "shortcut"
                                 and "conv" in dict(model.layers[key].named_children())])
        self.activations: dict[int, QParams] = {graph.input: _output_qparams(model.quant,
                                                                              "the input")}

    def module(self, op: Op) -> nn.Module:
        if op.layer < 0:  # a residual's projection shortcut
            return self.model.layers[next(self.projections)].get_submodule(op.part)
        module = self.model.layers[self.keys[op.layer]]
        if op.emulates == "batchnorm":
            return module
        if isinstance(module, FloatIsland):
            module = module.inner
        return module.get_submodule(op.part) if op.part else module

    def op(self, op: Op) -> Int8Op:
        input_q = self.activations[op.inputs[0]]
        if op.code in _KEEPS_QPARAMS:
            self.activations[op.output] = input_q
            return Int8Op(op)
        if op.code == "SOFTMAX":  # TFLite's int8 SOFTMAX has fixed output numbers
            self.activations[op.output] = SOFTMAX_QPARAMS
            return Int8Op(op)
        if op.code == "ADD":
            self.activations[op.output] = _output_qparams(
                self.model.adds[next(self.adds)], op.name)
            return Int8Op(op)
        if op.code not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            raise Int8Error(f"{op.name}: {op.code} has no int8 form here")
        module = self.module(op)
        self.activations[op.output] = _output_qparams(module, op.name)
        input_scale = float(input_q.scale[0])
        if op.emulates == "batchnorm":
            if not isinstance(module, Int8BatchNorm):
                raise Int8Error(f"{op.name}: expected the int8 batch norm of static_int8, "
                                f"not {type(module).__name__}")
            channels = len(module.int_weights)
            weight_q = QParams(module.weight_scales, np.zeros(channels, np.int64), 3)
            bias, bias_q = _bias(module.shift, input_scale, weight_q, channels)
            return Int8Op(op, module.int_weights.reshape(1, 1, 1, -1), weight_q, bias, bias_q)
        weights, weight_q = _weights(module, op)
        if not op.bias:
            return Int8Op(op, weights, weight_q)
        bias, bias_q = _bias(module.bias(), input_scale, weight_q, op.bias)  # type: ignore[operator]
        return Int8Op(op, weights, weight_q, bias, bias_q)


def int8_graph(graph: Graph, model: nn.Module) -> Int8Graph:
    """The int8 numbers of `graph`, taken from `model`, the network built at the same
    point and quantised with `quantize.static_int8`.

    Raises:
        Int8Error: `model` is not that network in int8.
    """
    if not isinstance(model, SparsemodNet):
        raise Int8Error(f"expected the network built at the point, not {type(model).__name__}")
    reader = _Reader(graph, model)
    ops = tuple(reader.op(op) for op in graph.ops)
    activations = tuple(reader.activations[tensor.index] for tensor in graph.tensors)
    return Int8Graph(graph, activations, ops)
