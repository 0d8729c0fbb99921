"""Lowering of statements: bodies, parameters, constraints, repeat, choose, optional, train.

`StmtLowerer` walks a body statement by statement. The structural statements open inner
scopes: `repeat` unrolls one instance per possible count (each under `name[i]`, present
when the count is at least i), `choose` and `optional` declare the choice parameter
their bodies depend on, `residual` and `time_distributed` only wrap. Calls go to the
call lowering it owns, which lowers block bodies back through `body`.
"""

from __future__ import annotations

from typing import Sequence

from .. import ir
from .. import syntax as s
from ..shortcuts import SHORTCUTS
from .calls import CallLowerer
from .declarations import Declarations
from .exprs import ExprLowerer
from .limits import MAX_REPEAT, MAX_STRUCTURE_DEPTH, TooBig
from .messages import suggest
from .scopes import Binding, Scope

TRAIN_KEYS: dict[str, tuple[str, str]] = {
    "batch_size": ("int", "examples per training step"),
    "learning_rate": ("float", "Adam learning rate"),
    "learning_gamma": ("float", "learning-rate decay factor of the step schedule"),
    "learning_step": ("int", "epochs between learning-rate decays"),
    "prune_threshold": ("float", "final fraction of weights pruned"),
    "weight_decay": ("float", "L2 weight decay"),
    "max_len": ("int", "steps per sequence chunk (the sequence splitter)"),
}

#: The statements with bodies, whose nesting `MAX_STRUCTURE_DEPTH` bounds.
_STRUCTURES = (s.Repeat, s.Choose, s.Optional, s.Residual, s.TimeDistributed)


class StmtLowerer:
    """Lowers bodies to IR nodes; collects the constraints it meets."""

    def __init__(self, decls: Declarations, exprs: ExprLowerer) -> None:
        self.decls = decls
        self.exprs = exprs
        self.diags = decls.diags
        self.calls = CallLowerer(decls, exprs, self.body)
        self.constraints: list[ir.Constraint] = []
        self.cost_constraints: list[ir.CostConstraint] = []
        #: How many structures the statement being lowered is nested in, blocks inlined.
        self.depth = 0

    def train(self, section: s.TrainSection, root: Scope) -> None:
        scope = root.inner("train")
        for stmt in section.body.stmts:
            if not isinstance(stmt, s.Param):
                self.diags.error(stmt.span, "the train section holds only `name = value` lines")
                continue
            if stmt.name not in TRAIN_KEYS:
                known = ", ".join(TRAIN_KEYS)
                self.diags.error(
                    stmt.name_span,
                    f"unknown training hyperparameter '{stmt.name}'"
                    + suggest(stmt.name, TRAIN_KEYS) + f" (known: {known})",
                )
                continue
            if not isinstance(stmt.value, (s.IntRange, s.FloatRange, s.Choice, s.Number)):
                self.diags.error(
                    stmt.value.span,
                    f"'{stmt.name}' takes a range, a choice or a number, not a computed value",
                )
                continue
            expr = self.param_stmt(stmt, scope)
            wanted = TRAIN_KEYS[stmt.name][0]
            if expr is not None:
                self.exprs.expect_type(expr, wanted, stmt.value, f"'{stmt.name}'")

    def body(self, stmts: Sequence[s.Statement], scope: Scope) -> tuple[ir.Node, ...]:
        nodes: list[ir.Node] = []
        for stmt in stmts:
            nodes.extend(self.stmt(stmt, scope))
        return tuple(nodes)

    def stmt(self, stmt: s.Statement, scope: Scope) -> list[ir.Node]:
        if isinstance(stmt, s.Param):
            self.param_stmt(stmt, scope)
            return []
        if isinstance(stmt, s.Call):
            return self.calls.call(stmt, scope)
        if isinstance(stmt, s.Constraint):
            self.constraint(stmt, scope)
            return []
        if not isinstance(stmt, _STRUCTURES):
            self.diags.error(stmt.span, "a doc string must come first in a block")
            return []
        if self.depth >= MAX_STRUCTURE_DEPTH:
            self.diags.error(
                stmt.span,
                f"structures are nested more than {MAX_STRUCTURE_DEPTH} deep here, once blocks "
                "are inlined (repeat, choose, optional, residual and time_distributed count)",
            )
            raise TooBig
        self.depth += 1
        try:
            return self.structure(stmt, scope)
        finally:
            self.depth -= 1

    def structure(
        self, stmt: s.Repeat | s.Choose | s.Optional | s.Residual | s.TimeDistributed,
        scope: Scope,
    ) -> list[ir.Node]:
        if isinstance(stmt, s.Repeat):
            return self.repeat(stmt, scope)
        if isinstance(stmt, s.Choose):
            return self.choose(stmt, scope)
        if isinstance(stmt, s.Optional):
            return self.optional(stmt, scope)
        if isinstance(stmt, s.Residual):
            return self.residual(stmt, scope)
        return [ir.TimeDistributed(self.body(stmt.body.stmts, scope.inner()), stmt.span)]

    def residual(self, stmt: s.Residual, scope: Scope) -> list[ir.Node]:
        """`residual(shortcut = ...)`: the shortcut is named like a layer argument."""
        if stmt.label is not None and not self.decls.check_name(stmt.label, stmt.span):
            return []
        path = scope.path(stmt.label or "residual")
        shortcut: ir.Expr = ir.Const(SHORTCUTS[0])
        call = s.Call("residual", stmt.args, span=stmt.span)
        for arg, name in self.calls.match_args(call, ["shortcut"], "'residual'"):
            expr = self.exprs.value(arg.value, f"{path}.{name}", scope, arg.span)
            if expr is None:
                continue
            values = self.exprs.values(expr)
            if not isinstance(values, frozenset) or not values <= set(SHORTCUTS):
                shown = ", ".join(f'"{kind}"' for kind in SHORTCUTS)
                self.diags.error(arg.value.span, f"'shortcut' takes one of {shown}, or a "
                                 "choice of them")
                continue
            shortcut = expr
        body = self.body(stmt.body.stmts, scope.inner())
        return [ir.Residual(body, stmt.span, shortcut, path)]

    def param_stmt(self, stmt: s.Param, scope: Scope) -> ir.Expr | None:
        self.decls.check_name(stmt.name, stmt.name_span)  # still declared: its uses resolve
        previous = scope.env.names.get(stmt.name)
        if previous is not None:
            self.diags.error(
                stmt.name_span,
                f"'{stmt.name}' is already defined in this scope",
                (previous.span, f"'{stmt.name}' is first defined here"),
            )
            return None
        expr = self.exprs.param_value(stmt.value, scope.path(stmt.name), scope, stmt.span)
        # A wrong value is reported; the name stays declared (with an unknown type),
        # so that its uses are no further errors.
        bound = ir.ParamRef(scope.path(stmt.name)) if expr is None else expr
        self.decls.declare(scope, stmt.name, Binding(bound, stmt.name_span))
        return expr

    def constraint(self, stmt: s.Constraint, scope: Scope) -> None:
        self.exprs.costs_allowed = True
        try:
            left = self.exprs.expr(stmt.left, scope)
            right = self.exprs.expr(stmt.right, scope)
        finally:
            self.exprs.costs_allowed = False
        if left is None or right is None:
            return
        for side, node in ((left, stmt.left), (right, stmt.right)):
            if self.exprs.type_of(side) not in ("int", "float"):
                self.diags.error(node.span, "constraints compare numbers")
                return
        costs = {*ir.costs(left), *ir.costs(right)}
        if not costs and stmt.unit is None:
            self.constraints.append(ir.Constraint(left, stmt.op, right, stmt.span))
        elif self.unit_fits(stmt, costs):
            self.cost_constraints.append(
                ir.CostConstraint(left, stmt.op, right, stmt.unit, stmt.span))

    def unit_fits(self, stmt: s.Constraint, costs: set[str]) -> bool:
        """True when a constraint's unit measures every cost it names (or it has none)."""
        if stmt.unit is None:
            return True
        measure = ir.UNITS[stmt.unit][0]
        wrong = sorted(c for c in costs if ir.COSTS[c][0] != measure)
        if costs and not wrong:
            return True
        fitting = ", ".join(c for c, (m, _) in ir.COSTS.items() if m == measure)
        what = (f"'{wrong[0]}' is not counted in {stmt.unit}" if wrong
                else "this constraint names no cost")
        self.diags.error(stmt.span, f"{what}: a constraint in {stmt.unit} is on {fitting}")
        return False

    def repeat(self, stmt: s.Repeat, scope: Scope) -> list[ir.Node]:
        if not self.decls.check_name(stmt.name, stmt.span):
            return []
        path = scope.path(stmt.name)
        count = self.exprs.param_value(stmt.count, path, scope, stmt.span)
        if count is None:
            return []
        bounds = self.count_bounds(count, stmt)
        if bounds is None:
            return []
        low, high = bounds
        self.decls.declare(scope, stmt.name, Binding(count, stmt.span))
        index = self.repeat_index(stmt)
        instances = []
        for i in range(1, high + 1):
            when = [] if i <= low or not isinstance(count, ir.ParamRef) else [
                ir.Condition(count.name, ">=", i)
            ]
            inner = scope.inner(scope.path(f"{stmt.name}[{i}]"), when)
            if index is not None:
                self.decls.declare(inner, index, Binding(ir.Const(i), stmt.span))
            instances.append(self.body(stmt.body.stmts, inner))
        return [ir.Repeat(count, tuple(instances), path, stmt.span)]

    def repeat_index(self, stmt: s.Repeat) -> str | None:
        """The name `as i` gives each instance's number, if it is a good name."""
        if stmt.index is None or not self.decls.check_name(stmt.index, stmt.span):
            return None
        if stmt.index == stmt.name:
            self.diags.error(stmt.span, f"the repeat and its index are both named "
                             f"'{stmt.name}': the index needs a name of its own")
            return None
        return stmt.index

    def count_bounds(self, count: ir.Expr, stmt: s.Repeat) -> tuple[int, int] | None:
        params = self.decls.params
        if isinstance(count, ir.ParamRef) and count.name not in params:
            return None  # a parameter whose wrong value is already reported
        values: Sequence[ir.Scalar] = ()
        if isinstance(count, ir.Const):
            values = (count.value,)
        elif isinstance(count, ir.ParamRef) and count.name in params:
            domain = params[count.name].domain
            if isinstance(domain, ir.IntDomain):
                values = (domain.low, domain.high)
            elif isinstance(domain, ir.ChoiceDomain):
                values = domain.values
            elif isinstance(domain, ir.FixedDomain):
                values = (domain.value,)
        if not values or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
            self.diags.error(
                stmt.count.span,
                "a repeat count is an integer, an int range, a choice of integers "
                "or an int parameter",
            )
            return None
        low, high = min(values), max(values)  # type: ignore[type-var]
        if low < 0:
            self.diags.error(stmt.count.span, "a repeat count cannot be negative")
            return None
        if high > MAX_REPEAT:
            self.diags.error(
                stmt.count.span, f"a repeat has at most {MAX_REPEAT} instances, not {high}"
            )
            return None
        return int(low), int(high)

    def choose(self, stmt: s.Choose, scope: Scope) -> list[ir.Node]:
        if not self.decls.check_name(stmt.name, stmt.span):
            return []
        names = [a.name for a in stmt.alternatives]
        for k, alt in enumerate(stmt.alternatives):
            if alt.name in names[:k]:
                self.diags.error(alt.span, f"alternative '{alt.name}' is listed twice")
                return []
        if not self.one_per_line(stmt):
            return []
        if len(names) < 2:
            self.diags.error(stmt.span, "a choose needs at least two alternatives")
            return []
        default = names[0]
        if stmt.default is not None:
            if stmt.default.value not in names:
                self.diags.error(
                    stmt.default.span, "the default must name one of the alternatives"
                )
                return []
            default = str(stmt.default.value)
        param = self.decls.new_param(
            scope.path(stmt.name), ir.ChoiceDomain(tuple(names), False, default), scope, stmt.span
        )
        self.decls.declare(scope, stmt.name, Binding(param, stmt.span))
        alternatives = []
        for alt in stmt.alternatives:
            inner = scope.inner(when=[ir.Condition(param.name, "==", alt.name)])
            alternatives.append((alt.name, self.body(alt.body.stmts, inner)))
        return [ir.Choose(param.name, tuple(alternatives), stmt.span)]

    def one_per_line(self, stmt: s.Choose) -> bool:
        """False, with an error, when an alternative's line holds a labelled layer after
        another statement: `a: conv2d(16, 3) b: conv2d(16, 5)` is one alternative, `a`,
        whose second layer is labelled `b`, which is almost certainly not what was meant.
        """
        ok = True
        for alt in stmt.alternatives:
            if alt.braced:
                continue
            for item in alt.body.stmts[1:]:
                if isinstance(item, s.Call) and item.label is not None:
                    self.diags.error(
                        item.span,
                        f"alternatives go one per line: '{item.label}:' here labels a layer "
                        f"of alternative '{alt.name}'; start '{item.label}' on a line of its "
                        f"own (or, for a label, write `{alt.name}: {{ ... }}` in braces)",
                    )
                    ok = False
        return ok

    def optional(self, stmt: s.Optional, scope: Scope) -> list[ir.Node]:
        if not self.decls.check_name(stmt.name, stmt.span):
            return []
        default = False
        if stmt.default is not None:
            if not isinstance(stmt.default, s.Bool):
                self.diags.error(stmt.default.span, "the default of an optional is true or false")
                return []
            default = stmt.default.value
        param = self.decls.new_param(
            scope.path(stmt.name), ir.ChoiceDomain((False, True), True, default), scope, stmt.span
        )
        self.decls.declare(scope, stmt.name, Binding(param, stmt.span))
        inner = scope.inner(when=[ir.Condition(param.name, "==", True)])
        return [ir.Optional(param.name, self.body(stmt.body.stmts, inner), stmt.span)]
