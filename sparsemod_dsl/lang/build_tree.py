"""Lark parse tree -> `syntax` nodes, with the comments attached to their statements.

`parser` runs Lark and hands its tree, the source text and the comments the lexer
collected to `TreeBuilder`, which builds the frozen dataclasses of `syntax`: it
folds domain modifiers, decodes literals, enforces the limits on expressions and
integers, and has `comments` give each comment to its statement. Kept apart from
`parser` so that the grammar setup and syntax-error reporting stay separate from
the node-by-node building.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

from lark import Token, Transformer_NonRecursive, v_args

from ..errors import Diagnostics
from . import syntax as s
from .arith import MAX_INT
from .comments import CommentAttacher

#: Deepest arithmetic expression (in operators) a file may use; lowering applies it
#: again once names are replaced by their values.
MAX_EXPRESSION_DEPTH = 64


def token_span(token: Token, file: str) -> s.Span:
    """Where a lexer token stands in `file` (positions Lark leaves out become 1)."""
    return s.Span(
        file,
        token.line or 1,
        token.column or 1,
        token.end_line or token.line or 1,
        token.end_column or (token.column or 1) + 1,
    )


def _header_value(token: Token | None, integer: Callable[[Token], int]) -> int | str | None:
    """A header parameter's value: a number (`classes = 10`) or a name (`loss = mse`)."""
    if token is None:
        return None
    return str(token) if token.type == "NAME" else integer(token)


class _Modifier:
    """A range or choice modifier before it is folded into its domain."""

    def __init__(self, kind: str, value: Any, span: s.Span) -> None:
        self.kind = kind
        self.value = value
        self.span = span


_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t"}
_ALLOWED_MODIFIERS = {
    "int": ("step", "log", "default", "morph"),
    "float": ("log", "default", "morph"),
    "choice": ("ordered", "default", "morph"),
    "block": ("morph",),
}


@v_args(meta=True)
class TreeBuilder(Transformer_NonRecursive):
    """Turns the Lark parse tree into `syntax` nodes, attaching comments."""

    def __init__(self, file: str, text: str, comments: Sequence[Token]) -> None:
        super().__init__()
        self.file = file
        self.lines = text.split("\n")
        self.comments = CommentAttacher(text, comments)
        self.diagnostics = Diagnostics()
        self.depth: dict[int, int] = {}

    # positions

    def span(self, meta: Any) -> s.Span:
        if getattr(meta, "empty", True):
            return s.NO_SPAN
        return s.Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def tspan(self, token: Token) -> s.Span:
        return token_span(token, self.file)

    # file level

    def start(self, meta: Any, children: list) -> s.Module:
        items = [c for c in children if c is not None]
        end = s.Span(self.file, 1, 1, len(self.lines) + 1, 1)
        items, trailing = self.comments.attach(items, end)
        return s.Module(tuple(items), tuple(trailing), span=end)

    def docstring(self, meta: Any, children: list) -> s.Docstring:
        return s.Docstring(str(children[0])[3:-3], span=self.span(meta))

    def arch_header(self, meta: Any, children: list) -> s.ArchHeader:
        name, *params = children
        params = tuple(p for p in params if p is not None)
        return s.ArchHeader(str(name), params, span=self.span(meta))

    def arch_param(self, meta: Any, children: list) -> s.ArchParam:
        name, kind, shape, value = children
        domain = value if isinstance(value, (s.IntRange, s.FloatRange, s.Choice)) else None
        return s.ArchParam(
            str(name),
            None if kind is None else str(kind),
            shape,
            None if domain is not None else _header_value(value, self.integer),
            domain,
            span=self.span(meta),
        )

    def shape(self, meta: Any, children: list) -> tuple[int | str, ...]:
        return tuple(str(c) if c.type == "NAME" else self.integer(c) for c in children)

    def import_stmt(self, meta: Any, children: list) -> s.Import:
        (target,) = children
        if target.type == "STRING":
            return s.Import(self.decode(target), is_path=True, span=self.span(meta))
        return s.Import(str(target), span=self.span(meta))

    def train_section(self, meta: Any, children: list) -> s.TrainSection:
        return s.TrainSection(children[0], span=self.span(meta))

    def network_section(self, meta: Any, children: list) -> s.NetworkSection:
        return s.NetworkSection(children[0], span=self.span(meta))

    def block_def(self, meta: Any, children: list) -> s.BlockDef:
        name, formals, *marks, body = children
        mods = self.modifiers("block", marks)
        return s.BlockDef(str(name), formals or (), body, mods.get("morph"), span=self.span(meta))

    def formals(self, meta: Any, children: list) -> tuple[s.Formal, ...]:
        return tuple(c for c in children if c is not None)

    def formal(self, meta: Any, children: list) -> s.Formal:
        # `["=" _value]` inlines its rule, so Lark adds no placeholder when it is absent.
        name, default = (children + [None])[:2]
        return s.Formal(str(name), default, span=self.span(meta))

    # statements

    def body(self, meta: Any, children: list) -> s.Body:
        span = self.span(meta)
        stmts, trailing = self.comments.attach([c for c in children if c is not None], span)
        return s.Body(tuple(stmts), tuple(trailing), span=span)

    def param(self, meta: Any, children: list) -> s.Param:
        name, value = children
        return s.Param(str(name), value, name_span=self.tspan(name), span=self.span(meta))

    def call(self, meta: Any, children: list) -> s.Call:
        label, name, args = children
        if str(name) == "constraint":  # only after a layer does the lexer read it as a name
            self.diagnostics.error(
                self.tspan(name), "`constraint` starts a statement: put it on a line of its own")
        return s.Call(
            str(name),
            args or (),
            None if label is None else str(label),
            name_span=self.tspan(name),
            span=self.span(meta),
        )

    def label(self, meta: Any, children: list) -> Token:
        return children[0]

    def args(self, meta: Any, children: list) -> tuple[s.Arg, ...]:
        return tuple(c for c in children if c is not None)

    def arg(self, meta: Any, children: list) -> s.Arg:
        name, value = children
        return s.Arg(None if name is None else str(name), value, span=self.span(meta))

    def repeat(self, meta: Any, children: list) -> s.Repeat:
        name, count, index, body = children
        return s.Repeat(str(name), count, body, None if index is None else str(index),
                        span=self.span(meta))

    def structure_name(self, label: Token | None, name: Token | None, meta: Any,
                       keyword: str) -> str:
        """The name of a `choose` or `optional`: written after the keyword, or as a label."""
        if label is not None and name is not None:
            self.diagnostics.error(
                self.tspan(name),
                f"this {keyword} is named twice, '{label}' and '{name}': write "
                f"`{keyword} {name} {{` or `{name}: {keyword} {{`",
            )
        elif label is None and name is None:
            self.diagnostics.error(
                self.span(meta),
                f"{'an' if keyword == 'optional' else 'a'} {keyword} needs a name: "
                f"`{keyword} NAME {{ ... }}` or "
                f"`NAME: {keyword} {{ ... }}`",
            )
        return str(name or label or "")

    def choose(self, meta: Any, children: list) -> s.Choose:
        label, name, default, *alternatives = children
        name = self.structure_name(label, name, meta, "choose")
        span = self.span(meta)
        found = [a for a in alternatives if a is not None]
        found, trailing = self.comments.attach(found, span)
        return s.Choose(
            str(name),
            tuple(found),
            None if default is None else default.value,
            tuple(trailing),
            span=span,
        )

    def alternative(self, meta: Any, children: list) -> s.Alternative:
        name, *items = children
        if len(items) == 1 and isinstance(items[0], s.Body):
            return s.Alternative(str(name), items[0], braced=True, span=self.span(meta))
        first, last = items[0].span, items[-1].span
        inner = s.Span(self.file, first.line, first.column, last.end_line, last.end_column)
        return s.Alternative(str(name), s.Body(tuple(items), span=inner), span=self.span(meta))

    def optional(self, meta: Any, children: list) -> s.Optional:
        label, name, default, body = children
        name = self.structure_name(label, name, meta, "optional")
        return s.Optional(
            str(name), body, None if default is None else default.value, span=self.span(meta)
        )

    def residual(self, meta: Any, children: list) -> s.Residual:
        label, args, body = children
        return s.Residual(body, args or (), None if label is None else str(label),
                          span=self.span(meta))

    def time_distributed(self, meta: Any, children: list) -> s.TimeDistributed:
        return s.TimeDistributed(children[0], span=self.span(meta))

    def constraint(self, meta: Any, children: list) -> s.Constraint:
        left, op, right, unit = children
        return s.Constraint(left, str(op), right, None if unit is None else str(unit),
                            span=self.span(meta))

    # domains

    def int_range(self, meta: Any, children: list) -> s.IntRange:
        low, high, *modifiers = children
        span = self.span(meta)
        mods = self.modifiers("int", modifiers)
        for bound in (low, high, mods.get("step")):
            if bound is not None and not self.is_int(bound):
                self.diagnostics.error(bound.span, "int ranges take integer bounds and steps")
        return s.IntRange(
            low, high, mods.get("step"), "log" in mods, mods.get("default"), mods.get("morph"),
            span=span,
        )

    def float_range(self, meta: Any, children: list) -> s.FloatRange:
        low, high, *modifiers = children
        mods = self.modifiers("float", modifiers)
        for bound in (low, high):
            if not isinstance(bound, s.Number):
                self.diagnostics.error(bound.span, "float ranges take numeric bounds")
        return s.FloatRange(
            low, high, "log" in mods, mods.get("default"), mods.get("morph"), span=self.span(meta)
        )

    def choice(self, meta: Any, children: list) -> s.Choice:
        values = tuple(c for c in children if c is not None and not isinstance(c, _Modifier))
        mods = self.modifiers("choice", [c for c in children if isinstance(c, _Modifier)])
        return s.Choice(
            values, "ordered" in mods, mods.get("default"), mods.get("morph"), span=self.span(meta)
        )

    def pair(self, meta: Any, children: list) -> s.Pair:
        return s.Pair(tuple(children), span=self.span(meta))

    def modifiers(self, kind: str, found: list) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for mod in found:
            if mod.kind not in _ALLOWED_MODIFIERS[kind]:
                allowed = ", ".join(f"'{m}'" for m in _ALLOWED_MODIFIERS[kind])
                self.diagnostics.error(
                    mod.span, f"'{mod.kind}' does not apply to {kind} domains (allowed: {allowed})"
                )
            elif mod.kind in result:
                self.diagnostics.error(mod.span, f"'{mod.kind}' is given twice")
            else:
                result[mod.kind] = mod.value
        return result

    def log(self, meta: Any, children: list) -> _Modifier:
        return _Modifier("log", True, self.span(meta))

    def step(self, meta: Any, children: list) -> _Modifier:
        return _Modifier("step", children[0], self.span(meta))

    def ordered(self, meta: Any, children: list) -> _Modifier:
        return _Modifier("ordered", True, self.span(meta))

    def default(self, meta: Any, children: list) -> _Modifier:
        return _Modifier("default", children[0], self.span(meta))

    def frozen(self, meta: Any, children: list) -> _Modifier:
        span = self.span(meta)
        return _Modifier("morph", s.Number(0, "0", span=span), span)

    def morph(self, meta: Any, children: list) -> _Modifier:
        (weight,) = children
        if not isinstance(weight, s.Number) or weight.value < 0:
            self.diagnostics.error(weight.span, "a morph weight is a number of at least 0")
        return _Modifier("morph", weight, self.span(meta))

    # expressions

    def binop(self, op: str, meta: Any, children: list) -> s.BinOp:
        left, right = children
        node = s.BinOp(op, left, right, span=self.span(meta))
        return self.nest(node, left, right)

    def add(self, meta: Any, children: list) -> s.BinOp:
        return self.binop("+", meta, children)

    def sub(self, meta: Any, children: list) -> s.BinOp:
        return self.binop("-", meta, children)

    def mul(self, meta: Any, children: list) -> s.BinOp:
        return self.binop("*", meta, children)

    def div(self, meta: Any, children: list) -> s.BinOp:
        return self.binop("/", meta, children)

    def floordiv(self, meta: Any, children: list) -> s.BinOp:
        return self.binop("//", meta, children)

    def pow(self, meta: Any, children: list) -> s.BinOp:
        return self.binop("**", meta, children)

    def neg(self, meta: Any, children: list) -> s.Neg:
        node = s.Neg(children[0], span=self.span(meta))
        return self.nest(node, children[0])

    def nest(self, node: Any, *operands: Any) -> Any:
        depth = 1 + max(self.depth.get(id(o), 0) for o in operands)
        self.depth[id(node)] = depth
        if depth == MAX_EXPRESSION_DEPTH + 1:
            self.diagnostics.error(
                node.span, f"expression is nested deeper than {MAX_EXPRESSION_DEPTH} operators"
            )
        return node

    def func(self, meta: Any, children: list) -> s.Func:
        name, *args = children
        node = s.Func(str(name), tuple(args), span=self.span(meta))
        return self.nest(node, *args)

    def path(self, meta: Any, children: list) -> s.Ref:
        return s.Ref(tuple(children), span=self.span(meta))

    def segment(self, meta: Any, children: list) -> s.Segment:
        name, index = children
        return s.Segment(
            str(name), None if index is None else self.integer(index), span=self.span(meta)
        )

    def negative(self, meta: Any, children: list) -> s.Number:
        (number,) = children
        return s.Number(-number.value, "-" + number.text, span=self.span(meta))

    def string(self, meta: Any, children: list) -> s.String:
        return s.String(self.decode(children[0]), span=self.span(meta))

    def true(self, meta: Any, children: list) -> s.Bool:
        return s.Bool(True, span=self.span(meta))

    def false(self, meta: Any, children: list) -> s.Bool:
        return s.Bool(False, span=self.span(meta))

    def int(self, meta: Any, children: list) -> s.Number:
        (token,) = children
        return s.Number(self.integer(token), str(token), span=self.span(meta))

    def float(self, meta: Any, children: list) -> s.Number:
        (token,) = children
        value = float(token)
        if value in (float("inf"), float("-inf")):
            self.diagnostics.error(self.tspan(token), f"number {token} is out of range")
            value = 0.0
        return s.Number(value, str(token), span=self.span(meta))

    # helpers

    def integer(self, token: Token) -> int:
        text = str(token)
        if len(text.replace("_", "")) > 16 or int(text) > MAX_INT:
            self.diagnostics.error(
                self.tspan(token), f"integer {text[:20]}{'...' if len(text) > 20 else ''} "
                f"is too large (at most 2**53)"
            )
            return 0
        return int(text)

    @staticmethod
    def is_int(node: Any) -> bool:
        return isinstance(node, s.Number) and isinstance(node.value, int)

    def decode(self, token: Token) -> str:
        def unescape(match: re.Match[str]) -> str:
            char = match.group(1)
            if char not in _ESCAPES:
                self.diagnostics.error(self.tspan(token), f"unknown escape '\\{char}' in string")
                return char
            return _ESCAPES[char]

        return re.sub(r"\\(.)", unescape, str(token)[1:-1])
