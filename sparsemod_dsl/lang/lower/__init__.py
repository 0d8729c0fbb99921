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

This package's entry runs lowering from the top of a file; the work is shared out
among `sections` (header, sections and their order), `stmts` (bodies and structural
statements, the train section), `calls` (layers and block inlining), `exprs` (values,
expressions, types), `declarations` (names and the parameter table), `scopes`,
`limits` and `messages`.
"""

from __future__ import annotations

from ...errors import Diagnostics
from .. import ir
from .. import syntax as s
from ..loader import Unit
from .declarations import Declarations
from .exprs import ExprLowerer
from .limits import TooBig
from .scopes import Env, Scope, undocumented
from .sections import FileChecks
from .sizes import declare_sizes
from .stmts import StmtLowerer


class Lowerer:
    """Builds a `Program` from a loaded unit, collecting every error it finds."""

    def __init__(self, unit: Unit, input_shape: tuple[int, ...] | None, classes: int | None):
        self.unit = unit
        self.classes = classes
        self.diags = Diagnostics()
        self.file = FileChecks(self.diags, input_shape)
        self.decls = Declarations(self.diags)
        self.exprs = ExprLowerer(self.decls)
        self.stmts = StmtLowerer(self.decls, self.exprs)

    def program(self) -> ir.Program:
        module = self.unit.library.module
        header = self.file.header(module)
        root = Scope("", Env(), (), self.unit.library)
        if header is not None:
            declare_sizes(header, root, self.stmts)
        network: tuple[ir.Node, ...] = ()
        sections: dict[type, s.Stmt] = {}
        try:
            for item in module.items:
                self.file.check_order(item, module, sections)
                repeated = isinstance(item, (s.TrainSection, s.NetworkSection)) and (
                    sections[type(item)] is not item
                )
                if repeated:  # reported by check_order; lowering it would repeat its errors
                    continue
                if isinstance(item, s.TrainSection):
                    self.stmts.train(item, root)
                elif isinstance(item, s.NetworkSection):
                    network = self.stmts.body(undocumented(item.body.stmts), root.inner())
                elif isinstance(item, s.Constraint):
                    self.stmts.constraint(item, root)
                elif isinstance(item, s.BlockDef):
                    self.decls.check_name(item.name, item.span)
                    for formal in item.formals:
                        self.decls.check_name(formal.name, formal.span)
            self.check_uncalled(module)
        except TooBig:  # reported where it happened; checking more would only repeat it
            pass
        if header is None or s.NetworkSection not in sections:
            self.file.library_only(module, header, sections)
        doc = next((i.text for i in module.items if isinstance(i, s.Docstring)), "")
        self.diags.raise_if_any()
        assert header is not None
        return ir.Program(
            name=header.name,
            input=self.file.input_spec(header, self.decls.params),
            classes=self.classes if self.classes is not None else self.file.header_classes(header),
            parameters=tuple(self.decls.params.values()),
            network=network,
            constraints=tuple(self.stmts.constraints),
            doc=doc.strip(),
            blocks=tuple(self.unit.library.visible),
            file=module.file,
            loss=self.file.header_loss(header),
            cost_constraints=tuple(self.stmts.cost_constraints),
        )

    def library_blocks(self) -> int:
        """Check every block of a library file (no header, no network) on its own."""
        module = self.unit.library.module
        count = 0
        try:
            for item in module.items:
                self.file.check_order(item, module, {})
                if isinstance(item, s.BlockDef):
                    count += 1
                    self.check_block(item)
                elif not isinstance(item, (s.Docstring, s.Import)):
                    self.diags.error(item.span, "a library file holds only imports and blocks")
        except TooBig:
            pass
        if not module.items:
            self.file.empty(module)
        self.diags.raise_if_any()
        return count

    def check_uncalled(self, module: s.Module) -> None:
        """Blocks this file defines but never calls are checked on their own (and those
        they call, through them)."""
        called = self.stmts.calls.called
        for item in module.items:
            if isinstance(item, s.BlockDef) and id(item) not in called:
                alone = Lowerer(self.unit, None, None)
                try:
                    alone.check_block(item)
                except TooBig:
                    pass
                called |= alone.stmts.calls.called
                for diagnostic in alone.diags.items:
                    self.diags.add(diagnostic)

    def check_block(self, block: s.BlockDef) -> None:
        """Lower a block alone, with required formals left open."""
        scope = Scope(block.name, Env(), (), self.unit.library, (block.name,))
        call = s.Call(block.name, span=block.span, name_span=block.span)
        open_formals = {f.name: ir.Builtin(f.name) for f in block.formals if f.default is None}
        for name in open_formals:
            self.exprs.types[name] = "any"
        self.stmts.calls.inline(block, self.unit.library, call, scope, open_formals)


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


__all__ = ["lower", "check_library", "is_library"]
