"""Lowering of written values and expressions, with their types.

A written value is a domain or a literal, which declares a parameter, or an expression.
Expressions resolve their names through the scope and the parameter table and are
type-checked as they are built: arithmetic takes numbers, functions are the known ones.
"""

from __future__ import annotations

from .. import domains, ir
from .. import syntax as s
from .declarations import Declarations
from .messages import TYPE_WORDS, suggest
from .scopes import Scope


class ExprLowerer:
    """Turns values and expressions into IR expressions, reporting what is wrong."""

    def __init__(self, decls: Declarations) -> None:
        self.decls = decls
        self.diags = decls.diags
        #: Types of builtin names that are not ints: a block checked alone has its
        #: required formals open, of type "any".
        self.types: dict[str, str] = {}

    # --- values ---------------------------------------------------------------------------

    def value(
        self, value: s.Value, path: str, scope: Scope, span: s.Span
    ) -> ir.Expr | None:
        """A written value: domains and literals make parameters, expressions resolve."""
        if isinstance(value, (s.IntRange, s.FloatRange, s.Choice)):
            domain = domains.convert(value, self.diags)
            if domain is None:
                return None
            weight = None if value.morph is None else float(value.morph.value)
            return self.decls.new_param(path, domain, scope, span, weight=weight)
        return self.expr(value, scope)

    def param_value(self, value: s.Value, path: str, scope: Scope, span: s.Span) -> ir.Expr | None:
        """Like `value`, but a literal becomes a fixed parameter (it is declared)."""
        if isinstance(value, (s.Number, s.String, s.Bool)):
            return self.decls.new_param(path, domains.fixed(value), scope, span)
        return self.value(value, path, scope, span)

    # --- expressions ----------------------------------------------------------------------

    def expr(self, node: s.Expr, scope: Scope) -> ir.Expr | None:
        if isinstance(node, (s.Number, s.String, s.Bool)):
            return ir.Const(node.value)
        if isinstance(node, s.Ref):
            return self.ref(node, scope)
        if isinstance(node, s.Func):
            return self.func(node, scope)
        if isinstance(node, s.Neg):
            operand = self.expr(node.operand, scope)
            if operand is None:
                return None
            if not self.numeric(operand, node.operand.span):
                return None
            if isinstance(operand, ir.Const) and isinstance(operand.value, (int, float)):
                return ir.Const(-operand.value)
            return ir.Neg(operand)
        left = self.expr(node.left, scope)
        right = self.expr(node.right, scope)
        if left is None or right is None:
            return None
        if not (self.numeric(left, node.left.span) and self.numeric(right, node.right.span)):
            return None
        return ir.BinOp(node.op, left, right)

    def func(self, node: s.Func, scope: Scope) -> ir.Expr | None:
        if node.name not in ir.FUNCTIONS:
            self.diags.error(
                node.span,
                f"unknown function '{node.name}'" + suggest(node.name, ir.FUNCTIONS)
                + f" (functions: {', '.join(ir.FUNCTIONS)})",
            )
            return None
        if len(node.args) < 2:
            self.diags.error(node.span, f"'{node.name}' takes at least two arguments")
            return None
        args = [self.expr(a, scope) for a in node.args]
        if any(a is None for a in args):
            return None
        if not all(self.numeric(a, n.span) for a, n in zip(args, node.args)):  # type: ignore[arg-type]
            return None
        return ir.Func(node.name, tuple(args))  # type: ignore[arg-type]

    def numeric(self, expr: ir.Expr, span: s.Span) -> bool:
        kind = self.type_of(expr)
        if kind in ("int", "float", "any"):
            return True
        self.diags.error(span, f"arithmetic needs numbers, but this is {TYPE_WORDS[kind]}")
        return False

    def ref(self, node: s.Ref, scope: Scope) -> ir.Expr | None:
        params = self.decls.params
        first = node.segments[0]
        if len(node.segments) == 1 and first.index is None:
            binding = scope.env.lookup(first.name)
            if binding is not None:
                return binding.expr
            if first.name in ir.BUILTINS:
                return ir.Builtin(first.name)
        top_level = not scope.prefix and not scope.stack
        if len(node.segments) > 1 or first.index is not None or top_level:
            # A path names a parameter: relative to this scope first, then from the root.
            # Plain names do so only at the top level, so blocks cannot see their callers.
            for candidate in (scope.path(node.text), node.text):
                if candidate in params:
                    return ir.ParamRef(candidate)
        names = scope.env.all_names() | set(ir.BUILTINS) | set(params)
        self.diags.error(node.span, f"'{node.text}' is not defined" + suggest(node.text, names))
        return None

    # --- types ----------------------------------------------------------------------------

    def type_of(self, expr: ir.Expr) -> str:
        """int, float, str, bool, or any (an open block formal)."""
        params = self.decls.params
        if isinstance(expr, ir.Const):
            return ir.value_type(expr.value)
        if isinstance(expr, ir.ParamRef):
            return params[expr.name].domain.type if expr.name in params else "any"
        if isinstance(expr, ir.Builtin):
            return self.types.get(expr.name, "int")
        if isinstance(expr, ir.Neg):
            return self.type_of(expr.operand)
        operands = expr.args if isinstance(expr, ir.Func) else (expr.left, expr.right)
        kinds = {self.type_of(o) for o in operands}
        if "any" in kinds:
            return "any"
        if (isinstance(expr, ir.BinOp) and expr.op == "/") or "float" in kinds:
            return "float"
        return "int"

    def expect_type(self, expr: ir.Expr, wanted: str, node: s.Value, what: str) -> bool:
        got = self.type_of(expr)
        ok = got in (wanted, "any") or (wanted == "float" and got == "int")
        if wanted == "padding":
            ok = got in ("int", "str", "any")
        if not ok:
            shown = "an int or a string" if wanted == "padding" else TYPE_WORDS[wanted]
            self.diags.error(node.span, f"{what} takes {shown}, not {TYPE_WORDS[got]}")
        return ok
