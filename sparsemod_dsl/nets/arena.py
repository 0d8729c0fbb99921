"""RAM: TensorFlow Lite Micro's arena for a deployed graph, in three figures.

- `live_bytes`: the most activation bytes alive at once (any memory plan needs this,
  before rounding buffers up to TFLM's 16-byte alignment);
- `activation_bytes`: the activation area as TFLM's greedy memory planner lays it out
  (`planner`), the head of TFLM's arena, fragmentation included;
- `arena_bytes`: TFLM's whole arena, what the firmware must reserve: the activation
  area plus TFLM's persistent tail (one eval-tensor struct per tensor, a node struct
  per operator, each kernel's data with its per-channel requantisation multipliers and
  shifts, the parsed operator options, the allocator's own bookkeeping). A firmware's
  arena array needs `tflm.ARENA_ALIGNMENT` bytes more, for aligning its start.

The tail's constants were measured with TFLM's recording allocator
(`tflm.arena`, `print_allocations`) on 205 exported models of the stdlib and test
spaces: kernel data and struct sizes exactly, the allocator's bookkeeping and the
options to within 9 bytes (docs/cost-models.md has the table). They are TFLM's
reference kernels on a 64-bit build: a Cortex-M's structs hold 4-byte pointers (the
tail is smaller there), while CMSIS-NN kernels ask for scratch buffers of their own
(the activation area is larger with them).
"""

from __future__ import annotations

from dataclasses import dataclass

from .operators import Graph, Op
from .planner import buffers, greedy_area, live_per_scope

#: `TfLiteEvalTensor` per tensor, activations and constants (bytes, 64-bit build).
EVAL_TENSOR_BYTES = 24
#: `NodeAndRegistration` per operator.
NODE_BYTES = 64
#: What every model costs: the input's and output's `TfLiteTensor` with their
#: quantisation (192 bytes), the allocator's and planner's bookkeeping (524 bytes).
FIXED_TAIL_BYTES = 716
#: Each kernel's persistent data (`OpData`) by operator code, before 16-byte alignment;
#: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED add 2 x 4 bytes per output channel.
KERNEL_DATA_BYTES = {"CONV_2D": 80, "DEPTHWISE_CONV_2D": 80, "FULLY_CONNECTED": 72,
                     "ADD": 60, "AVERAGE_POOL_2D": 32, "MAX_POOL_2D": 32, "PAD": 56,
                     "RELU": 28, "RELU6": 28, "SOFTMAX": 28}
#: The parsed options (`builtin_data`) of each operator code, allocated in the tail.
OPTIONS_DATA_BYTES = {"CONV_2D": 28, "DEPTHWISE_CONV_2D": 28, "FULLY_CONNECTED": 32,
                      "AVERAGE_POOL_2D": 40, "MAX_POOL_2D": 40, "RESHAPE": 40, "ADD": 8,
                      "SOFTMAX": 8}
#: Operators whose kernels keep per-channel requantisation arrays.
_PER_CHANNEL = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})


@dataclass(frozen=True)
class ArenaModel:
    """The three RAM figures of a deployed graph (bytes)."""

    live_bytes: int
    activation_bytes: int
    persistent_bytes: int

    @property
    def arena_bytes(self) -> int:
        """TFLM's whole arena: the activation area and the persistent data."""
        return self.activation_bytes + self.persistent_bytes


def _align16(n: int) -> int:
    return -(-n // 16) * 16


def _constants(op: Op) -> int:
    """Constant tensors an operator reads (weights, bias, shape/axes/perm/paddings)."""
    if op.weights:
        return 2 if op.bias else 1
    return 1 if op.code in ("RESHAPE", "TRANSPOSE", "PAD", "MEAN") else 0


def persistent_bytes(graph: Graph) -> int:
    """TFLM's persistent tail for `graph` (64-bit build)."""
    tensors = len(graph.tensors) + sum(_constants(op) for op in graph.ops)
    total = FIXED_TAIL_BYTES + EVAL_TENSOR_BYTES * tensors + NODE_BYTES * len(graph.ops)
    for op in graph.ops:
        total += _align16(KERNEL_DATA_BYTES.get(op.code, 0)) + OPTIONS_DATA_BYTES.get(op.code, 0)
        if op.code in _PER_CHANNEL:
            channels = op.weights[-1] if op.code == "DEPTHWISE_CONV_2D" else op.weights[0]
            total += 2 * _align16(4 * channels)
    return total


def arena(graph: Graph, element_bytes: int = 1) -> ArenaModel:
    """The RAM figures of `graph` with activations of `element_bytes` (1 at int8)."""
    return ArenaModel(max(live_per_scope(graph, element_bytes)),
                      greedy_area(buffers(graph, element_bytes)), persistent_bytes(graph))
