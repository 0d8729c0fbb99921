"""Syntax tree -> program IR: resolve names, inline blocks, unroll repeats.

Naming rules (docs/language.md, "Names"):
- a parameter declared as `name = domain` is called `SCOPE.name`;
- an inline domain in a layer argument is `SCOPE.LABEL.arg`, where LABEL is the
  layer's label or, without one, the layer's name (`block[1].dropout.p`);
- `repeat name` adds `name[i]` (from 1) to the scope of its i-th instance;
- a block call adds its label to the scope, or nothing when it has none;
- `choose`, `optional`, `residual` and `time_distributed` add nothing;
- the `train` section's parameters are `train.name`.
Two parameters with one name are an error at both places.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..errors import ArchError, Diagnostics
from . import domains, ir
from . import syntax as s
from .layers import LAYERS
from .loader import Library, Unit

#: Most instances one `repeat` may have.
MAX_REPEAT = 64
#: Most parameters and layers a space may unroll to.
MAX_PARAMETERS = 5000
MAX_LAYERS = 20000

TRAIN_KEYS: dict[str, tuple[str, str]] = {
    "batch_size": ("int", "examples per training step"),
    "learning_rate": ("float", "Adam learning rate"),
    "learning_gamma": ("float", "learning-rate decay factor of the step schedule"),
    "learning_step": ("int", "epochs between learning-rate decays"),
    "prune_threshold": ("float", "final fraction of weights pruned"),
    "weight_decay": ("float", "L2 weight decay"),
    "max_len": ("int", "steps per sequence chunk (the sequence splitter)"),
}

INPUT_KINDS = {"image": 3, "sequence": 2}
_ARTICLE = {"image": "an image", "sequence": "a sequence"}
_TYPE_WORDS = {"int": "an int", "float": "a float", "str": "a string", "bool": "a bool"}
_BAD_NAME = re.compile(r"^_|_$|__")


class _TooBig(Exception):
    """The space unrolls beyond the limits; lowering stops at once."""


@dataclass(frozen=True)
class _Binding:
    expr: ir.Expr
    span: s.Span


@dataclass
class _Env:
    """Names visible in one scope, chained to the enclosing scope."""

    parent: "_Env | None" = None
    names: dict[str, _Binding] = field(default_factory=dict)

    def lookup(self, name: str) -> _Binding | None:
        env: _Env | None = self
        while env is not None:
            if name in env.names:
                return env.names[name]
            env = env.parent
        return None

    def all_names(self) -> set[str]:
        env: _Env | None = self
        found: set[str] = set()
        while env is not None:
            found |= set(env.names)
            env = env.parent
        return found

    def child(self) -> "_Env":
        return _Env(self)


@dataclass(frozen=True)
class _Scope:
    prefix: str
    env: _Env
    when: tuple[ir.Condition, ...]
    library: Library
    stack: tuple[str, ...] = ()
    calls: tuple[s.Span, ...] = ()
    #: The morph weight of the innermost marked block being inlined, if any.
    morph: float | None = None

    def path(self, *parts: str) -> str:
        return ".".join(p for p in (self.prefix, *parts) if p)

    def inner(self, prefix: str | None = None, when: Iterable[ir.Condition] = ()) -> "_Scope":
        return _Scope(
            self.prefix if prefix is None else prefix,
            self.env.child(),
            (*self.when, *when),
            self.library,
            self.stack,
            self.calls,
            self.morph,
        )


def _undocumented(stmts: Sequence[s.Statement]) -> Sequence[s.Statement]:
    """A body without its leading doc string."""
    return stmts[1:] if stmts and isinstance(stmts[0], s.Docstring) else stmts


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def suggest(name: str, candidates: Iterable[str]) -> str:
    """`; did you mean 'x'?` when a close match exists."""
    close = difflib.get_close_matches(name, sorted(set(candidates) - {name}), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class Lowerer:
    """Builds a `Program` from a loaded unit, collecting every error it finds."""

    def __init__(self, unit: Unit, input_shape: tuple[int, ...] | None, classes: int | None):
        self.unit = unit
        self.input_shape = input_shape
        self.classes = classes
        self.diags = Diagnostics()
        self.params: dict[str, ir.Parameter] = {}
        self.constraints: list[ir.Constraint] = []
        self.layers = 0
        self.types: dict[str, str] = {}
        self.called: set[int] = set()
        self.sites: dict[str, tuple[s.Span, ...]] = {}

    # --- entry points ---------------------------------------------------------------

    def program(self) -> ir.Program:
        module = self.unit.library.module
        header = self.header(module)
        root = _Scope("", _Env(), (), self.unit.library)
        network: tuple[ir.Node, ...] = ()
        sections: dict[type, s.Stmt] = {}
        try:
            for item in module.items:
                self.check_order(item, module, sections)
                repeated = isinstance(item, (s.TrainSection, s.NetworkSection)) and (
                    sections[type(item)] is not item
                )
                if repeated:  # reported by check_order; lowering it would repeat its errors
                    continue
                if isinstance(item, s.TrainSection):
                    self.train(item, root)
                elif isinstance(item, s.NetworkSection):
                    network = self.body(_undocumented(item.body.stmts), root.inner())
                elif isinstance(item, s.Constraint):
                    self.constraint(item, root)
                elif isinstance(item, s.BlockDef):
                    self.check_name(item.name, item.span)
                    for formal in item.formals:
                        self.check_name(formal.name, formal.span)
        except _TooBig:
            pass
        if header is None or s.NetworkSection not in sections:
            self.library_only(module, header, sections)
        self.check_uncalled(module)
        doc = next((i.text for i in module.items if isinstance(i, s.Docstring)), "")
        self.diags.raise_if_any()
        assert header is not None
        return ir.Program(
            name=header.name,
            input=self.input_spec(header),
            classes=self.classes if self.classes is not None else self.header_classes(header),
            parameters=tuple(self.params.values()),
            network=network,
            constraints=tuple(self.constraints),
            doc=doc.strip(),
            blocks=tuple(self.unit.library.visible),
            file=module.file,
        )

    def library_blocks(self) -> int:
        """Check every block of a library file (no header, no network) on its own."""
        module = self.unit.library.module
        count = 0
        try:
            for item in module.items:
                self.check_order(item, module, {})
                if isinstance(item, s.BlockDef):
                    count += 1
                    self.check_block(item)
                elif not isinstance(item, (s.Docstring, s.Import)):
                    self.diags.error(item.span, "a library file holds only imports and blocks")
        except _TooBig:
            pass
        if not module.items:
            self.diags.error(
                s.Span(module.file, 1, 1, 1, 2),
                "the file is empty: expected an `arch` header and a `network`, or blocks",
            )
        self.diags.raise_if_any()
        return count

    def check_uncalled(self, module: s.Module) -> None:
        """Blocks this file defines but never calls are checked on their own."""
        for item in module.items:
            if isinstance(item, s.BlockDef) and id(item) not in self.called:
                alone = Lowerer(self.unit, None, None)
                try:
                    alone.check_block(item)
                except _TooBig:
                    pass
                for diagnostic in alone.diags.items:
                    self.diags.error(diagnostic.span, diagnostic.message, *diagnostic.notes)

    def check_block(self, block: s.BlockDef) -> None:
        """Lower a block alone, with required formals left open."""
        scope = _Scope(block.name, _Env(), (), self.unit.library, (block.name,))
        call = s.Call(block.name, span=block.span, name_span=block.span)
        open_formals = {f.name: ir.Builtin(f.name) for f in block.formals if f.default is None}
        for name in open_formals:
            self.types[name] = "any"
        self.inline(block, self.unit.library, call, scope, open_formals)

    # --- file structure ---------------------------------------------------------------

    def header(self, module: s.Module) -> s.ArchHeader | None:
        headers = [i for i in module.items if isinstance(i, s.ArchHeader)]
        for extra in headers[1:]:
            self.diags.error(extra.span, "a file has at most one `arch` header")
        if not headers:
            return None
        header = headers[0]
        seen: set[str] = set()
        for param in header.params:
            if param.name in seen:
                self.diags.error(param.span, f"'{param.name}' is given twice")
            seen.add(param.name)
            if param.name == "input":
                self.check_input(param)
            elif param.name == "classes":
                if param.kind is not None or param.shape is not None:
                    self.diags.error(param.span, "write `classes` or `classes = N`")
                elif param.value is not None and param.value < 2:
                    self.diags.error(param.span, "a classifier needs at least 2 classes")
            else:
                self.diags.error(
                    param.span,
                    f"unknown header parameter '{param.name}'"
                    + suggest(param.name, ["input", "classes"])
                    + " (the header takes `input: image|sequence` and `classes`)",
                )
        if "input" not in seen:
            self.diags.error(header.span, "the header needs `input: image` or `input: sequence`")
        return header

    def check_input(self, param: s.ArchParam) -> None:
        if param.kind not in INPUT_KINDS or param.value is not None:
            self.diags.error(
                param.span, "write `input: image`, `input: sequence` or a shape: `input: image(1, 8, 8)`"
            )
            return
        rank = INPUT_KINDS[param.kind]
        if param.shape is not None and (len(param.shape) != rank or min(param.shape) < 1):
            dims = "C, H, W" if param.kind == "image" else "T, F"
            self.diags.error(
                param.span, f"{_ARTICLE[param.kind]} shape is ({dims}), each at least 1"
            )
        if self.input_shape is not None and len(self.input_shape) != rank:
            self.diags.error(
                param.span,
                f"this network takes {param.kind} input, but the given shape "
                f"{'x'.join(map(str, self.input_shape))} has {len(self.input_shape)} dimensions",
            )

    def input_spec(self, header: s.ArchHeader) -> ir.InputSpec:
        param = next(p for p in header.params if p.name == "input")
        return ir.InputSpec(str(param.kind), self.input_shape or param.shape)

    @staticmethod
    def header_classes(header: s.ArchHeader) -> int | None:
        return next((p.value for p in header.params if p.name == "classes"), None)

    def check_order(self, item: s.Item, module: s.Module, sections: dict[type, s.Stmt]) -> None:
        kind = type(item)
        if isinstance(item, s.Docstring) and item is not module.items[0]:
            self.diags.error(item.span, "a doc string must come first in the file")
        if kind in (s.ArchHeader, s.TrainSection, s.NetworkSection):
            if kind in sections and kind is not s.ArchHeader:
                word = "train" if kind is s.TrainSection else "network"
                self.diags.error(
                    item.span,
                    f"a file has at most one `{word}` section",
                    (sections[kind].span, "the first one is here"),
                )
            sections.setdefault(kind, item)
        if isinstance(item, s.ArchHeader) and any(k is not s.ArchHeader for k in sections):
            self.diags.error(item.span, "the `arch` header comes before sections and blocks")
        if isinstance(item, s.Import) and any(k is not s.ArchHeader for k in sections):
            self.diags.error(item.span, "imports come before sections and blocks")
        if isinstance(item, s.BlockDef):
            sections.setdefault(s.BlockDef, item)

    def library_only(
        self, module: s.Module, header: s.ArchHeader | None, sections: dict[type, s.Stmt]
    ) -> None:
        if header is not None:
            self.diags.error(header.span, "the file has an `arch` header but no `network` section")
        elif s.NetworkSection in sections:
            self.diags.error(
                sections[s.NetworkSection].span,
                "a `network` needs an `arch NAME(input: image|sequence, classes)` header before it",
            )
        elif not module.items:
            self.diags.error(
                s.Span(module.file, 1, 1, 1, 2),
                "the file is empty: expected an `arch` header and a `network`, or blocks",
            )
        else:
            self.diags.error(
                module.items[0].span,
                "this file has no `arch` header and `network`: check it as a library "
                "(it holds only blocks) or add them",
            )

    # --- names and parameters -----------------------------------------------------------

    def check_name(self, name: str, span: s.Span) -> bool:
        if _BAD_NAME.search(name):
            self.diags.error(
                span, f"'{name}': names may not start or end with '_' nor contain '__'"
            )
            return False
        return True

    def declare(self, scope: _Scope, name: str, binding: _Binding) -> None:
        previous = scope.env.names.get(name)
        if previous is not None:
            self.diags.error(
                binding.span,
                f"'{name}' is already defined in this scope",
                (previous.span, f"'{name}' is first defined here"),
            )
            return
        scope.env.names[name] = binding

    def new_param(
        self, path: str, domain: ir.Domain, scope: _Scope, span: s.Span, doc: str = "",
        weight: float | None = None,
    ) -> ir.ParamRef:
        """Declare a parameter; its morph weight is its own, else its block's, else 1."""
        previous = self.params.get(path)
        here = (*scope.calls, span)
        if previous is not None:
            there = (*self.sites[path], previous.span)
            # Point at the first place the two differ: the calls of one block, or the texts.
            k = next((i for i, (a, b) in enumerate(zip(here, there)) if a != b), -1)
            self.diags.error(
                here[k],
                f"two parameters are named '{path}'; give one of them a label "
                "(`name: layer(...)`) or another name",
                (there[k], "the other one is defined here"),
            )
            return ir.ParamRef(path)
        if len(self.params) >= MAX_PARAMETERS:
            self.diags.error(
                span,
                f"the space unrolls to more than {MAX_PARAMETERS} parameters; "
                "narrow the repeat ranges",
            )
            raise _TooBig
        if weight is None:
            weight = 1.0 if scope.morph is None else scope.morph
        self.params[path] = ir.Parameter(path, domain, scope.when, doc, span, weight)
        self.sites[path] = scope.calls
        return ir.ParamRef(path)

    def value(
        self, value: s.Value, path: str, scope: _Scope, span: s.Span
    ) -> ir.Expr | None:
        """A written value: domains and literals make parameters, expressions resolve."""
        if isinstance(value, (s.IntRange, s.FloatRange, s.Choice)):
            domain = domains.convert(value, self.diags)
            if domain is None:
                return None
            weight = None if value.morph is None else float(value.morph.value)
            return self.new_param(path, domain, scope, span, weight=weight)
        return self.expr(value, scope)

    def param_value(self, value: s.Value, path: str, scope: _Scope, span: s.Span) -> ir.Expr | None:
        """Like `value`, but a literal becomes a fixed parameter (it is declared)."""
        if isinstance(value, (s.Number, s.String, s.Bool)):
            return self.new_param(path, domains.fixed(value), scope, span)
        return self.value(value, path, scope, span)

    # --- expressions ----------------------------------------------------------------------

    def expr(self, node: s.Expr, scope: _Scope) -> ir.Expr | None:
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

    def func(self, node: s.Func, scope: _Scope) -> ir.Expr | None:
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
        self.diags.error(span, f"arithmetic needs numbers, but this is {_TYPE_WORDS[kind]}")
        return False

    def ref(self, node: s.Ref, scope: _Scope) -> ir.Expr | None:
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
                if candidate in self.params:
                    return ir.ParamRef(candidate)
        names = scope.env.all_names() | set(ir.BUILTINS) | set(self.params)
        self.diags.error(node.span, f"'{node.text}' is not defined" + suggest(node.text, names))
        return None

    def type_of(self, expr: ir.Expr) -> str:
        """int, float, str, bool, or any (an open block formal)."""
        if isinstance(expr, ir.Const):
            return ir.value_type(expr.value)
        if isinstance(expr, ir.ParamRef):
            return self.params[expr.name].domain.type if expr.name in self.params else "any"
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

    # --- statements --------------------------------------------------------------------

    def train(self, section: s.TrainSection, root: _Scope) -> None:
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
                self.expect_type(expr, wanted, stmt.value, f"'{stmt.name}'")

    def expect_type(self, expr: ir.Expr, wanted: str, node: s.Value, what: str) -> bool:
        got = self.type_of(expr)
        ok = got in (wanted, "any") or (wanted == "float" and got == "int")
        if wanted == "padding":
            ok = got in ("int", "str", "any")
        if not ok:
            shown = "an int or a string" if wanted == "padding" else _TYPE_WORDS[wanted]
            self.diags.error(node.span, f"{what} takes {shown}, not {_TYPE_WORDS[got]}")
        return ok

    def body(self, stmts: Sequence[s.Statement], scope: _Scope) -> tuple[ir.Node, ...]:
        nodes: list[ir.Node] = []
        for stmt in stmts:
            nodes.extend(self.stmt(stmt, scope))
        return tuple(nodes)

    def stmt(self, stmt: s.Statement, scope: _Scope) -> list[ir.Node]:
        if isinstance(stmt, s.Param):
            self.param_stmt(stmt, scope)
            return []
        if isinstance(stmt, s.Call):
            return self.call(stmt, scope)
        if isinstance(stmt, s.Repeat):
            return self.repeat(stmt, scope)
        if isinstance(stmt, s.Choose):
            return self.choose(stmt, scope)
        if isinstance(stmt, s.Optional):
            return self.optional(stmt, scope)
        if isinstance(stmt, s.Residual):
            return [ir.Residual(self.body(stmt.body.stmts, scope.inner()), stmt.span)]
        if isinstance(stmt, s.TimeDistributed):
            return [ir.TimeDistributed(self.body(stmt.body.stmts, scope.inner()), stmt.span)]
        if isinstance(stmt, s.Constraint):
            self.constraint(stmt, scope)
            return []
        self.diags.error(stmt.span, "a doc string must come first in a block")
        return []

    def param_stmt(self, stmt: s.Param, scope: _Scope) -> ir.Expr | None:
        self.check_name(stmt.name, stmt.name_span)  # still declared: its uses resolve
        previous = scope.env.names.get(stmt.name)
        if previous is not None:
            self.diags.error(
                stmt.name_span,
                f"'{stmt.name}' is already defined in this scope",
                (previous.span, f"'{stmt.name}' is first defined here"),
            )
            return None
        expr = self.param_value(stmt.value, scope.path(stmt.name), scope, stmt.span)
        # A wrong value is reported; the name stays declared (with an unknown type),
        # so that its uses are no further errors.
        bound = ir.ParamRef(scope.path(stmt.name)) if expr is None else expr
        self.declare(scope, stmt.name, _Binding(bound, stmt.name_span))
        return expr

    def constraint(self, stmt: s.Constraint, scope: _Scope) -> None:
        left = self.expr(stmt.left, scope)
        right = self.expr(stmt.right, scope)
        if left is None or right is None:
            return
        for side, node in ((left, stmt.left), (right, stmt.right)):
            if self.type_of(side) not in ("int", "float"):
                self.diags.error(node.span, "constraints compare numbers")
                return
        self.constraints.append(ir.Constraint(left, stmt.op, right, stmt.span))

    def call(self, stmt: s.Call, scope: _Scope) -> list[ir.Node]:
        if stmt.label is not None and not self.check_name(stmt.label, stmt.span):
            return []
        if stmt.name in LAYERS:
            layer = self.layer(stmt, scope)
            return [] if layer is None else [layer]
        found = scope.library.visible.get(stmt.name)
        if found is None:
            known = set(LAYERS) | set(scope.library.visible)
            self.diags.error(
                stmt.name_span, f"unknown layer or block '{stmt.name}'" + suggest(stmt.name, known)
            )
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
        prefix = scope.path(stmt.label) if stmt.label else scope.prefix
        inner = _Scope(
            prefix, _Env(), scope.when, owner, (*scope.stack, block.name),
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
        inner: _Scope,
        bound: dict[str, ir.Expr],
    ) -> list[ir.Node]:
        missing = [f.name for f in block.formals if f.default is None and f.name not in bound]
        for name in missing:
            self.diags.error(stmt.name_span, f"'{block.name}' needs the argument '{name}'")
        if missing:  # the body would report every use of the missing formals
            return []
        for formal in block.formals:
            if formal.name in bound:
                self.declare(inner, formal.name, _Binding(bound[formal.name], formal.span))
                continue
            assert formal.default is not None
            expr = self.value(formal.default, inner.path(formal.name), inner, formal.span)
            if expr is None:  # the body would report every use of this formal
                return []
            self.declare(inner, formal.name, _Binding(expr, formal.span))
        return list(self.body(_undocumented(block.body.stmts), inner))

    def bind_formals(
        self, block: s.BlockDef, stmt: s.Call, caller: _Scope, inner: _Scope
    ) -> dict[str, ir.Expr] | None:
        """The call's arguments by formal name; None when one of them is wrong."""
        names = [f.name for f in block.formals]
        bound: dict[str, ir.Expr] = {}
        for arg, name in self.match_args(stmt, names, f"block '{block.name}'"):
            expr = self.value(arg.value, inner.path(name), caller, arg.span)
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
                    most = f"at most {_plural(len(names), 'argument')}" if names else "no arguments"
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

    def layer(self, stmt: s.Call, scope: _Scope) -> ir.Layer | None:
        spec = LAYERS[stmt.name]
        label = stmt.label or stmt.name
        path = scope.path(label)
        self.layers += 1
        if self.layers > MAX_LAYERS:
            self.diags.error(
                stmt.span, f"the space unrolls to more than {MAX_LAYERS} layers; narrow the repeats"
            )
            raise _TooBig
        given: dict[str, ir.Expr] = {}
        for arg, name in self.match_args(stmt, [a.name for a in spec.args], f"'{spec.name}'"):
            arg_spec = spec.arg(name)
            assert arg_spec is not None
            expr = self.value(arg.value, f"{path}.{name}", scope, arg.span)
            if expr is not None and self.expect_type(expr, arg_spec.type, arg.value, f"'{name}'"):
                given[name] = expr
        args: list[tuple[str, ir.Expr]] = []
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

    def repeat(self, stmt: s.Repeat, scope: _Scope) -> list[ir.Node]:
        if not self.check_name(stmt.name, stmt.span):
            return []
        path = scope.path(stmt.name)
        count = self.param_value(stmt.count, path, scope, stmt.span)
        if count is None:
            return []
        bounds = self.count_bounds(count, stmt)
        if bounds is None:
            return []
        low, high = bounds
        self.declare(scope, stmt.name, _Binding(count, stmt.span))
        instances = []
        for i in range(1, high + 1):
            when = [] if i <= low or not isinstance(count, ir.ParamRef) else [
                ir.Condition(count.name, ">=", i)
            ]
            inner = scope.inner(scope.path(f"{stmt.name}[{i}]"), when)
            instances.append(self.body(stmt.body.stmts, inner))
        return [ir.Repeat(count, tuple(instances), path, stmt.span)]

    def count_bounds(self, count: ir.Expr, stmt: s.Repeat) -> tuple[int, int] | None:
        if isinstance(count, ir.ParamRef) and count.name not in self.params:
            return None  # a parameter whose wrong value is already reported
        values: Sequence[ir.Scalar] = ()
        if isinstance(count, ir.Const):
            values = (count.value,)
        elif isinstance(count, ir.ParamRef) and count.name in self.params:
            domain = self.params[count.name].domain
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

    def choose(self, stmt: s.Choose, scope: _Scope) -> list[ir.Node]:
        if not self.check_name(stmt.name, stmt.span):
            return []
        names = [a.name for a in stmt.alternatives]
        for k, alt in enumerate(stmt.alternatives):
            if alt.name in names[:k]:
                self.diags.error(alt.span, f"alternative '{alt.name}' is listed twice")
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
        param = self.new_param(
            scope.path(stmt.name), ir.ChoiceDomain(tuple(names), False, default), scope, stmt.span
        )
        self.declare(scope, stmt.name, _Binding(param, stmt.span))
        alternatives = []
        for alt in stmt.alternatives:
            inner = scope.inner(when=[ir.Condition(param.name, "==", alt.name)])
            alternatives.append((alt.name, self.body(alt.body.stmts, inner)))
        return [ir.Choose(param.name, tuple(alternatives), stmt.span)]

    def optional(self, stmt: s.Optional, scope: _Scope) -> list[ir.Node]:
        if not self.check_name(stmt.name, stmt.span):
            return []
        default = False
        if stmt.default is not None:
            if not isinstance(stmt.default, s.Bool):
                self.diags.error(stmt.default.span, "the default of an optional is true or false")
                return []
            default = stmt.default.value
        param = self.new_param(
            scope.path(stmt.name), ir.ChoiceDomain((False, True), True, default), scope, stmt.span
        )
        self.declare(scope, stmt.name, _Binding(param, stmt.span))
        inner = scope.inner(when=[ir.Condition(param.name, "==", True)])
        return [ir.Optional(param.name, self.body(stmt.body.stmts, inner), stmt.span)]


def lower(
    unit: Unit, input_shape: tuple[int, ...] | None = None, classes: int | None = None
) -> ir.Program:
    """Build the program IR of a loaded file.

    Args:
        unit: the file with its imports.
        input_shape: overrides the header's input shape (C, H, W) or (T, F).
        classes: overrides the header's number of classes.

    Raises:
        ArchError: every naming, typing and structure error found.
    """
    return Lowerer(unit, input_shape, classes).program()


def is_library(unit: Unit) -> bool:
    """True for a file with no header and no network (only blocks and imports)."""
    return not any(
        isinstance(i, (s.ArchHeader, s.NetworkSection, s.TrainSection))
        for i in unit.library.module.items
    )


def check_library(unit: Unit) -> int:
    """Check a library file's blocks; returns how many blocks it defines."""
    return Lowerer(unit, None, None).library_blocks()


__all__ = ["lower", "check_library", "is_library", "suggest", "TRAIN_KEYS", "ArchError"]
