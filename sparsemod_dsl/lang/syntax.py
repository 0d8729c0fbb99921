"""The syntax tree of one `.arch` file: what the parser builds and `fmt` prints.

Nodes are small frozen dataclasses. Each carries a `Span`; equality ignores
spans (and presentation such as blank lines or how a number was spelled), so
two files that differ only in layout compare equal. Statements also carry the
comments written before them and at the end of their line.

Names are resolved, blocks inlined and repeats unrolled later, by `lower`,
which turns this tree into the program IR (`ir`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..errors import NO_SPAN, Span


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """Base of every syntax node: a source span that equality ignores."""

    span: Span = _span()


@dataclass(frozen=True, slots=True, kw_only=True)
class Stmt(Node):
    """A statement or file-level item: it can have comments around it."""

    comments: tuple[str, ...] = ()
    trailing: str | None = None
    blank_before: bool = field(default=False, compare=False, repr=False)


# --- expressions ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Number(Node):
    """An int or float literal; `text` keeps the spelling (`1e-4`) for `fmt`."""

    value: int | float
    text: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class String(Node):
    """A double-quoted string literal."""

    value: str


@dataclass(frozen=True, slots=True)
class Bool(Node):
    """`true` or `false`."""

    value: bool


@dataclass(frozen=True, slots=True)
class Segment(Node):
    """One step of a reference path: `block` or `block[2]`."""

    name: str
    index: int | None = None


@dataclass(frozen=True, slots=True)
class Ref(Node):
    """A reference to a parameter or value: `filters`, `block[2].conv.filters`."""

    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        """The reference as written, e.g. `block[2].filters`."""
        return ".".join(
            s.name if s.index is None else f"{s.name}[{s.index}]" for s in self.segments
        )


@dataclass(frozen=True, slots=True)
class BinOp(Node):
    """Arithmetic: `op` is one of + - * / //."""

    op: str
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True, slots=True)
class Neg(Node):
    """Unary minus."""

    operand: "Expr"


@dataclass(frozen=True, slots=True)
class Func(Node):
    """A built-in function: `max(1, in_channels // 4)`, `min(a, b)`."""

    name: str
    args: tuple["Expr", ...]


Literal = Union[Number, String, Bool]
Expr = Union[Number, String, Bool, Ref, BinOp, Neg, Func]


# --- domains: the values a searchable parameter can take ----------------------------


@dataclass(frozen=True, slots=True)
class IntRange(Node):
    """`int[low..high]` with optional `step`, `log`, `default` and morph weight."""

    low: Number
    high: Number
    step: Number | None = None
    log: bool = False
    default: Literal | None = None
    morph: Number | None = None


@dataclass(frozen=True, slots=True)
class FloatRange(Node):
    """`float[low..high]` with optional `log`, `default` and morph weight."""

    low: Number
    high: Number
    log: bool = False
    default: Literal | None = None
    morph: Number | None = None


@dataclass(frozen=True, slots=True)
class Choice(Node):
    """`choice[a, b, ...]`, unordered unless marked `ordered`."""

    values: tuple[Literal, ...]
    ordered: bool = False
    default: Literal | None = None
    morph: Number | None = None


Domain = Union[IntRange, FloatRange, Choice]


@dataclass(frozen=True, slots=True)
class Pair(Node):
    """`(height, width)`: a 2-D kernel or stride, each side a value of its own.

    The grammar takes any number of items so that the checker, not the parser,
    says that a pair has two.
    """

    items: tuple["Value", ...]


Value = Union[IntRange, FloatRange, Choice, Pair, Number, String, Bool, Ref, BinOp, Neg, Func]


# --- statements -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Body(Node):
    """A braced list of statements, with comments left after the last one."""

    stmts: tuple["Statement", ...] = ()
    end_comments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Docstring(Stmt):
    """`\"\"\"text\"\"\"`: documents the file or the enclosing block."""

    text: str


@dataclass(frozen=True, slots=True)
class Param(Stmt):
    """`name = value`: a searchable or fixed parameter, or a derived value."""

    name: str
    value: Value
    name_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Arg(Node):
    """One argument of a call, positional (`name` is None) or by keyword."""

    name: str | None
    value: Value


@dataclass(frozen=True, slots=True)
class Call(Stmt):
    """A layer (`conv2d(8, 3)`) or a block call (`conv_layer`), maybe labelled."""

    name: str
    args: tuple[Arg, ...] = ()
    label: str | None = None
    name_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Repeat(Stmt):
    """`repeat name = count { body }`: the body `count` times, each with own parameters."""

    name: str
    count: Value
    body: Body
    #: `as i`: the name of the instance's number (1, 2, ...) inside the body.
    index: str | None = None


@dataclass(frozen=True, slots=True)
class Alternative(Stmt):
    """One labelled alternative of a `choose`."""

    name: str
    body: Body
    braced: bool = field(default=False, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Choose(Stmt):
    """`choose name { a: ...  b: ... }`: exactly one alternative is built."""

    name: str
    alternatives: tuple[Alternative, ...]
    default: Literal | None = None
    end_comments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Optional(Stmt):
    """`optional name { body }`: the body is built or skipped."""

    name: str
    body: Body
    default: Literal | None = None


@dataclass(frozen=True, slots=True)
class Residual(Stmt):
    """`residual(shortcut = ...) { body }`: output = shortcut(input) + body(input)."""

    body: Body
    args: tuple[Arg, ...] = ()
    label: str | None = None


@dataclass(frozen=True, slots=True)
class TimeDistributed(Stmt):
    """`time_distributed { body }`: the body runs on every step of a sequence."""

    body: Body


@dataclass(frozen=True, slots=True)
class Constraint(Stmt):
    """`constraint left OP right` between parameters and costs, maybe with a unit."""

    left: Expr
    op: str
    right: Expr
    #: `KB`, `ms`, ...: the unit the constraint's costs are counted in.
    unit: str | None = None


Statement = Union[
    Docstring, Param, Call, Repeat, Choose, Optional, Residual, TimeDistributed, Constraint
]


# --- file-level items --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchParam(Node):
    """One parameter of the `arch` header: `input: image(1, 8, 8)`, `classes = 10`,
    `output: vector(640)` or `loss = mse` (a name as the value).

    A shape's size may be a name (`image(3, res, res)`): a header parameter declared
    with a domain (`res = choice[48, 64] ordered`, held in `domain`) that is searched.
    """

    name: str
    kind: str | None = None
    shape: tuple[int | str, ...] | None = None
    value: int | str | None = None
    domain: IntRange | FloatRange | Choice | None = None


@dataclass(frozen=True, slots=True)
class ArchHeader(Stmt):
    """`arch name(input: image, classes)`: the network's name and contract."""

    name: str
    params: tuple[ArchParam, ...]


@dataclass(frozen=True, slots=True)
class Import(Stmt):
    """`import blocks` (a stdlib or sibling file) or `import "path.arch"`."""

    target: str
    is_path: bool = False


@dataclass(frozen=True, slots=True)
class TrainSection(Stmt):
    """`train { ... }`: training hyperparameters, searched with the architecture."""

    body: Body


@dataclass(frozen=True, slots=True)
class NetworkSection(Stmt):
    """`network { ... }`: the layers of the network, input to output."""

    body: Body


@dataclass(frozen=True, slots=True)
class Formal(Node):
    """A block parameter: `filters` (required) or `filters = int[1..100]`."""

    name: str
    default: Value | None = None


@dataclass(frozen=True, slots=True)
class BlockDef(Stmt):
    """`block name(formals) { body }`: a reusable, parameterised template.

    `morph` is its morph weight (`morph 2`; `frozen` is 0), given to the
    parameters it declares that have none of their own.
    """

    name: str
    formals: tuple[Formal, ...]
    body: Body
    morph: Number | None = None


Item = Union[
    Docstring, ArchHeader, Import, TrainSection, NetworkSection, BlockDef, Constraint
]


@dataclass(frozen=True, slots=True)
class Module(Node):
    """A whole `.arch` file."""

    items: tuple[Item, ...]
    end_comments: tuple[str, ...] = ()
    file: str = field(default="<string>", compare=False)
