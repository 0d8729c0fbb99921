"""The program IR: a search space with every name resolved and every repeat unrolled.

`lower` builds it from the syntax tree. Blocks are inlined, derived values are
substituted, and each `repeat` holds one body per possible instance, so every
searchable parameter exists once with a stable readable name such as
`block[2].layer[1].filters`. Backends (Ax space, builders, cost models,
morphisms) walk this tree; they never look at source text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator, Union

from ..errors import NO_SPAN, Span
from . import functions

Scalar = Union[int, float, str, bool]


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# --- domains ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntDomain:
    """Integers low..high (inclusive), optionally every `step`, optionally log-scaled."""

    low: int
    high: int
    step: int = 1
    log: bool = False
    default: int | None = None

    @property
    def type(self) -> str:
        return "int"


@dataclass(frozen=True, slots=True)
class FloatDomain:
    """Reals in [low, high], optionally log-scaled."""

    low: float
    high: float
    log: bool = False
    default: float | None = None

    @property
    def type(self) -> str:
        return "float"


@dataclass(frozen=True, slots=True)
class ChoiceDomain:
    """One of `values`; `ordered` when their order means something (8 < 16 < 32)."""

    values: tuple[Scalar, ...]
    ordered: bool = False
    default: Scalar | None = None

    @property
    def type(self) -> str:
        return value_type(self.values[0]) if self.values else "int"


@dataclass(frozen=True, slots=True)
class FixedDomain:
    """A single value: part of the space's description, not searched."""

    value: Scalar

    @property
    def type(self) -> str:
        return value_type(self.value)


Domain = Union[IntDomain, FloatDomain, ChoiceDomain, FixedDomain]


def value_type(value: Scalar) -> str:
    """The language type of a Python value: int, float, str or bool."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


# --- parameters --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """A parameter is active only when `param` satisfies this test.

    `op` is `>=` (a repeat count reaches `value`) or `==` (a choose picks an
    alternative, an optional part is present).
    """

    param: str
    op: str
    value: Scalar


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter of the space, named by where it sits."""

    name: str
    domain: Domain
    when: tuple[Condition, ...] = ()
    doc: str = ""
    span: Span = _span()
    #: How often the morphism stage changes it, relative to others (0: frozen).
    morph_weight: float = 1.0

    @property
    def searchable(self) -> bool:
        """False for fixed parameters, which Ax keeps but does not search."""
        return not isinstance(self.domain, FixedDomain)

    @property
    def ax_name(self) -> str:
        """The legal Ax parameter name; see `ax_name`."""
        return ax_name(self.name)


_INDEX = re.compile(r"\[(\d+)\]")


def ax_name(readable: str) -> str:
    """Map a readable name to a legal, one-to-one Ax parameter name.

    `block[2].layer[1].filters` -> `block__2__layer__1__filters`. Identifiers in
    the language never contain `__` nor start with a digit, so the mapping is
    reversible (`readable_name`).
    """
    return _INDEX.sub(r"__\1", readable).replace(".", "__")


def readable_name(ax: str) -> str:
    """Inverse of `ax_name`."""
    out: list[str] = []
    for part in ax.split("__"):
        if part.isdigit():
            out[-1] += f"[{part}]"
        else:
            out.append(part)
    return ".".join(out)


# --- expressions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    """A constant."""

    value: Scalar


@dataclass(frozen=True, slots=True)
class ParamRef:
    """The value of the parameter called `name` at the point being built."""

    name: str


@dataclass(frozen=True, slots=True)
class Builtin:
    """A value bound when the space is compiled or built: `classes`, `in_channels`."""

    name: str


@dataclass(frozen=True, slots=True)
class BinOp:
    """Arithmetic on two expressions: + - * / //."""

    op: str
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True, slots=True)
class Neg:
    """Unary minus."""

    operand: "Expr"


@dataclass(frozen=True, slots=True)
class Func:
    """A built-in function of numbers: `min`, `max`, `round`, `make_divisible`, ..."""

    name: str
    args: tuple["Expr", ...]


Expr = Union[Const, ParamRef, Builtin, BinOp, Neg, Func]


@dataclass(frozen=True, slots=True)
class Pair:
    """A 2-D layer argument written `(height, width)`: a rectangular kernel or stride.

    Only a layer's argument can be one (`LayerSpec` says which); each side is an
    expression of its own, so each side can be searched as a parameter of its own.
    """

    height: Expr
    width: Expr


#: What a layer argument is bound to: an expression, or a pair of them.
ArgExpr = Union[Expr, Pair]

#: Each function's Python implementation, taking the list of its argument values.
FUNCTIONS = {name: impl for name, (impl, _, _) in functions.FUNCTIONS.items()}

BUILTINS = {"classes": "the number of classes", "in_channels": "channels of the layer's input",
            "outputs": "the size of the output vector (the classes of a classifier)"}
#: The spatial sizes of a layer's input, by name: (kind, index into its dimensions).
SPATIAL = {"in_height": ("image", 1), "in_width": ("image", 2), "in_length": ("sequence", 0)}
BUILTINS |= {
    "in_height": "height of the layer's input image",
    "in_width": "width of the layer's input image",
    "in_length": "steps of the layer's input sequence",
}
#: Built-in names that stand for another: `outputs` is `classes` under its general name.
BUILTIN_ALIASES = {"outputs": "classes"}
#: The losses a header may declare, and the heads they train.
LOSSES = {"cross_entropy": "a classifier (`classes`)",
          "mse": "regression or reconstruction (`output: vector(N)`)"}


# --- network nodes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layer:
    """A layer with every argument bound (defaults filled in).

    `name` is its readable path, e.g. `block[1].layer[2].conv2d`.
    """

    op: str
    args: tuple[tuple[str, ArgExpr], ...]
    name: str
    span: Span = _span()

    def arg(self, name: str) -> ArgExpr:
        """The bound value of an argument."""
        return dict(self.args)[name]


@dataclass(frozen=True, slots=True)
class Repeat:
    """Up to len(instances) copies of a body; instance i is built when count > i."""

    count: Expr
    instances: tuple[tuple["Node", ...], ...]
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Choose:
    """Exactly one alternative, picked by the parameter `param`."""

    param: str
    alternatives: tuple[tuple[str, tuple["Node", ...]], ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Optional:
    """A body built when the boolean parameter `param` is true."""

    param: str
    body: tuple["Node", ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Residual:
    """output = shortcut(input) + body(input).

    `shortcut` is "identity", "projection", "avgpool" or "auto" (lang/shortcuts.py);
    `name` is the readable name of its place (`stage[2].residual`), which names the
    shortcut's parameter and the projection's module.
    """

    body: tuple["Node", ...]
    span: Span = _span()
    shortcut: "Expr" = field(default_factory=lambda: Const("identity"))
    name: str = "residual"


@dataclass(frozen=True, slots=True)
class TimeDistributed:
    """The body applied to every step of a sequence."""

    body: tuple["Node", ...]
    span: Span = _span()


Node = Union[Layer, Repeat, Choose, Optional, Residual, TimeDistributed]


def nodes(tree: tuple[Node, ...]) -> Iterator[Node]:
    """Every node of a network, depth first, in every repeat instance and alternative."""
    for node in tree:
        yield node
        if isinstance(node, Repeat):
            for body in node.instances:
                yield from nodes(body)
        elif isinstance(node, Choose):
            for _, body in node.alternatives:
                yield from nodes(body)
        elif not isinstance(node, Layer):
            yield from nodes(node.body)


def layers(tree: tuple[Node, ...]) -> Iterator[Layer]:
    """Every layer of a network, depth first, in every instance and alternative."""
    return (node for node in nodes(tree) if isinstance(node, Layer))


def leaves(expr: ArgExpr) -> Iterator[Const | ParamRef | Builtin]:
    """The constants and names of an expression (or both sides of a pair), left to right."""
    if isinstance(expr, Pair):
        yield from leaves(expr.height)
        yield from leaves(expr.width)
    elif isinstance(expr, Neg):
        yield from leaves(expr.operand)
    elif isinstance(expr, BinOp):
        yield from leaves(expr.left)
        yield from leaves(expr.right)
    elif isinstance(expr, Func):
        for arg in expr.args:
            yield from leaves(arg)
    else:
        yield expr


def references(expr: ArgExpr) -> Iterator[str]:
    """Names of the parameters an expression (or both sides of a pair) reads."""
    return (leaf.name for leaf in leaves(expr) if isinstance(leaf, ParamRef))


@dataclass(frozen=True, slots=True)
class Constraint:
    """`left op right` must hold at every point of the space."""

    left: Expr
    op: str
    right: Expr
    span: Span = _span()


#: The costs a constraint may name: what each measures, and its unit without one.
COSTS = {
    "macs": ("count", "multiply-accumulates of one inference"),
    "params": ("count", "weights and biases as deployed (batch norm folded)"),
    "flash": ("bytes", "bytes of the .tflite model"),
    "ram": ("bytes", "bytes of TensorFlow Lite Micro's arena"),
    "latency": ("time", "milliseconds of one inference on the target"),
}
#: Units of cost constraints: what they measure, and their size in bytes or milliseconds.
UNITS = {"B": ("bytes", 1), "KB": ("bytes", 1024), "MB": ("bytes", 1024 * 1024),
         "us": ("time", 0.001), "ms": ("time", 1), "s": ("time", 1000)}


@dataclass(frozen=True, slots=True)
class CostConstraint:
    """`left op right` over costs (`Builtin` names in `COSTS`) and parameters, which the
    search checks on each point's priced network before training it. Costs are counted
    in `unit` (bytes and milliseconds without one)."""

    left: Expr
    op: str
    right: Expr
    unit: str | None = None
    span: Span = _span()


def costs(expr: Expr) -> Iterator[str]:
    """Names of the costs an expression reads."""
    return (leaf.name for leaf in leaves(expr)
            if isinstance(leaf, Builtin) and leaf.name in COSTS)


@dataclass(frozen=True, slots=True)
class InputSpec:
    """The network's input: its kind and, when known, its shape.

    `searched` names, per dimension, the parameter that searches that size (None: the
    size is fixed); it is empty when no size is searched. A searched size's entry in
    `shape` is the stored data's size, which training resizes to the chosen one.
    """

    kind: str
    shape: tuple[int, ...] | None = None
    searched: tuple[str | None, ...] = ()


@dataclass(frozen=True, slots=True)
class Program:
    """A whole search space: parameters, network, constraints."""

    name: str
    input: InputSpec
    classes: int | None
    parameters: tuple[Parameter, ...]
    network: tuple[Node, ...]
    constraints: tuple[Constraint, ...] = ()
    doc: str = ""
    blocks: tuple[str, ...] = ()
    file: str = field(default="<string>", compare=False)
    #: What training minimises: "cross_entropy" (a classifier, `classes` outputs) or
    #: "mse" (regression or reconstruction: `output: vector(n)`, `classes` is then n).
    loss: str = "cross_entropy"
    #: Constraints on costs (`macs <= 2_000_000`), checked on priced points.
    cost_constraints: tuple[CostConstraint, ...] = ()

    @property
    def searchable(self) -> tuple[Parameter, ...]:
        """The parameters an optimiser chooses (fixed ones excluded)."""
        return tuple(p for p in self.parameters if p.searchable)

    def parameter(self, name: str) -> Parameter:
        """The parameter with readable name `name`."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)
