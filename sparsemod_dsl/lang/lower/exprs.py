"""Lowering of written values and expressions, with their types.

A written value is a domain or a literal, which declares a parameter, or an expression.
Expressions resolve their names through the scope and the parameter table and are
type-checked as they are built: arithmetic takes numbers, functions are the known ones.
Each operation is checked too, over every value its operands can take (`Facts`): a
division by zero or a value out of range at every point of the space is an error here,
and so is an expression nested too deep once names are replaced by their values.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .. import domains, functions, ir
from .. import syntax as s
from ..arith import MAX_INT
from ..build_tree import MAX_EXPRESSION_DEPTH
from ..intervals import combine, constant, interval_of, negate, pick
from ..layers import ArgValue
from ..shapes import UNBOUNDED, Interval
from .declarations import Declarations
from .messages import TYPE_WORDS, suggest
from .scopes import Scope

_ARGUMENTS = {1: "one argument", 2: "two arguments"}


class Facts(NamedTuple):
    """What lowering knows of an operation it built: depth, values and type."""

    #: The operation itself, kept so that its id, the key of these facts, stays its own.
    expr: ir.Expr
    depth: int
    values: ArgValue
    type: str


class ExprLowerer:
    """Turns values and expressions into IR expressions, reporting what is wrong."""

    def __init__(self, decls: Declarations) -> None:
        self.decls = decls
        self.diags = decls.diags
        #: Types of builtin names that are not ints: a block checked alone has its
        #: required formals open, of type "any".
        self.types: dict[str, str] = {}
        #: The facts of every operation built, by id.
        self.facts: dict[int, Facts] = {}
        #: True while a constraint is lowered: only there do cost names (`macs`) resolve.
        self.costs_allowed = False

    # --- values ---------------------------------------------------------------------------

    def value(
        self, value: s.Value, path: str, scope: Scope, span: s.Span
    ) -> ir.Expr | None:
        """A written value: domains and literals make parameters, expressions resolve."""
        if isinstance(value, s.Pair):
            self.diags.error(value.span, "a pair (height, width) can only be written as a "
                             "layer's kernel, stride or dilation")
            return None
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
            return self.checked(ir.Neg(operand), node)
        left = self.expr(node.left, scope)
        right = self.expr(node.right, scope)
        if left is None or right is None:
            return None
        if not (self.numeric(left, node.left.span) and self.numeric(right, node.right.span)):
            return None
        if node.op == "**" and not self.exponent(left, right, node.right):
            return None
        if node.op in ("/", "//") and self.values(right) == Interval.of(0):
            where = "" if isinstance(node.right, s.Number) else (
                ": the divisor is 0 at every point of the space")
            self.diags.error(node.right.span, f"division by zero{where}")
            return None
        return self.checked(ir.BinOp(node.op, left, right), node)

    def func(self, node: s.Func, scope: Scope) -> ir.Expr | None:
        if node.name not in ir.FUNCTIONS:
            self.diags.error(
                node.span,
                f"unknown function '{node.name}'" + suggest(node.name, ir.FUNCTIONS)
                + f" (functions: {', '.join(ir.FUNCTIONS)})",
            )
            return None
        _, fewest, most = functions.FUNCTIONS[node.name]
        if not fewest <= len(node.args) <= most:
            count = (f"at least {_ARGUMENTS[fewest]}" if most > fewest
                     else f"{_ARGUMENTS[fewest]}")
            self.diags.error(node.span, f"'{node.name}' takes {count}")
            return None
        args = [self.expr(a, scope) for a in node.args]
        if any(a is None for a in args):
            return None
        if not all(self.numeric(a, n.span) for a, n in zip(args, node.args)):  # type: ignore[arg-type]
            return None
        if node.name == "make_divisible" and not self.divisor(args[1], node.args[1]):  # type: ignore[arg-type]
            return None
        return self.checked(ir.Func(node.name, tuple(args)), node)  # type: ignore[arg-type]

    def exponent(self, base: ir.Expr, exponent: ir.Expr, node: s.Expr) -> bool:
        """False, with an error, for an int raised to a power below 0 at every point."""
        values = self.values(exponent)
        ints = self.type_of(base) == "int" and self.type_of(exponent) == "int"
        if ints and isinstance(values, Interval) and values.hi < 0:
            self.diags.error(node.span, "a negative power of an int at every point of the "
                             "space: make the base a float (2.0 ** -1 is 0.5)")
            return False
        return True

    def divisor(self, expr: ir.Expr, node: s.Expr) -> bool:
        """True when `make_divisible`'s divisor is an int that can be at least 1."""
        if not self.expect_type(expr, "int", node, "the divisor of 'make_divisible'"):
            return False
        values = self.values(expr)
        if isinstance(values, Interval) and values.hi < 1:
            self.diags.error(node.span, "the divisor of 'make_divisible' must be at least 1 "
                             f"(it is {values} at every point of the space)")
            return False
        return True

    def checked(self, expr: ir.Neg | ir.BinOp | ir.Func, node: s.Expr) -> ir.Expr | None:
        """`expr`, with its facts recorded, unless it is too deep or out of range."""
        operands = (
            expr.args if isinstance(expr, ir.Func)
            else (expr.operand,) if isinstance(expr, ir.Neg) else (expr.left, expr.right)
        )
        depth = 1 + max(self.depth(o) for o in operands)
        if depth > MAX_EXPRESSION_DEPTH:
            self.diags.error(
                node.span,
                f"expression is nested deeper than {MAX_EXPRESSION_DEPTH} operators once the "
                "names in it are replaced by their values",
            )
            return None
        if isinstance(expr, ir.Func):
            values = pick(expr.name, [self.values(a) for a in expr.args])
        elif isinstance(expr, ir.Neg):
            values = negate(self.values(expr.operand))
        else:
            values = combine(expr.op, self.values(expr.left), self.values(expr.right))
        kind = self.type_of(expr)
        if isinstance(values, Interval) and _out_of_range(values, kind):
            problem = (f"integer overflow: this value ({values}) is beyond 2**53, the largest "
                       "integer," if kind == "int" else "float overflow: this value is infinite")
            self.diags.error(node.span, f"{problem} at every point of the space")
            return None
        self.facts[id(expr)] = Facts(expr, depth, values, kind)
        return expr

    def depth(self, expr: ir.Expr) -> int:
        """Operators in an expression, names replaced by their values."""
        facts = self.facts.get(id(expr))
        return 0 if facts is None else facts.depth

    def values(self, expr: ir.Expr) -> ArgValue:
        """Every value an expression can take over the space (an interval for numbers)."""
        facts = self.facts.get(id(expr))
        if facts is not None:
            return facts.values
        if isinstance(expr, ir.Const):
            return constant(expr.value)
        if isinstance(expr, ir.ParamRef) and expr.name in self.decls.params:
            return interval_of(self.decls.params[expr.name].domain)
        if isinstance(expr, ir.Builtin) and expr.name in ir.COSTS:
            return Interval(0, math.inf)
        if isinstance(expr, ir.Builtin) and expr.name in ir.BUILTINS:
            return Interval(1, math.inf)  # the number of classes, a layer's input channels
        return UNBOUNDED

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
            if first.name in ir.BUILTINS or (first.name in ir.COSTS and self.costs_allowed):
                return ir.Builtin(ir.BUILTIN_ALIASES.get(first.name, first.name))
        top_level = not scope.prefix and not scope.stack
        if len(node.segments) > 1 or first.index is not None or top_level:
            # A path names a parameter: relative to this scope first, then from the root.
            # Plain names do so only at the top level, so blocks cannot see their callers.
            for candidate in (scope.path(node.text), node.text):
                if candidate in params:
                    return ir.ParamRef(candidate)
        hint = "" if self.diags.crowded else suggest(
            node.text, scope.env.all_names() | set(ir.BUILTINS) | set(params)
            | (set(ir.COSTS) if self.costs_allowed else set())
        )
        if node.text in ir.COSTS:
            hint = f" here: '{node.text}', a cost, has a value only in a constraint"
        self.diags.error(node.span, f"'{node.text}' is not defined{hint}")
        return None

    # --- types ----------------------------------------------------------------------------

    def type_of(self, expr: ir.Expr) -> str:
        """int, float, str, bool, or any (an open block formal)."""
        facts = self.facts.get(id(expr))
        if facts is not None:
            return facts.type
        params = self.decls.params
        if isinstance(expr, ir.Const):
            return ir.value_type(expr.value)
        if isinstance(expr, ir.ParamRef):
            return params[expr.name].domain.type if expr.name in params else "any"
        if isinstance(expr, ir.Builtin):
            return "float" if expr.name == "latency" else self.types.get(expr.name, "int")
        if isinstance(expr, ir.Neg):
            return self.type_of(expr.operand)
        operands = expr.args if isinstance(expr, ir.Func) else (expr.left, expr.right)
        kinds = {self.type_of(o) for o in operands}
        if "any" in kinds:
            return "any"
        if isinstance(expr, ir.Func) and expr.name in functions.INTEGER_RESULT:
            return "int"
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


def _out_of_range(values: Interval, kind: str) -> bool:
    """True when every value is beyond the integers or the finite floats (`arith`)."""
    if kind == "int":
        return values.lo > MAX_INT or values.hi < -MAX_INT
    return kind == "float" and (values.lo == math.inf or values.hi == -math.inf)
