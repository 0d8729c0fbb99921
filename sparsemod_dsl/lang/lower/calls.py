"""Lowering of calls: a layer becomes an IR layer, a block is inlined into its caller.

A block call binds the call's arguments to the block's formals, opens a scope under the
call's label and lowers the block's body there (through the statement lowering that
owns this object); a block that calls itself, directly or not, is an error. Arguments
are matched to parameters the same way for layers and blocks.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .. import ir
from .. import syntax as s
from ..layers import LAYERS, ArgSpec
from ..loader import Library
from .declarations import Declarations
from .exprs import ExprLowerer
from .limits import MAX_CALL_DEPTH, MAX_CALLS, MAX_LAYERS, TooBig
from .messages import plural, suggest
from .scopes import Binding, Env, Scope, undocumented

#: Lowers the statements of a body in a scope (the statement lowering's `body`).
BodyLowering = Callable[[Sequence[s.Statement], Scope], tuple[ir.Node, ...]]


class CallLowerer:
    """Lowers layer and block calls; remembers which blocks were called."""

    def __init__(self, decls: Declarations, exprs: ExprLowerer, body: BodyLowering) -> None:
        self.decls = decls
        self.exprs = exprs
        self.diags = decls.diags
        self.body = body
        #: Layers and block calls unrolled so far, against MAX_LAYERS and MAX_CALLS.
        self.layers = 0
        self.inlined = 0
        #: The ids of the block definitions called so far.
        self.called: set[int] = set()

    def call(self, stmt: s.Call, scope: Scope) -> list[ir.Node]:
        if stmt.label is not None and not self.decls.check_name(stmt.label, stmt.span):
            return []
        if stmt.name in LAYERS:
            layer = self.layer(stmt, scope)
            return [] if layer is None else [layer]
        found = scope.library.visible.get(stmt.name)
        if found is None:
            hint = "" if self.diags.crowded else suggest(
                stmt.name, set(LAYERS) | set(scope.library.visible)
            )
            self.diags.error(stmt.name_span, f"unknown layer or block '{stmt.name}'{hint}")
            return []
        block, owner = found
        self.called.add(id(block))
        if block.name in scope.stack:
            cycle = (*scope.stack[scope.stack.index(block.name):], block.name)
            through = f" through {' -> '.join(cycle)}" if len(cycle) > 2 else ""
            self.diags.error(
                stmt.name_span, f"block '{block.name}' calls itself{through}, which cannot end"
            )
            return []
        if len(scope.stack) >= MAX_CALL_DEPTH:
            self.diags.error(
                stmt.name_span,
                f"blocks call blocks more than {MAX_CALL_DEPTH} deep here "
                f"({scope.stack[0]} -> ... -> {scope.stack[-1]} -> {block.name}); "
                "call fewer blocks from within blocks",
            )
            raise TooBig
        self.inlined += 1
        if self.inlined > MAX_CALLS:
            self.diags.error(
                stmt.span,
                f"the space unrolls to more than {MAX_CALLS} block calls; call fewer blocks",
            )
            raise TooBig
        prefix = scope.path(stmt.label) if stmt.label else scope.prefix
        inner = Scope(
            prefix, Env(), scope.when, owner, (*scope.stack, block.name),
            (*scope.calls, stmt.span),
            scope.morph if block.morph is None else float(block.morph.value),
        )
        bound = self.bind_formals(block, stmt, scope, inner)
        if bound is None:  # inlining would only repeat the argument's error
            return []
        return self.inline(block, owner, stmt, inner, bound)

    def inline(
        self,
        block: s.BlockDef,
        owner: Library,
        stmt: s.Call,
        inner: Scope,
        bound: dict[str, ir.Expr],
    ) -> list[ir.Node]:
        missing = [f.name for f in block.formals if f.default is None and f.name not in bound]
        for name in missing:
            self.diags.error(stmt.name_span, f"'{block.name}' needs the argument '{name}'")
        if missing:  # the body would report every use of the missing formals
            return []
        for formal in block.formals:
            if formal.name in bound:
                self.decls.declare(inner, formal.name, Binding(bound[formal.name], formal.span))
                continue
            assert formal.default is not None
            expr = self.exprs.value(formal.default, inner.path(formal.name), inner, formal.span)
            if expr is None:  # the body would report every use of this formal
                return []
            self.decls.declare(inner, formal.name, Binding(expr, formal.span))
        return list(self.body(undocumented(block.body.stmts), inner))

    def bind_formals(
        self, block: s.BlockDef, stmt: s.Call, caller: Scope, inner: Scope
    ) -> dict[str, ir.Expr] | None:
        """The call's arguments by formal name; None when one of them is wrong."""
        names = [f.name for f in block.formals]
        bound: dict[str, ir.Expr] = {}
        for arg, name in self.match_args(stmt, names, f"block '{block.name}'"):
            expr = self.exprs.value(arg.value, inner.path(name), caller, arg.span)
            if expr is not None:
                bound[name] = expr
        return bound if len(bound) == len(stmt.args) else None

    def match_args(
        self, stmt: s.Call, names: Sequence[str], what: str
    ) -> list[tuple[s.Arg, str]]:
        """Pair each argument with the parameter it sets, reporting mismatches."""
        matched: list[tuple[s.Arg, str]] = []
        used: set[str] = set()
        keyword_seen = False
        for position, arg in enumerate(stmt.args):
            if arg.name is None:
                if keyword_seen:
                    self.diags.error(arg.span, "positional arguments come before keyword arguments")
                    continue
                if position >= len(names):
                    most = f"at most {plural(len(names), 'argument')}" if names else "no arguments"
                    self.diags.error(arg.span, f"{what} takes {most}")
                    continue
                name = names[position]
            else:
                keyword_seen = True
                name = arg.name
                if name not in names:
                    self.diags.error(
                        arg.span,
                        f"{what} has no argument '{name}'" + suggest(name, names)
                        + (f" (it takes: {', '.join(names)})" if names else " (it takes none)"),
                    )
                    continue
            if name in used:
                self.diags.error(arg.span, f"argument '{name}' is given twice")
                continue
            used.add(name)
            matched.append((arg, name))
        return matched

    def layer(self, stmt: s.Call, scope: Scope) -> ir.Layer | None:
        spec = LAYERS[stmt.name]
        label = stmt.label or stmt.name
        path = scope.path(label)
        self.layers += 1
        if self.layers > MAX_LAYERS:
            self.diags.error(
                stmt.span, f"the space unrolls to more than {MAX_LAYERS} layers; narrow the repeats"
            )
            raise TooBig
        given: dict[str, ir.ArgExpr] = {}
        for arg, name in self.match_args(stmt, [a.name for a in spec.args], f"'{spec.name}'"):
            arg_spec = spec.arg(name)
            assert arg_spec is not None
            if isinstance(arg.value, s.Pair):
                pair = self.pair(arg.value, arg_spec, spec.name, f"{path}.{name}", scope)
                if pair is not None:
                    given[name] = pair
                continue
            expr = self.exprs.value(arg.value, f"{path}.{name}", scope, arg.span)
            if expr is not None and self.exprs.expect_type(
                expr, arg_spec.type, arg.value, f"'{name}'"
            ):
                given[name] = expr
        args: list[tuple[str, ir.ArgExpr]] = []
        for arg_spec in spec.args:
            if arg_spec.name in given:
                args.append((arg_spec.name, given[arg_spec.name]))
            elif arg_spec.required:
                if len(given) == len(stmt.args):  # else a wrong argument was meant for it
                    self.diags.error(
                        stmt.span, f"'{spec.name}' needs the argument '{arg_spec.name}'"
                    )
                return None
            elif arg_spec.default is not None:
                args.append((arg_spec.name, ir.Const(arg_spec.default)))
        return ir.Layer(spec.name, tuple(args), path, stmt.span)

    def pair(self, value: s.Pair, arg_spec: ArgSpec, layer: str, path: str,
             scope: Scope) -> ir.Pair | None:
        """A `(height, width)` argument; searched sides are `<path>_h` and `<path>_w`."""
        if not arg_spec.pair:
            self.diags.error(value.span, f"'{layer}' argument '{arg_spec.name}' takes one "
                             "number, not a pair (pairs are for 2-D kernels and strides)")
            return None
        if len(value.items) != 2:
            self.diags.error(value.span, f"'{arg_spec.name}' takes a pair (height, width), "
                             f"not {len(value.items)} values")
            return None
        sides = []
        for item, side in zip(value.items, ("height", "width")):
            expr = self.exprs.value(item, f"{path}_{side[0]}", scope, item.span)
            if expr is None or not self.exprs.expect_type(
                expr, arg_spec.type, item, f"'{arg_spec.name}' ({side})"
            ):
                return None
            sides.append(expr)
        return ir.Pair(*sides)
