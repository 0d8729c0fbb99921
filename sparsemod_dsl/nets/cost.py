"""Hardware costs of a point, priced on the graph TensorFlow Lite Micro runs.

`cost(program, point, target)` derives the deployed graph of a point (`graph`: batch
norm folded, activations fused, separable convolutions split) and prices exactly it,
without building or writing anything:

- **flash**: the bytes of the `.tflite` file the TFLite backend writes (`flash`),
  dense int8 unless a sparse weight format is asked for;
- **RAM**, three figures (`arena`): the live-tensor bound, the activation area as
  TFLM's greedy memory planner lays it out, and TFLM's whole arena (activation area +
  persistent data), which is the figure budgets and the `ram` objective use;
- **MACs** and **parameters** (weights and biases as deployed, batch norm folded);
- **latency**: cycles from the target's per-operator throughput for the engine it
  names (TFLM reference kernels or CMSIS-NN), divided by its clock.

`fit` compares a report with the target's budgets, so that a search can reject a
point before training it. Sizes are bytes, latencies milliseconds, KB = 1024 bytes;
docs/cost-models.md states every formula and constant and how each was measured, and
the tests compare flash and RAM with TFLM running the exported model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from ..errors import UsageError
from ..lang import ir
from .arena import arena
from .flash import tflite_bytes
from .graph import deployed_graph
from .operators import Graph, Op
from .planner import live_per_scope
from .targets import KB, Target

#: Bytes of one weight and one activation element at each precision.
QUANTS: dict[str, int] = {"int8": 1, "float32": 4}
#: The runtime every flash and RAM figure models.
RUNTIME = "TensorFlow Lite Micro (arena as its 64-bit interpreter measures it)"
#: Operators that move or combine elements without MACs (priced per element).
_ELEMENTWISE = frozenset({"ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "RELU", "RELU6",
                          "PAD", "RESHAPE", "TRANSPOSE", "SOFTMAX"})


@dataclass(slots=True)  # not frozen: frozen dataclasses take 4x as long to create
class OpCost:
    """One row of the per-operator table: an operator of the deployed graph.

    `folded` names the IR layers it absorbed (batch norm, ReLU); `activation_bytes` is
    its output, `live_bytes` every activation alive while it runs (its inputs, its
    output, and tensors kept for a later residual add), `flash_bytes` its constants
    (weights, bias, per-channel quantisation) in the file.
    """

    name: str
    op: str
    folded: tuple[str, ...]
    output: tuple[int, ...]
    params: int
    macs: int
    activation_bytes: int
    live_bytes: int
    flash_bytes: int
    latency_ms: float | None


@dataclass(frozen=True)
class CostReport:
    """The costs of one point: totals, and the per-operator table in execution order.

    `ram_bytes` is TFLM's whole arena (the RAM objective and budget); `activation_bytes`
    the activation area of TFLM's memory plan; `live_bytes` the most activation bytes
    alive at once, which no plan can beat; `persistent_bytes` the arena's persistent
    part. `peak_op` names the operator with the most live bytes. `latency_ms` is None
    without a target.
    """

    params: int
    flash_bytes: int
    ram_bytes: int
    activation_bytes: int
    live_bytes: int
    persistent_bytes: int
    macs: int
    latency_ms: float | None
    layers: tuple[OpCost, ...]
    peak_op: str
    quant: str
    sparse_weights: float
    target: str | None
    engine: str | None
    runtime: str = RUNTIME


@dataclass(frozen=True)
class Fit:
    """Whether a point fits a target's SRAM and flash budgets (bytes); if not, why."""

    ok: bool
    ram_bytes: int
    ram_budget_bytes: int
    flash_bytes: int
    flash_budget_bytes: int
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def _latency(op: Op, elements: int, target: Target | None) -> float | None:
    """Milliseconds of one operator on the target (None without a target)."""
    if target is None:
        return None
    if target.throughput is None:
        assert target.ops_per_second is not None
        return op.macs / target.ops_per_second * 1e3
    rates = target.throughput
    cycles = rates.overhead_cycles
    if op.mac_class:
        cycles += op.macs / rates.macs_per_cycle[op.mac_class]
    elif op.code in _ELEMENTWISE:
        cycles += elements / rates.elementwise_per_cycle
    return cycles / (target.clock_mhz * 1e3)


def price(graph: Graph, target: Target | None = None, quant: str = "int8",
          sparse_weights: float = 0.0) -> CostReport:
    """The costs of a deployed graph (see `cost`)."""
    if quant not in QUANTS:
        raise UsageError(f"unknown precision '{quant}': use {' or '.join(QUANTS)}")
    if not 0.0 <= sparse_weights < 1.0:
        raise UsageError(f"sparse_weights must be in [0, 1), not {sparse_weights}")
    element = QUANTS[quant]
    memory = arena(graph, element)
    live = live_per_scope(graph, element)[1:]  # scope i + 1 runs operator i
    rows = []
    for op, alive in zip(graph.ops, live):
        out = graph.tensors[op.output]
        params = math.prod(op.weights) + op.bias if op.weights else 0
        elements = max(out.elements, *(graph.tensors[t].elements for t in op.inputs))
        rows.append(OpCost(op.name, op.code, op.folded, out.shape, params, op.macs,
                           out.elements * element, alive,
                           _constant_bytes(op, element, sparse_weights),
                           _latency(op, elements, target)))
    peak = max(rows, key=lambda row: row.live_bytes, default=None)
    file_bytes = tflite_bytes(graph, sparse_weights)
    if element != 1:  # float32: four bytes a weight and a bias, no per-channel arrays
        file_bytes += sum(row.params for row in rows) * (element - 1)
    return CostReport(
        params=graph.params,
        flash_bytes=file_bytes,
        ram_bytes=memory.arena_bytes,
        activation_bytes=memory.activation_bytes,
        live_bytes=memory.live_bytes,
        persistent_bytes=memory.persistent_bytes,
        macs=sum(row.macs for row in rows),
        latency_ms=None if target is None else sum(row.latency_ms or 0.0 for row in rows),
        layers=tuple(rows),
        peak_op=peak.name if peak else "input",
        quant=quant,
        sparse_weights=sparse_weights,
        target=None if target is None else target.name,
        engine=None if target is None or target.throughput is None else target.throughput.engine,
    )


def _constant_bytes(op: Op, element: int, sparse_weights: float) -> int:
    """Bytes of an operator's weights and bias in the file (their data only)."""
    if not op.weights:
        return 0
    weights = math.prod(op.weights)
    if sparse_weights:
        weights = min(weights, weights - math.floor(sparse_weights * weights) + -(-weights // 8))
    return weights * element + op.bias * (4 if element == 1 else element)


def cost(program: ir.Program, point: Mapping[str, object], target: Target | None = None,
         quant: str = "int8", sparse_weights: float = 0.0) -> CostReport:
    """The costs of the network of `program` at `point`, on its deployed graph.

    The point must be valid (`point.validate`): a search validates every candidate
    before pricing it, and repeating that shape inference here would double the
    time of a call. `Space.cost` and `sparsemodc cost` validate first.

    Args:
        program: a compiled program with its input shape.
        point: readable parameter names -> values; missing ones take defaults.
        target: the microcontroller, for latency; None leaves latency out.
        quant: `int8` (the deployed model: int8 weights and activations, int32 biases)
            or `float32` (4 bytes a weight, bias and activation; not confirmed by TFLM).
        sparse_weights: 0 for dense weights (the default: what TFLM and CMSIS-NN read);
            else the fraction of weights pruned, stored as nonzeros plus a bit mask
            (`flash` says which runtime would read that).

    Raises:
        PointError: unknown parameter names, or a layer that cannot be built.
        UsageError: an unknown `quant` or a sparsity outside [0, 1).
    """
    return price(deployed_graph(program, point), target, quant, sparse_weights)


def fit(report: CostReport, target: Target) -> Fit:
    """Compare a report's arena and flash with the target's budgets."""
    problems = [
        f"{what} {used / KB:.1f} KB > {budget / KB:.1f} KB budget"
        for what, used, budget in (
            ("RAM (TFLM arena)", report.ram_bytes, target.ram_budget_bytes),
            ("flash", report.flash_bytes, target.flash_budget_bytes),
        )
        if used > budget
    ]
    reason = f"does not fit {target.name}: {'; '.join(problems)}" if problems else ""
    return Fit(not problems, report.ram_bytes, target.ram_budget_bytes,
               report.flash_bytes, target.flash_budget_bytes, reason)


def fits(program: ir.Program, point: Mapping[str, object], target: Target,
         quant: str = "int8", sparse_weights: float = 0.0) -> Fit:
    """Whether the network at (valid) `point` fits the target's SRAM and flash budgets."""
    return fit(cost(program, point, None, quant, sparse_weights), target)
