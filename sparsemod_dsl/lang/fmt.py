"""Syntax tree -> canonical `.arch` text: the formatter behind `sparsemodc fmt`.

The output depends only on the tree (plus the presentation hints the tree keeps:
`blank_before`, `Number.text`), so formatting is idempotent, and parsing the
output gives back an equal tree. Comments are printed where the parser will
attach them again: leading comments on their own lines before a statement,
a trailing comment at the end of its last line, end comments before `}`.
"""

from __future__ import annotations

from typing import Any, Callable, TypeGuard, cast

from . import syntax as s
from .parser import parse

#: Longest line the formatter creates by joining layers or inlining alternatives.
MAX_LINE = 88
#: Argument-less layers that join the previous layer's line: `conv2d(8, 3) batchnorm relu`.
JOINABLE = frozenset({"batchnorm", "relu", "relu6", "softmax"})

_INDENT = "    "
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "**": 3}
_NEG_PRECEDENCE = 3
_ATOM_PRECEDENCE = 4
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}


def format_source(text: str, file: str = "<string>") -> str:
    """Parse `.arch` source and print it canonically.

    Raises:
        ArchError: if `text` does not parse.
    """
    return format_module(parse(text, file))


def format_module(module: s.Module) -> str:
    """Print a syntax tree as canonical `.arch` text, ending with one newline."""
    lines: list[str] = []
    previous: s.Item | None = None
    for item in module.items:
        if previous is not None and not (
            isinstance(previous, s.Import) and isinstance(item, s.Import)
        ):
            lines.append("")
        lines.extend(_statement(item, 0))
        previous = item
    if module.end_comments:
        if lines:
            lines.append("")
        lines.extend(module.end_comments)
    return "\n".join(lines) + "\n"


# --- values ---------------------------------------------------------------------------


def _precedence(expr: s.Expr) -> int:
    if isinstance(expr, s.BinOp):
        return _PRECEDENCE[expr.op]
    if isinstance(expr, s.Neg):
        return _NEG_PRECEDENCE
    return _ATOM_PRECEDENCE


def _parenthesize(expr: s.Expr, needed: bool) -> str:
    text = format_value(expr)
    return f"({text})" if needed else text


def _binop(node: s.BinOp) -> str:
    if node.op == "**":  # an atom on the left; on the right an atom, a power or a minus
        left = _parenthesize(node.left, _precedence(node.left) < _ATOM_PRECEDENCE)
        right = _parenthesize(node.right, _precedence(node.right) < _NEG_PRECEDENCE)
        return f"{left} ** {right}"
    own = _PRECEDENCE[node.op]
    left = _parenthesize(node.left, _precedence(node.left) < own)
    right = _parenthesize(node.right, _precedence(node.right) <= own)
    return f"{left} {node.op} {right}"


def _neg(node: s.Neg) -> str:
    power = isinstance(node.operand, s.BinOp) and node.operand.op == "**"
    return "-" + _parenthesize(node.operand, isinstance(node.operand, s.BinOp) and not power)


def _func(node: s.Func) -> str:
    return f"{node.name}({', '.join(format_value(a) for a in node.args)})"


def _number(node: s.Number) -> str:
    if node.text:
        return node.text
    return repr(node.value) if isinstance(node.value, float) else str(node.value)


def _string(node: s.String) -> str:
    return quote(node.value)


def _bool(node: s.Bool) -> str:
    return "true" if node.value else "false"


def _ref(node: s.Ref) -> str:
    return node.text


def _int_range(node: s.IntRange) -> str:
    text = f"int[{_number(node.low)}..{_number(node.high)}]"
    if node.step is not None:
        text += f" step {_number(node.step)}"
    return text + (" log" if node.log else "") + _default(node.default) + _morph(node.morph)


def _float_range(node: s.FloatRange) -> str:
    text = f"float[{_number(node.low)}..{_number(node.high)}]"
    return text + (" log" if node.log else "") + _default(node.default) + _morph(node.morph)


def _choice(node: s.Choice) -> str:
    text = f"choice[{', '.join(format_value(v) for v in node.values)}]"
    if node.ordered:
        text += " ordered"
    return text + _default(node.default) + _morph(node.morph)


def _default(default: s.Literal | None) -> str:
    return "" if default is None else f" default {format_value(default)}"


def _morph(weight: s.Number | None) -> str:
    """` frozen` for weight 0, ` morph W` for another weight, nothing without one."""
    if weight is None:
        return ""
    return " frozen" if weight.value == 0 else f" morph {_number(weight)}"


def _pair(node: s.Pair) -> str:
    return "(" + ", ".join(format_value(item) for item in node.items) + ")"


_VALUES: dict[type, Callable[[Any], str]] = {
    s.Pair: _pair,
    s.BinOp: _binop,
    s.Neg: _neg,
    s.Func: _func,
    s.Number: _number,
    s.String: _string,
    s.Bool: _bool,
    s.Ref: _ref,
    s.IntRange: _int_range,
    s.FloatRange: _float_range,
    s.Choice: _choice,
}


def format_value(node: s.Value) -> str:
    """A domain, literal or expression as source text, with minimal parentheses."""
    return _VALUES[type(node)](node)


def quote(text: str) -> str:
    """A double-quoted string literal for `text`."""
    return '"' + "".join(_ESCAPES.get(char, char) for char in text) + '"'


def _binding(name: str, bound: s.Value | None) -> str:
    """`name = value`, or just `name` when nothing is bound (a required formal)."""
    return name if bound is None else f"{name} = {format_value(bound)}"


def _call(node: s.Call) -> str:
    text = node.name if node.label is None else f"{node.label}: {node.name}"
    if node.args:
        args = (format_value(a.value) if a.name is None else _binding(a.name, a.value)
                for a in node.args)
        text += "(" + ", ".join(args) + ")"
    return text


# --- statements -----------------------------------------------------------------------


def _joinable(node: s.Stmt) -> TypeGuard[s.Call]:
    """Whether a statement may share the line of the layer before it."""
    return (
        isinstance(node, s.Call)
        and node.name in JOINABLE
        and not node.args
        and node.label is None
        and not node.comments
        and not node.blank_before
    )


def _inline(body: s.Body) -> bool:
    """Whether an alternative's body may be written on the alternative's line."""
    return bool(body.stmts) and not body.end_comments and all(
        isinstance(st, s.Call) and not st.comments and st.trailing is None
        for st in body.stmts
    )


def _statement(node: s.Stmt, depth: int) -> list[str]:
    """A statement with its leading comments and trailing comment."""
    lines = [_INDENT * depth + c for c in node.comments]
    lines.extend(_STATEMENTS[type(node)](node, depth))
    if node.trailing is not None:
        lines[-1] += "  " + node.trailing
    return lines


def _block(stmts: tuple[s.Stmt, ...], depth: int) -> list[str]:
    """The statements of a body: blank lines kept, short layers joined."""
    lines: list[str] = []
    open_call = False  # the last line is a call without a trailing comment
    for index, node in enumerate(stmts):
        if open_call and _joinable(node) and len(lines[-1]) + 1 + len(node.name) <= MAX_LINE:
            lines[-1] += " " + node.name
            if node.trailing is not None:
                lines[-1] += "  " + node.trailing
                open_call = False
            continue
        if index and node.blank_before:
            lines.append("")
        lines.extend(_statement(node, depth))
        open_call = isinstance(node, s.Call) and node.trailing is None
    return lines


def _braced(head: str, stmts: tuple[s.Stmt, ...], ends: tuple[str, ...], depth: int) -> list[str]:
    """`head {`, the statements and end comments, `}`; `head {}` when empty."""
    pad = _INDENT * depth
    if not stmts and not ends:
        return [f"{pad}{head} {{}}"]
    inner = _block(stmts, depth + 1)
    inner.extend(_INDENT * (depth + 1) + c for c in ends)
    return [f"{pad}{head} {{", *inner, pad + "}"]


def _body(head: str, body: s.Body, depth: int) -> list[str]:
    return _braced(head, body.stmts, body.end_comments, depth)


def _line(text: str, depth: int) -> list[str]:
    return [_INDENT * depth + text]


def _arch_param(param: s.ArchParam) -> str:
    text = param.name
    if param.kind is not None:
        text += f": {param.kind}"
        if param.shape is not None:
            text += "(" + ", ".join(str(n) for n in param.shape) + ")"
    if param.value is not None:
        text += f" = {param.value}"
    if param.domain is not None:
        text += f" = {format_value(param.domain)}"
    return text


def _arch_header(node: s.ArchHeader, depth: int) -> list[str]:
    params = ", ".join(_arch_param(p) for p in node.params)
    return _line(f"arch {node.name}({params})", depth)


def _import(node: s.Import, depth: int) -> list[str]:
    return _line("import " + (quote(node.target) if node.is_path else node.target), depth)


def _block_def(node: s.BlockDef, depth: int) -> list[str]:
    head = f"block {node.name}"
    if node.formals:
        head += "(" + ", ".join(_binding(f.name, f.default) for f in node.formals) + ")"
    return _body(head + _morph(node.morph), node.body, depth)


def _constraint(node: s.Constraint, depth: int) -> list[str]:
    left, right = format_value(node.left), format_value(node.right)
    unit = "" if node.unit is None else f" {node.unit}"
    return _line(f"constraint {left} {node.op} {right}{unit}", depth)


def _choose(node: s.Choose, depth: int) -> list[str]:
    head = f"choose {node.name}{_default(node.default)}"
    return _braced(head, node.alternatives, node.end_comments, depth)


def _alternative(node: s.Alternative, depth: int) -> list[str]:
    if _inline(node.body):
        items = " ".join(_call(cast(s.Call, c)) for c in node.body.stmts)
        line = f"{_INDENT * depth}{node.name}: {items}"
        if len(line) <= MAX_LINE:
            return [line]
    return _body(f"{node.name}:", node.body, depth)


_STATEMENTS: dict[type, Callable[[Any, int], list[str]]] = {
    s.Docstring: lambda n, d: _line(f'"""{n.text}"""', d),
    s.ArchHeader: _arch_header,
    s.Import: _import,
    s.TrainSection: lambda n, d: _body("train", n.body, d),
    s.NetworkSection: lambda n, d: _body("network", n.body, d),
    s.BlockDef: _block_def,
    s.Constraint: _constraint,
    s.Param: lambda n, d: _line(_binding(n.name, n.value), d),
    s.Call: lambda n, d: _line(_call(n), d),
    s.Repeat: lambda n, d: _body(
        f"repeat {n.name} = {format_value(n.count)}" + (f" as {n.index}" if n.index else ""),
        n.body, d),
    s.Choose: _choose,
    s.Alternative: _alternative,
    s.Optional: lambda n, d: _body(f"optional {n.name}{_default(n.default)}", n.body, d),
    s.Residual: lambda n, d: _body(_call(s.Call("residual", n.args, n.label)), n.body, d),
    s.TimeDistributed: lambda n, d: _body("time_distributed", n.body, d),
}
