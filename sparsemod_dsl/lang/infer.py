"""Shape inference over the program IR, for a whole space or for one point.

An `Evaluator` says what values expressions take and which repeats, choices and
optional parts are built. `SpaceEvaluator` answers with every possibility
(intervals, all alternatives), so an error found with it holds at every point:
the checker reports those. A point evaluator (used for validation) answers
with the point's single values, so the same walk tells whether that point
builds, and why not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

from ..errors import Span
from . import arith, ir, shortcuts
from .intervals import evaluate, interval_of
from .layers import (
    KIND_WORDS,
    LAYERS,
    PADDING_MODES,
    Args,
    ArgSpec,
    ArgValue,
    LayerError,
)
from .shapes import Interval, Shape


class Evaluator(Protocol):
    """How inference sees values and structure."""

    def value(self, expr: ir.Expr, channels: Interval, shape: Shape | None = None) -> ArgValue:
        """The value(s) of an expression; `channels` is the layer's input channels,
        `shape` its input shape (for `in_height`, ...: None outside a layer's arguments)."""
        ...

    def counts(self, node: ir.Repeat) -> range:
        """The instance counts of a repeat to consider."""
        ...

    def alternatives(self, node: ir.Choose) -> Iterable[str]:
        """The alternatives of a choose to consider."""
        ...

    def presence(self, node: ir.Optional) -> Iterable[bool]:
        """Whether an optional part is built (both, for a whole space)."""
        ...


@dataclass
class SpaceEvaluator:
    """Answers with every possibility of the space."""

    program: ir.Program
    domains: dict[str, ir.Domain] = field(init=False)

    def __post_init__(self) -> None:
        self.domains = {p.name: p.domain for p in self.program.parameters}

    def value(self, expr: ir.Expr, channels: Interval, shape: Shape | None = None) -> ArgValue:
        def leaf(node: ir.ParamRef | ir.Builtin) -> ArgValue:
            if isinstance(node, ir.ParamRef):
                return interval_of(self.domains[node.name])
            if node.name == "in_channels":
                return channels
            if node.name in ir.SPATIAL:
                return Interval(1, float("inf")) if shape is None else spatial(node.name, shape)
            if node.name == "classes" and self.program.classes is not None:
                return Interval.of(self.program.classes)
            return Interval(1, float("inf"))

        return evaluate(expr, leaf)

    def counts(self, node: ir.Repeat) -> range:
        value = self.value(node.count, Interval.of(1))
        assert isinstance(value, Interval)
        return range(int(value.lo), int(value.hi) + 1)

    def alternatives(self, node: ir.Choose) -> Iterable[str]:
        return [name for name, _ in node.alternatives]

    def presence(self, node: ir.Optional) -> Iterable[bool]:
        return (False, True)


def spatial(name: str, shape: Shape) -> Interval:
    """The size `in_height`, `in_width` or `in_length` names in a layer's input `shape`.

    Raises:
        arith.Fault: the input is not of the kind that has this size.
    """
    kind, index = ir.SPATIAL[name]
    if shape.kind != kind:
        raise arith.Fault(f"'{name}' is a size of {KIND_WORDS[kind]}, but the layer's input "
                          f"here is {KIND_WORDS[shape.kind]} ({shape})")
    return shape.dims[index]


@dataclass(frozen=True)
class ShapeIssue:
    """Why a layer or construct cannot be built."""

    span: Span
    where: str
    message: str
    arg: str | None = None
    #: Where in the space the construct exists (`r >= 4`, `kind is plain`); () everywhere.
    conditions: tuple[str, ...] = ()


class Inference:
    """Walks the network, computing shapes and recording the first issue per place."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.issues: list[ShapeIssue] = []
        self.shapes: list[tuple[ir.Layer, Shape, Shape]] = []
        self.conditions: list[str] = []
        self._seen: set[tuple[Span, str]] = set()

    def report(self, span: Span, where: str, message: str, arg: str | None = None) -> None:
        if (span, message) not in self._seen:
            self._seen.add((span, message))
            self.issues.append(ShapeIssue(span, where, message, arg, tuple(self.conditions)))

    def run_if(
        self, condition: str | None, nodes: tuple[ir.Node, ...], shape: Shape
    ) -> Shape | None:
        """Like `run`, for a part built only where `condition` holds (None: always)."""
        if condition is None:
            return self.run(nodes, shape)
        self.conditions.append(condition)
        try:
            return self.run(nodes, shape)
        finally:
            self.conditions.pop()

    def run(self, nodes: tuple[ir.Node, ...], shape: Shape) -> Shape | None:
        """The output shape of `nodes` for input `shape`, or None if nothing builds."""
        current: Shape | None = shape
        for node in nodes:
            if current is None:
                return None
            current = self.node(node, current)
        return current

    def node(self, node: ir.Node, shape: Shape) -> Shape | None:
        if isinstance(node, ir.Layer):
            return self.layer(node, shape)
        if isinstance(node, ir.Repeat):
            return self.repeat(node, shape)
        if isinstance(node, ir.Choose):
            picked = set(self.evaluator.alternatives(node))
            outs = {
                name: self.run_if(f"{node.param} is {name}" if len(picked) > 1 else None,
                                  body, shape)
                for name, body in node.alternatives
                if name in picked
            }
            return self.merge(outs, node.span, f"the alternatives of '{node.param}'")
        if isinstance(node, ir.Optional):
            presence = tuple(self.evaluator.presence(node))
            outs = {
                str(present): self.run_if(f"{node.param} is true" if len(presence) > 1 else None,
                                          node.body, shape) if present else shape
                for present in presence
            }
            return self.merge(outs, node.span, f"'{node.param}' present and absent")
        if isinstance(node, ir.Residual):
            return self.residual(node, shape)
        return self.time_distributed(node, shape)

    def layer(self, node: ir.Layer, shape: Shape) -> Shape | None:
        try:
            out, _ = apply_layer(node, shape, self.evaluator)
        except LayerError as error:
            self.report(node.span, node.name, error.message, error.arg)
            return None
        self.shapes.append((node, shape, out))
        return out

    def repeat(self, node: ir.Repeat, shape: Shape) -> Shape | None:
        counts = self.evaluator.counts(node)
        result: Shape | None = shape if 0 in counts else None
        current: Shape | None = shape
        for i, body in enumerate(node.instances, start=1):
            if i > counts.stop - 1 or current is None:
                break
            condition = f"{_count_name(node)} >= {i}" if i > counts.start else None
            current = self.run_if(condition, body, current)
            if current is not None and i in counts:
                result = current if result is None else self.hull(result, current, node.span)
        return result

    def merge(self, outs: dict[str, Shape | None], span: Span, what: str) -> Shape | None:
        live = {k: v for k, v in outs.items() if v is not None}
        if not live:
            return None
        kinds = {v.kind for v in live.values()}
        if len(kinds) > 1:
            shown = ", ".join(f"{k}: {KIND_WORDS[v.kind]}" for k, v in live.items())
            self.report(span, what, f"{what} give different kinds of output ({shown})")
            return None
        result: Shape | None = None
        for out in live.values():
            result = out if result is None else self.hull(result, out, span)
        return result

    @staticmethod
    def hull(a: Shape, b: Shape, span: Span) -> Shape:
        return a.hull(b) if a.kind == b.kind else a

    def residual(self, node: ir.Residual, shape: Shape) -> Shape | None:
        out = self.run(node.body, shape)
        if out is None:
            return None
        written = self.evaluator.value(node.shortcut, shape.channels)
        assert isinstance(written, frozenset)  # lowering checked the values
        issue = shortcuts.space_issue(written, shape, out)
        if issue is not None:
            self.report(node.span, "residual", issue)
            return None
        return shape if written == {"identity"} else out

    def time_distributed(self, node: ir.TimeDistributed, shape: Shape) -> Shape | None:
        if shape.kind != "sequence":
            self.report(
                node.span, "time_distributed",
                f"time_distributed takes a sequence, but its input here is {shape}",
            )
            return None
        steps, features = shape.dims
        out = self.run(node.body, Shape("vector", (features,)))
        if out is None:
            return None
        if out.kind != "vector":
            self.report(node.span, "time_distributed",
                        "the body of time_distributed must end in a vector")
            return None
        return Shape("sequence", (steps, out.dims[0]))


def apply_layer(
    node: ir.Layer, shape: Shape, evaluator: Evaluator
) -> tuple[Shape, dict[str, ArgValue]]:
    """A layer's output shape for input `shape`, and its argument values.

    Raises:
        LayerError: the layer cannot be built here; the message says why, naming
            the layer, and `arg` the argument at fault, if one is.
    """
    spec = LAYERS[node.op]
    if shape.kind not in spec.inputs:
        wanted = " or ".join(KIND_WORDS[k] for k in sorted(spec.inputs))  # type: ignore[index]
        raise LayerError(f"'{node.op}' takes {wanted}, but its input here is "
                         f"{KIND_WORDS[shape.kind]} ({shape})" + _kind_hint(node.op, shape))
    values: dict[str, ArgValue] = {}
    for name, expr in node.args:
        arg = spec.arg(name)
        assert arg is not None
        if isinstance(expr, ir.Pair):
            height = _arg_value(node.op, arg, expr.height, shape, evaluator)
            width = _arg_value(node.op, arg, expr.width, shape, evaluator)
            values[name] = (height, width)  # type: ignore[assignment]
        else:
            values[name] = _arg_value(node.op, arg, expr, shape, evaluator)
    try:
        out = spec.rule(shape, Args(values))
    except LayerError as error:
        raise LayerError(f"'{node.op}': {error.message}", error.arg) from None
    if any(d.hi > arith.MAX_INT for d in out.dims):
        if any(d.lo > arith.MAX_INT for d in out.dims):
            raise LayerError(f"'{node.op}' gives {out}: a dimension above 2**53")
        # the points with larger dimensions fail: leave them out
        out = Shape(out.kind, tuple(Interval(d.lo, min(d.hi, arith.MAX_INT)) for d in out.dims))
    return out, values


def _arg_value(op: str, arg: ArgSpec, expr: ir.Expr, shape: Shape,
               evaluator: Evaluator) -> ArgValue:
    """The legal values of one argument (or one side of a pair) of a layer."""
    try:
        value = legal(evaluator.value(expr, shape.channels, shape), arg)
    except arith.Fault as fault:  # only at a point: a space has intervals
        raise LayerError(f"'{op}' argument '{arg.name}' cannot be computed: "
                         f"{fault.message}", arg.name) from None
    if value is None:
        raise LayerError(f"'{op}' argument '{arg.name}' must be {arg.legal()}", arg.name)
    return value


def legal(value: ArgValue, arg: ArgSpec) -> ArgValue | None:
    """The values of an argument a layer can be built with: legal and finite.

    Expressions can reach illegal values (`stride = x - 1`) or none
    (`4 // x`, unbounded); the points with illegal values build nothing, so
    shapes are inferred from the rest. None when no value is legal. Shape rules
    see at most 2**53 (the largest integer), so that they compute with finite numbers.
    """
    if not isinstance(value, Interval):  # a flag or a padding mode, else a wrong value
        if arg.type == "padding":
            return value if all(mode in PADDING_MODES for mode in value) else None
        return value if arg.type == "bool" else None
    least: float
    if arg.lo is not None:
        least = arg.lo
    else:  # padding is never negative
        least = 0 if arg.type == "padding" else -arith.MAX_INT
    most = arith.MAX_INT if arg.hi is None else arg.hi
    lo = value.lo if value.lo > least else least  # also replaces NaN
    hi = value.hi if value.hi < most else most
    return Interval(lo, hi) if lo <= hi else None


def _count_name(node: ir.Repeat) -> str:
    """The parameter behind a repeat's count, for conditions in messages."""
    return node.count.name if isinstance(node.count, ir.ParamRef) else node.name


def _kind_hint(op: str, shape: Shape) -> str:
    if op == "linear" and shape.kind == "image":
        return "; add `flatten` or `global_avg_pool` before it"
    if op in ("lstm", "gru") and shape.kind == "image":
        return "; add `to_sequence` before it"
    if op.endswith("2d") and shape.kind == "sequence":
        return "; add `to_image` before it, or use conv1d"
    return ""


MAX_LEN = "train.max_len"


def outside_limits(shape: Shape) -> bool:
    """True when a dimension may be below 1 or above 2**53."""
    return any(d.lo < 1 or d.hi > arith.MAX_INT for d in shape.dims)


def input_shape(program: ir.Program, evaluator: Evaluator) -> Shape | None:
    """The network's input shape, when known.

    For sequences, a `max_len` training parameter (the sequence splitter) sets
    the number of steps the network sees.
    """
    if program.input.shape is None:
        return None
    shape = Shape.exact(program.input.kind, *program.input.shape)  # type: ignore[arg-type]
    if program.input.searched:
        shape = Shape(shape.kind, tuple(
            dim if name is None else _size(evaluator, name)
            for dim, name in zip(shape.dims, program.input.searched)
        ))
    if shape.kind == "sequence" and any(p.name == MAX_LEN for p in program.parameters):
        steps = evaluator.value(ir.ParamRef(MAX_LEN), Interval.of(1))
        if not isinstance(steps, Interval):
            raise arith.Fault(f"{MAX_LEN} is not a number")
        return Shape("sequence", (steps, shape.dims[1]))
    return shape


def _size(evaluator: Evaluator, name: str) -> Interval:
    """The values of a searched input size (a header parameter)."""
    size = evaluator.value(ir.ParamRef(name), Interval.of(1))
    if not isinstance(size, Interval):
        raise arith.Fault(f"the input size {name} is not a number")
    return size
