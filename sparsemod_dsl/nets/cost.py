"""Hardware cost models on the IR: parameters, flash, peak RAM, MACs and latency.

`cost(program, point, target)` walks the trace of a point (`trace`: every active
layer with exact shapes, in execution order) and prices each layer without
building anything: parameters as torch counts them, flash bytes at the chosen
precision (with a sparse encoding when pruning leaves a known sparsity), the
activation bytes alive while the layer runs, MACs, and cycles from the target's
per-operator throughput. `fits` compares the result with the target's budgets,
so that a search can reject a point before training it.

Sizes are bytes, latencies milliseconds, KB = 1024 bytes. docs/cost-models.md
states every formula and where each figure comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple

from ..errors import UsageError
from ..lang import ir
from ..lang.shapes import Shape
from .targets import KB, Target
from .trace import Step, trace

#: Bytes of one weight and of one activation element at each precision.
QUANTS: dict[str, tuple[int, int]] = {"int8": (1, 1), "float32": (4, 4)}
#: Bytes of a bias (int32 when quantised, float32 otherwise) and of one batch-norm value.
BIAS_BYTES = 4
#: Bytes of the per-output-channel quantisation parameters: float32 scale + int32 zero point.
QPARAM_BYTES = 8

#: Layers into which a batch norm right after them folds (as `SparsemodNet.fuse_model` does).
_FOLDS_BN = frozenset({"conv2d", "conv1d", "sepconv2d", "dwconv2d", "downconv2d", "linear"})


@dataclass(slots=True)  # not frozen: frozen dataclasses take 4x as long to create
class LayerCost:
    """One row of the per-layer table (bytes, MACs, milliseconds).

    `activation_bytes` is the layer's output; `ram_bytes` every activation alive
    while it runs (its input, output and internal tensors, and residual inputs
    kept for a later add). Rows of a time-distributed body cover all its steps.
    """

    name: str
    op: str
    output: tuple[int, ...]
    params: int
    macs: int
    activation_bytes: int
    ram_bytes: int
    flash_bytes: int
    latency_ms: float | None


@dataclass(frozen=True)
class CostReport:
    """The costs of one point: totals, and the per-layer table in execution order.

    `peak_layer` names the row that sets `peak_ram_bytes` ("input" for a
    network without layers). `latency_ms` is None without a target.
    """

    params: int
    flash_bytes: int
    peak_ram_bytes: int
    macs: int
    latency_ms: float | None
    layers: tuple[LayerCost, ...]
    peak_layer: str
    quant: str
    sparsity: float
    target: str | None


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


class _Spec(NamedTuple):
    """What a layer is made of, per example (activation sizes in elements).

    `weights` lists (elements, output channels) of each weight tensor; `macs`
    (operator class, MACs) per kernel; `inner` the tensors a composite layer
    makes between its kernels; `state` the recurrent state kept while it runs.
    """

    params: int = 0
    weights: tuple[tuple[int, int], ...] = ()
    biases: int = 0
    macs: tuple[tuple[str, int], ...] = ()
    elementwise: bool = False
    inner: tuple[int, ...] = ()
    state: int = 0


def _kernel_class(kernel: int) -> str:
    return "pointwise" if kernel == 1 else "conv"


def _conv2d(x: tuple[int, ...], y: tuple[int, ...], a: Mapping[str, ir.Scalar]) -> _Spec:
    filters, kernel, groups = int(a["filters"]), int(a["kernel"]), int(a["groups"])
    weights = filters * (x[0] // groups) * kernel * kernel
    bias = filters if a["bias"] else 0
    return _Spec(weights + bias, ((weights, filters),), bias,
                 ((_kernel_class(kernel), math.prod(y[1:]) * weights),))


def _conv1d(x: tuple[int, ...], y: tuple[int, ...], a: Mapping[str, ir.Scalar]) -> _Spec:
    filters, kernel, groups = int(a["filters"]), int(a["kernel"]), int(a["groups"])
    weights = filters * (x[1] // groups) * kernel
    bias = filters if a["bias"] else 0
    return _Spec(weights + bias, ((weights, filters),), bias,
                 ((_kernel_class(kernel), y[0] * weights),))


def _dwconv2d(x: tuple[int, ...], y: tuple[int, ...], a: Mapping[str, ir.Scalar]) -> _Spec:
    channels = x[0] * int(a["multiplier"])
    weights = channels * int(a["kernel"]) ** 2
    return _Spec(weights + channels, ((weights, channels),), channels,
                 (("depthwise", math.prod(y[1:]) * weights),))


def _sepconv2d(x: tuple[int, ...], y: tuple[int, ...], a: Mapping[str, ir.Scalar]) -> _Spec:
    middle, filters = x[0] * int(a["multiplier"]), int(a["filters"])
    depthwise, pointwise = middle * int(a["kernel"]) ** 2, middle * filters
    positions = math.prod(y[1:])
    return _Spec(depthwise + middle + pointwise + filters,
                 ((depthwise, middle), (pointwise, filters)), middle + filters,
                 (("depthwise", positions * depthwise), ("pointwise", positions * pointwise)),
                 inner=(middle * positions,))


def _downconv2d(x: tuple[int, ...], y: tuple[int, ...], a: Mapping[str, ir.Scalar]) -> _Spec:
    filters, kernel = int(a["filters"]), int(a["kernel"])
    bottleneck = max(1, round(float(a["ratio"]) * x[0]))  # as netlib.NetBuilder.downconv2d
    reduce, conv = x[0] * bottleneck, filters * bottleneck * kernel * kernel
    return _Spec(reduce + bottleneck + conv + filters,
                 ((reduce, bottleneck), (conv, filters)), bottleneck + filters,
                 (("pointwise", math.prod(x[1:]) * reduce),
                  (_kernel_class(kernel), math.prod(y[1:]) * conv)),
                 inner=(bottleneck * math.prod(x[1:]),))


def _linear(x: tuple[int, ...], y: tuple[int, ...], a: Mapping[str, ir.Scalar]) -> _Spec:
    units = int(a["units"])
    weights = x[-1] * units
    bias = units if a["bias"] else 0
    return _Spec(weights + bias, ((weights, units),), bias,
                 (("linear", math.prod(x[:-1]) * weights),))


def _recurrent(gates: int, state_per_layer: int) -> Callable[..., _Spec]:
    def spec(x: tuple[int, ...], y: tuple[int, ...], a: Mapping[str, ir.Scalar]) -> _Spec:
        steps, features = x
        hidden, layers = int(a["hidden"]), int(a["layers"])
        rows = gates * hidden
        weights: list[tuple[int, int]] = []
        for layer in range(layers):
            weights += [(rows * (features if layer == 0 else hidden), rows), (rows * hidden, rows)]
        total = sum(n for n, _ in weights)
        return _Spec(total + 2 * rows * layers, tuple(weights), 2 * rows * layers,
                     (("recurrent", steps * total),), state=state_per_layer * layers * hidden)
    return spec


def _batchnorm(x: tuple[int, ...], y: tuple[int, ...], a: Mapping[str, ir.Scalar]) -> _Spec:
    channels = x[0] if len(x) == 3 else x[-1]
    return _Spec(params=2 * channels, elementwise=True)


def _elementwise(x: tuple[int, ...], y: tuple[int, ...], a: Mapping[str, ir.Scalar]) -> _Spec:
    return _Spec(elementwise=True)


def _reshape(x: tuple[int, ...], y: tuple[int, ...], a: Mapping[str, ir.Scalar]) -> _Spec:
    return _Spec()


#: How each layer of the language is priced (keys: `layers.LAYERS`).
SPECS: dict[str, Callable[..., _Spec]] = {
    "conv2d": _conv2d,
    "conv1d": _conv1d,
    "dwconv2d": _dwconv2d,
    "sepconv2d": _sepconv2d,
    "downconv2d": _downconv2d,
    "linear": _linear,
    "lstm": _recurrent(4, 2),
    "gru": _recurrent(3, 1),
    "batchnorm": _batchnorm,
    "relu": _elementwise,
    "relu6": _elementwise,
    "maxpool": _elementwise,
    "avgpool": _elementwise,
    "global_avg_pool": _elementwise,
    "dropout": _reshape,
    "flatten": _reshape,
    "to_sequence": _reshape,
    "to_image": _reshape,
}


class _Walk:
    """Prices the steps of a trace one by one, tracking which tensors are alive.

    A tensor is (id, elements per example); `saved` holds the inputs of open
    residual bodies, `steps` the step counts of open time-distributed bodies.
    """

    def __init__(self, quant: str, sparsity: float, target: Target | None,
                 input_elements: int) -> None:
        self.weight_bytes, self.act_bytes = QUANTS[quant]
        self.quantised = quant == "int8"
        self.sparsity = sparsity
        self.target = target
        self.current = (0, input_elements)
        self.ids = 0
        self.saved: list[tuple[int, int]] = []
        self.steps: list[int] = []
        self.last: tuple[Shape | None, tuple[int, ...]] = (None, ())
        self.repeat = 1  # copies of each tensor inside time-distributed bodies (their steps)
        self.folds_into: tuple[str, bool] | None = None  # (op, has bias) of a preceding conv
        self.rows: list[LayerCost] = []
        self.names: dict[str, int] = {}

    def step(self, step: Step) -> None:
        if step.kind == "layer":
            self.layer(step)
            return
        self.folds_into = None
        if step.kind == "residual_begin":
            self.saved.append(self.current)
        elif step.kind == "residual_end":
            self.residual_add(step.output)
        elif step.kind == "time_distributed_begin":
            self.steps.append(step.input.sizes()[0])
            self.repeat *= self.steps[-1]
        else:
            self.repeat //= self.steps.pop()

    def sizes(self, shape: Shape) -> tuple[int, ...]:
        """`shape.sizes()`, remembered: a layer's input is the previous one's output."""
        if shape is not self.last[0]:
            self.last = (shape, shape.sizes())
        return self.last[1]

    def fresh(self, elements: int) -> tuple[int, int]:
        self.ids += 1
        return (self.ids, elements)

    def kept(self, *reading: int) -> int:
        """Elements of the residual inputs kept for later, each once, less those in
        `reading` (tensor ids) that the running kernel counts already."""
        if not self.saved:
            return 0
        return sum(elements for tensor, elements in set(self.saved) if tensor not in reading)

    def layer(self, step: Step) -> None:
        assert step.layer is not None
        op = step.layer.op
        x, y = self.sizes(step.input), self.sizes(step.output)
        spec = SPECS[op](x, y, step.args)
        repeat = self.repeat
        out = self.fresh(math.prod(y) * repeat)
        ram = self.ram(spec, out[1], repeat) * self.act_bytes
        folded = op == "batchnorm" and self.folds_into is not None
        flash = self.flash(spec, op, folded)
        self.folds_into = (op, bool(step.args.get("bias", True))) if op in _FOLDS_BN else None
        macs = spec.macs if repeat == 1 else tuple((k, n * repeat) for k, n in spec.macs)
        elementwise = out[1] if spec.elementwise and not folded else 0
        shape = (*self.steps, *y) if self.steps else y
        self.add_row(step.layer.name, op, shape, spec.params, macs, out[1], ram, flash,
                     elementwise)
        self.current = out

    def ram(self, spec: _Spec, out: int, repeat: int) -> int:
        """Elements alive while a layer runs: the most over its kernels, which run one
        after the other (input -> inner tensors of a composite layer -> output)."""
        state = spec.state * repeat
        if not spec.inner:
            return self.current[1] + out + state + self.kept(self.current[0])
        running, peak = self.current, 0
        for made in (*(n * repeat for n in spec.inner), out):
            peak = max(peak, running[1] + made + state + self.kept(running[0]))
            running = self.fresh(made)
        return peak

    def flash(self, spec: _Spec, op: str, folded: bool) -> int:
        """Flash bytes of a layer's constants."""
        if op == "batchnorm":
            channels = spec.params // 2
            if not folded:
                return 2 * channels * BIAS_BYTES  # scale and shift
            assert self.folds_into is not None
            return 0 if self.folds_into[1] else channels * BIAS_BYTES  # the bias folding adds
        qparams = QPARAM_BYTES if self.quantised else 0
        return (sum(self.sparse(n) + qparams * channels for n, channels in spec.weights)
                + spec.biases * BIAS_BYTES)

    def sparse(self, elements: int) -> int:
        """Bytes of a weight tensor, a fraction `sparsity` of it pruned: dense, or the
        nonzero weights plus a one-bit-per-weight mask, whichever is smaller."""
        dense = elements * self.weight_bytes
        nonzero = elements - math.floor(self.sparsity * elements)
        return min(dense, nonzero * self.weight_bytes + -(-elements // 8))

    def residual_add(self, output: Shape) -> None:
        kept = self.saved.pop()
        out = self.fresh(math.prod(output.sizes()) * self.repeat)
        held = self.current[1] + kept[1] + out[1] + self.kept(kept[0], self.current[0])
        shape = (*self.steps, *output.sizes()) if self.steps else output.sizes()
        self.add_row("residual", "add", shape, 0, (), out[1], held * self.act_bytes, 0, out[1])
        self.current = out

    def add_row(self, name: str, op: str, shape: tuple[int, ...], params: int,
                macs: tuple[tuple[str, int], ...], outputs: int, ram: int, flash: int,
                elementwise: int) -> None:
        self.names[name] = self.names.get(name, 0) + 1
        unique = name if self.names[name] == 1 else f"{name}#{self.names[name]}"
        total = sum(n for _, n in macs)
        self.rows.append(LayerCost(unique, op, shape, params, total, outputs * self.act_bytes,
                                   ram, flash, self.latency(macs, total, elementwise)))

    def latency(self, macs: tuple[tuple[str, int], ...], total: int,
                elementwise: int) -> float | None:
        """Milliseconds of one layer on the target (None without a target)."""
        target = self.target
        if target is None:
            return None
        if target.throughput is None:
            assert target.ops_per_second is not None
            return total / target.ops_per_second * 1e3
        rates = target.throughput
        cycles = (sum(n / rates.macs_per_cycle[kind] for kind, n in macs)
                  + elementwise / rates.elementwise_per_cycle + rates.overhead_cycles)
        return cycles / (target.clock_mhz * 1e3)


def cost(program: ir.Program, point: Mapping[str, object], target: Target | None = None,
         quant: str = "int8", sparsity: float = 0.0) -> CostReport:
    """The costs of the network of `program` at `point`, computed from the IR.

    The point must be valid (`point.validate`): a search validates every candidate
    before pricing it, and repeating that shape inference here would double the
    time of a call. `Space.cost` and `sparsemodc cost` validate first.

    Args:
        program: a compiled program with its input shape.
        point: readable parameter names -> values; missing ones take defaults.
        target: the microcontroller, for latency; None leaves latency out.
        quant: `int8` (weights 1 B, biases int32, per-channel qparams, activations 1 B)
            or `float32` (weights, biases and activations 4 B).
        sparsity: the fraction of weights pruned, in [0, 1): weight tensors are then
            stored as nonzeros plus a bit mask when that is smaller.

    Raises:
        PointError: unknown parameter names, or a layer that cannot be built.
        UsageError: an unknown `quant` or a sparsity outside [0, 1).
    """
    if quant not in QUANTS:
        raise UsageError(f"unknown precision '{quant}': use {' or '.join(QUANTS)}")
    if not 0.0 <= sparsity < 1.0:
        raise UsageError(f"sparsity must be in [0, 1), not {sparsity}")
    shape, steps = trace(program, point)
    walk = _Walk(quant, sparsity, target, math.prod(shape.sizes()))
    for step in steps:
        walk.step(step)
    rows = tuple(walk.rows)
    peak = max(rows, key=lambda row: row.ram_bytes, default=None)
    return CostReport(
        params=sum(row.params for row in rows),
        flash_bytes=sum(row.flash_bytes for row in rows),
        peak_ram_bytes=peak.ram_bytes if peak else math.prod(shape.sizes()) * walk.act_bytes,
        macs=sum(row.macs for row in rows),
        latency_ms=None if target is None else sum(row.latency_ms or 0.0 for row in rows),
        layers=rows,
        peak_layer=peak.name if peak else "input",
        quant=quant,
        sparsity=sparsity,
        target=None if target is None else target.name,
    )


def fit(report: CostReport, target: Target) -> Fit:
    """Compare a report's peak RAM and flash with the target's budgets."""
    problems = [
        f"{what} {used / KB:.1f} KB > {budget / KB:.1f} KB budget"
        for what, used, budget in (
            ("peak RAM", report.peak_ram_bytes, target.ram_budget_bytes),
            ("flash", report.flash_bytes, target.flash_budget_bytes),
        )
        if used > budget
    ]
    reason = f"does not fit {target.name}: {'; '.join(problems)}" if problems else ""
    return Fit(not problems, report.peak_ram_bytes, target.ram_budget_bytes,
               report.flash_bytes, target.flash_budget_bytes, reason)


def fits(program: ir.Program, point: Mapping[str, object], target: Target,
         quant: str = "int8", sparsity: float = 0.0) -> Fit:
    """Whether the network at (valid) `point` fits the target's SRAM and flash budgets."""
    return fit(cost(program, point, None, quant, sparsity), target)
