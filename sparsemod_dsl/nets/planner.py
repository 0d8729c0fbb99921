"""TFLite Micro's greedy memory planner, replayed on a deployed graph.

TFLM gives every activation tensor a lifetime (the operators between the one that
makes it and the last that reads it; the model's input from the start, its output to
the end), rounds each size up to 16 bytes, sorts the buffers by size, largest first
(ties in reverse tensor order), and puts each at the lowest offset where it overlaps no
placed buffer whose lifetime intersects its own. The activation area is the highest
end of any buffer. This module does the same (TFLM's source:
`tensorflow/lite/micro/memory_planner/greedy_memory_planner.cc` and
`micro_allocation_info.cc`), so that the activation area is known without running
TFLM; `live_bytes` is the bound it cannot beat: the most bytes alive at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .operators import Graph

#: TFLM's `MicroArenaBufferAlignment()`: every planned buffer is rounded up to it.
BUFFER_ALIGNMENT = 16


@dataclass(frozen=True, slots=True)
class Buffer:
    """A planned buffer: size in bytes (aligned) and the first and last operator scope
    (1-based; 0 is before the first operator) that use it."""

    size: int
    first: int
    last: int


def aligned(size: int) -> int:
    return -(-size // BUFFER_ALIGNMENT) * BUFFER_ALIGNMENT


def lifetimes(graph: Graph) -> dict[int, tuple[int, int]]:
    """Tensor index -> (first, last) scope, as TFLM marks them, for activation tensors."""
    first: dict[int, int] = {graph.input: 0, graph.output: 0}
    last: dict[int, int] = {graph.input: 0, graph.output: 0}
    for scope, op in enumerate(graph.ops, 1):
        first[op.output] = scope
        last[op.output] = max(last.get(op.output, scope), scope)
        for tensor in op.inputs:
            last[tensor] = scope
    last[graph.output] = len(graph.ops)
    return {index: (first[index], last[index]) for index in sorted(first)}


def buffers(graph: Graph, element_bytes: int = 1) -> list[Buffer]:
    """The activation buffers of `graph` in tensor order, with TFLM's lifetimes."""
    return [Buffer(aligned(graph.tensors[index].elements * element_bytes), first, last)
            for index, (first, last) in lifetimes(graph).items()]


def live_per_scope(graph: Graph, element_bytes: int = 1) -> list[int]:
    """Activation bytes (unaligned) alive in each scope 0..len(ops)."""
    change = [0] * (len(graph.ops) + 2)
    for index, (first, last) in lifetimes(graph).items():
        size = graph.tensors[index].elements * element_bytes
        change[first] += size
        change[last + 1] -= size
    alive, running = [], 0
    for delta in change[:-1]:
        running += delta
        alive.append(running)
    return alive


def greedy_area(planned: list[Buffer]) -> int:
    """The bytes TFLM's greedy planner needs for `planned` (its `GetMaximumMemorySize`)."""
    # TFLM fills its sort array from the back, then bubble-sorts it stably: equal sizes
    # end up in reverse tensor order
    order = sorted(reversed(range(len(planned))), key=lambda i: -planned[i].size)
    placed: list[tuple[int, Buffer]] = []  # (offset, buffer), by offset
    for index in order:
        wanted = planned[index]
        offset = 0
        for start, other in placed:
            if other.first > wanted.last or wanted.first > other.last:
                continue  # not alive at the same time
            if start - offset >= wanted.size:
                break  # the gap before this buffer is big enough
            offset = max(offset, start + other.size)
        placed.append((offset, wanted))
        placed.sort(key=lambda item: item[0])
    return max((start + b.size for start, b in placed), default=0)


def live_bytes(planned: list[Buffer]) -> int:
    """The most bytes alive in any one scope: a lower bound of any memory plan."""
    change: dict[int, int] = {}
    for b in planned:
        change[b.first] = change.get(b.first, 0) + b.size
        change[b.last + 1] = change.get(b.last + 1, 0) - b.size
    peak = running = 0
    for scope in sorted(change):
        running += change[scope]
        peak = max(peak, running)
    return peak
