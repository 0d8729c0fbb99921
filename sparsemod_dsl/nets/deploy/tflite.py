"""The TFLite backend: a deployed graph's int8 numbers as a `.tflite` flatbuffer.

`tflite_model(int8graph)` serialises, with the TFLite schema's generated builders (the
`tflite` package), exactly the operators of the deployed graph (`graph`) with the
numbers read from torch's int8 model (`int8`): int8 activations, input and output,
per-channel int8 weights, int32 biases, NHWC. TensorFlow Lite Micro and LiteRT run the
result; `tflm` runs it here.

The file's layout is fixed so that the flash model (`cost.tflite_bytes`) can price it
without writing it: one subgraph; the activation tensors first, in the graph's order
(TFLM's memory planner breaks ties between equal buffers by tensor order), then each
operator's constant tensors; one buffer per constant, 16-byte aligned, after an empty
buffer 0; tensor names are the readable IR names.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

import flatbuffers
import numpy as np

from ... import __version__
from ..flash import BUFFER_ALIGNMENT
from ..operators import Op
from .int8 import SOFTMAX_QPARAMS, Int8Graph, QParams

#: TFLite's builtin operator codes and the versions that hold their int8 kernels.
OPERATORS: dict[str, tuple[int, int]] = {
    "ADD": (0, 2), "AVERAGE_POOL_2D": (1, 2), "CONV_2D": (3, 3), "DEPTHWISE_CONV_2D": (4, 3),
    "FULLY_CONNECTED": (9, 4), "MAX_POOL_2D": (17, 2), "RELU": (19, 2), "RELU6": (21, 2),
    "RESHAPE": (22, 1), "SOFTMAX": (25, 2), "PAD": (34, 2), "TRANSPOSE": (39, 2),
    "MEAN": (40, 2),
}
#: Operator code -> (options table, its BuiltinOptions union tag).
_OPTIONS = {
    "CONV_2D": ("Conv2DOptions", 1), "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", 2),
    "FULLY_CONNECTED": ("FullyConnectedOptions", 8), "ADD": ("AddOptions", 11),
    "MAX_POOL_2D": ("Pool2DOptions", 5), "AVERAGE_POOL_2D": ("Pool2DOptions", 5),
    "MEAN": ("ReducerOptions", 27), "RESHAPE": ("ReshapeOptions", 17),
    "TRANSPOSE": ("TransposeOptions", 26), "PAD": ("PadOptions", 22),
    "SOFTMAX": ("SoftmaxOptions", 9),
}
_ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU6": 3}
_PADDING = {"SAME": 0, "VALID": 1}
_INT8, _INT32 = 9, 2


class TFLiteError(ValueError):
    """The network has an operator that the TFLite backend cannot write."""


def _module(name: str) -> Any:
    """A generated module of the TFLite schema package (`tflite.Conv2DOptions`, ...)."""
    return importlib.import_module(f"tflite.{name}")


class _Writer:
    """Builds the flatbuffer bottom-up, as flatbuffers requires (children first)."""

    def __init__(self) -> None:
        self.b = flatbuffers.Builder(4096)
        self.buffers: list[bytes] = [b""]
        self.tensors: list[int] = []  # offsets of the finished Tensor tables

    def vector(self, table: str, field: str, offsets: Sequence[int]) -> int:
        getattr(_module(table), f"{table}Start{field}Vector")(self.b, len(offsets))
        for offset in reversed(offsets):
            self.b.PrependUOffsetTRelative(offset)
        return self.b.EndVector()

    def table(self, name: str, **fields: int | float) -> int:
        """A table whose fields are scalars or offsets made before it."""
        module = _module(name)
        getattr(module, f"{name}Start")(self.b)
        for field, value in fields.items():
            getattr(module, f"{name}Add{field}")(self.b, value)
        return getattr(module, f"{name}End")(self.b)  # type: ignore[no-any-return]

    def quantization(self, q: QParams) -> int:
        scale = self.b.CreateNumpyVector(q.scale.astype(np.float32))
        zero_point = self.b.CreateNumpyVector(q.zero_point.astype(np.int64))
        return self.table("QuantizationParameters", Scale=scale, ZeroPoint=zero_point,
                          QuantizedDimension=q.axis)

    def tensor(self, name: str, shape: Sequence[int], kind: int, q: QParams | None,
               data: bytes | None = None) -> int:
        """Add a tensor (constant when `data` is given); returns its index."""
        buffer = 0
        if data is not None:
            self.buffers.append(data)
            buffer = len(self.buffers) - 1
        name_offset = self.b.CreateString(name)
        shape_offset = self.b.CreateNumpyVector(np.asarray(shape, np.int32))
        fields: dict[str, int] = {"Shape": shape_offset, "Type": kind, "Buffer": buffer,
                                  "Name": name_offset}
        if q is not None:
            fields["Quantization"] = self.quantization(q)
        self.tensors.append(self.table("Tensor", **fields))
        return len(self.tensors) - 1

    def constant(self, name: str, values: np.ndarray, q: QParams | None = None) -> int:
        kind = _INT8 if values.dtype == np.int8 else _INT32
        array = np.ascontiguousarray(values.astype(np.int8 if kind == _INT8 else np.int32))
        return self.tensor(name, array.shape, kind, q, array.tobytes())

    def buffer(self, data: bytes) -> int:
        if not data:
            return self.table("Buffer")
        self.b.StartVector(1, len(data), BUFFER_ALIGNMENT)
        self.b.head = self.b.head - len(data)
        self.b.Bytes[self.b.head:self.b.head + len(data)] = data
        offset = self.b.EndVector()
        return self.table("Buffer", Data=offset)

    def ints(self, values: Sequence[int]) -> int:
        return self.b.CreateNumpyVector(np.asarray(values, np.int32))


def _options(w: _Writer, op: Op, keep_dims: bool) -> tuple[int, int]:
    """(union tag, offset) of an operator's options table; (0, 0) for none."""
    if op.code not in _OPTIONS:
        return 0, 0
    table, tag = _OPTIONS[op.code]
    act = _ACTIVATIONS[op.activation]
    fields: dict[str, Callable[[], dict[str, int | float]]] = {
        "CONV_2D": lambda: {"Padding": _PADDING[op.padding], "StrideH": op.stride[0],
                            "StrideW": op.stride[1], "FusedActivationFunction": act,
                            "DilationHFactor": op.dilation[0], "DilationWFactor": op.dilation[1]},
        "DEPTHWISE_CONV_2D": lambda: {"Padding": _PADDING[op.padding], "StrideH": op.stride[0],
                                      "StrideW": op.stride[1], "DepthMultiplier": op.multiplier,
                                      "FusedActivationFunction": act,
                                      "DilationHFactor": op.dilation[0],
                                      "DilationWFactor": op.dilation[1]},
        "FULLY_CONNECTED": lambda: {"FusedActivationFunction": act, "KeepNumDims": keep_dims},
        "ADD": lambda: {"FusedActivationFunction": act},
        "MAX_POOL_2D": lambda: _pool(op, act),
        "AVERAGE_POOL_2D": lambda: _pool(op, act),
        "MEAN": lambda: {"KeepDims": False},
        "RESHAPE": lambda: {"NewShape": w.ints(op.new_shape)},
        "SOFTMAX": lambda: {"Beta": 1.0},
    }
    return tag, w.table(table, **fields.get(op.code, dict)())


def _pool(op: Op, act: int) -> dict[str, int | float]:
    return {"Padding": _PADDING[op.padding], "StrideH": op.stride[0], "StrideW": op.stride[1],
            "FilterHeight": op.window[0], "FilterWidth": op.window[1],
            "FusedActivationFunction": act}


def _inputs(w: _Writer, model: Int8Graph, index: int) -> list[int]:
    """The operator's tensor inputs: activations, then its constants (added now)."""
    q_op = model.ops[index]
    op = q_op.op
    inputs = list(op.inputs)
    if q_op.weights is not None:
        inputs.append(w.constant(f"{op.name}.weights", q_op.weights, q_op.weight_q))
        inputs.append(w.constant(f"{op.name}.bias", q_op.bias, q_op.bias_q)
                      if q_op.bias is not None else -1)
    elif op.code == "RESHAPE":
        inputs.append(w.constant(f"{op.name}.shape", np.asarray(op.new_shape, np.int32)))
    elif op.code == "MEAN":
        inputs.append(w.constant(f"{op.name}.axes", np.asarray(op.axes, np.int32)))
    elif op.code == "TRANSPOSE":
        inputs.append(w.constant(f"{op.name}.perm", np.asarray(op.perm, np.int32)))
    elif op.code == "PAD":
        inputs.append(w.constant(f"{op.name}.paddings", np.asarray(op.pads, np.int32)))
    return inputs


def check_exportable(model: Int8Graph) -> None:
    """Raise `TFLiteError` naming the first operator TFLite Micro cannot run."""
    for q_op in model.ops:
        op = q_op.op
        if op.code not in OPERATORS:
            raise TFLiteError(
                f"layer {op.name} ({op.code.lower()}) has no int8 TensorFlow Lite Micro "
                "kernel; export this network with --format onnx or --format onnx-int8")


def tflite_model(model: Int8Graph, softmax: bool = False) -> bytes:
    """The `.tflite` flatbuffer of an int8 deployed graph.

    Args:
        model: the graph with its int8 numbers (`int8.int8_graph`).
        softmax: end with an int8 SOFTMAX (probabilities, scale 1/256) after the logits.

    Raises:
        TFLiteError: an operator (LSTM, GRU) has no TFLite Micro kernel here.
    """
    check_exportable(model)
    graph = model.graph
    w = _Writer()
    for tensor, q in zip(graph.tensors, model.activations):
        w.tensor(tensor.name, tensor.shape, _INT8, q)
    ops: list[tuple[str, list[int], list[int], tuple[int, int]]] = []
    for index, q_op in enumerate(model.ops):
        op = q_op.op
        keep_dims = len(graph.tensors[op.output].shape) > 2
        ops.append((op.code, _inputs(w, model, index), [op.output], _options(w, op, keep_dims)))
    output = graph.output
    if softmax:
        probabilities = w.tensor("softmax", graph.tensors[output].shape, _INT8, SOFTMAX_QPARAMS)
        softmax_op = Op("SOFTMAX", "softmax", (output,), probabilities)
        ops.append(("SOFTMAX", [output], [probabilities], _options(w, softmax_op, False)))
        output = probabilities
    codes = list(dict.fromkeys(code for code, *_ in ops))
    operators = []
    for code, inputs, outputs, (tag, options) in ops:
        fields = {"OpcodeIndex": codes.index(code), "Inputs": w.ints(inputs),
                  "Outputs": w.ints(outputs)}
        if tag:
            fields.update(BuiltinOptionsType=tag, BuiltinOptions=options)
        operators.append(w.table("Operator", **fields))
    subgraph = w.table(
        "SubGraph", Tensors=w.vector("SubGraph", "Tensors", w.tensors),
        Inputs=w.ints([graph.input]), Outputs=w.ints([output]),
        Operators=w.vector("SubGraph", "Operators", operators), Name=w.b.CreateString("main"))
    opcodes = [w.table("OperatorCode", DeprecatedBuiltinCode=min(OPERATORS[c][0], 127),
                       Version=OPERATORS[c][1], BuiltinCode=OPERATORS[c][0]) for c in codes]
    buffers = [w.buffer(data) for data in w.buffers]
    description = w.b.CreateString(f"sparsemod-dsl {__version__}")
    root = w.table(
        "Model", Version=3,
        OperatorCodes=w.vector("Model", "OperatorCodes", opcodes),
        Subgraphs=w.vector("Model", "Subgraphs", [subgraph]),
        Description=description,
        Buffers=w.vector("Model", "Buffers", buffers))
    w.b.Finish(root, file_identifier=b"TFL3")
    return bytes(w.b.Output())
