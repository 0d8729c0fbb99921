"""Flash: the bytes of the `.tflite` file the TFLite backend writes, without writing it.

A TFLite Micro firmware keeps the model in flash as it is (the flatbuffer). Its size is
the constants (int8 weights, int32 biases, the int32 shape, axes and padding operands,
each in a 16-byte aligned buffer) plus the flatbuffer's tables: one per tensor (its
shape, name and quantisation: a float32 scale and an int64 zero point per channel),
per operator (inputs, outputs, options) and per operator code. `tflite_bytes` adds
these up for a deployed graph: the variable parts (names, shapes, constants,
per-channel arrays) byte for byte, the tables with constants fit on files written by
`tflite.tflite_model`; the tests check it against such files (docs/cost-models.md).

Pruning does not shrink a dense int8 file. `sparse_weights` prices the weights as their
nonzero values plus a one-bit-per-weight mask instead: the storage a runtime that
decodes pruned weights would need (TFLM's compression DECODE operator with its prune
decoder stores such a layout and decodes it into RAM before use); no stock TFLM
kernel reads it, so it is an option, never the default.
"""

from __future__ import annotations

import math

from .operators import Graph, Op

#: Alignment of each constant buffer in the file, as TFLite's own writers align them.
BUFFER_ALIGNMENT = 16

#: Bytes of what every file has: header, model, subgraph, the empty buffer 0, the
#: description, the input tensor's table.
FIXED_BYTES = 339
#: Bytes of each operator code's table (once per code used).
OPCODE_BYTES = 44
#: Bytes of one operator beyond its variable parts, by code: its table and options,
#: its output tensor's table and quantisation, and the tables and buffers of its
#: constants. Fit (non-negative least squares) on 280 files of the stdlib and test
#: spaces written by `tflite.tflite_model`: at most 98 bytes (1.1%) off.
OPERATOR_BYTES = {"ADD": 98, "AVERAGE_POOL_2D": 113, "CONV_2D": 265, "DEPTHWISE_CONV_2D": 294,
                  "FULLY_CONNECTED": 259, "MAX_POOL_2D": 117, "PAD": 141, "RELU": 104,
                  "RELU6": 104, "RESHAPE": 144, "TRANSPOSE": 195, "SOFTMAX": 104}
#: Recurrent operators have no writer here; priced as a fully connected layer.
_DEFAULT_OPERATOR = OPERATOR_BYTES["FULLY_CONNECTED"]


def _align(n: int, to: int) -> int:
    return -(-n // to) * to


def _string(text: str) -> int:
    """A flatbuffer string: length, bytes, NUL, padded to 4."""
    return _align(4 + len(text.encode("utf-8")) + 1, 4)


def _constants(op: Op, sparsity: float) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(name, shape, data bytes, quantised channels) of an operator's constant tensors."""
    if op.weights:
        channels = op.weights[-1] if op.code == "DEPTHWISE_CONV_2D" else op.weights[0]
        elements = math.prod(op.weights)
        data = elements
        if sparsity:
            data = min(elements, elements - math.floor(sparsity * elements) + -(-elements // 8))
        found = [(f"{op.name}.weights", op.weights, data, channels)]
        if op.bias:
            found.append((f"{op.name}.bias", (op.bias,), 4 * op.bias, op.bias))
        return found
    operand = {"RESHAPE": ("shape", op.new_shape), "MEAN": ("axes", op.axes),
               "TRANSPOSE": ("perm", op.perm),
               "PAD": ("paddings", tuple(v for pair in op.pads for v in pair))}.get(op.code)
    if operand is None:
        return []
    name, values = operand
    shape = (len(op.pads), 2) if op.code == "PAD" else (len(values),)
    return [(f"{op.name}.{name}", shape, 4 * len(values), 0)]


def tflite_bytes(graph: Graph, sparse_weights: float = 0.0) -> int:
    """Bytes of the `.tflite` file of `graph` (int8; recurrent operators priced as if
    written like fully connected ones).

    Args:
        graph: the deployed graph (`graph.deployed_graph`).
        sparse_weights: 0 for dense int8 weights (what TFLM reads); else the fraction of
            weights pruned, stored as nonzeros plus a bit mask (see the module doc).
    """
    total = FIXED_BYTES + OPCODE_BYTES * len({op.code for op in graph.ops})
    for tensor in graph.tensors:
        total += 4 * len(tensor.shape) + _string(tensor.name)
    for op in graph.ops:
        total += OPERATOR_BYTES.get(op.code, _DEFAULT_OPERATOR) + 4 * len(op.inputs)
        for name, shape, data, channels in _constants(op, sparse_weights):
            total += 4 * len(shape) + _string(name) + _align(data, BUFFER_ALIGNMENT)
            if channels:  # float32 scales and int64 zero points, one per channel
                total += 4 * channels + _align(4 + 8 * channels, 8) - 8
    return total
