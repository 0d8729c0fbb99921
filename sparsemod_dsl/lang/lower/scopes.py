"""Lowering scopes: the names a body sees, and the prefix and conditions it lowers under.

`Env` chains the names bound in one scope to those of the enclosing one; `Scope` adds
what else lowering a body needs: the dotted prefix of its parameters, the conditions
under which it exists, the library its calls resolve in, the blocks being inlined (to
find cycles) and the morph weight of the innermost marked block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from .. import ir
from .. import syntax as s
from ..loader import Library


@dataclass(frozen=True)
class Binding:
    """What a name stands for, and where it is defined."""

    expr: ir.Expr
    span: s.Span


@dataclass
class Env:
    """Names visible in one scope, chained to the enclosing scope."""

    parent: "Env | None" = None
    names: dict[str, Binding] = field(default_factory=dict)

    def lookup(self, name: str) -> Binding | None:
        env: Env | None = self
        while env is not None:
            if name in env.names:
                return env.names[name]
            env = env.parent
        return None

    def all_names(self) -> set[str]:
        env: Env | None = self
        found: set[str] = set()
        while env is not None:
            found |= set(env.names)
            env = env.parent
        return found

    def child(self) -> "Env":
        return Env(self)


@dataclass(frozen=True)
class Scope:
    """Where a body is lowered: its names, parameter prefix, conditions and callers."""

    prefix: str
    env: Env
    when: tuple[ir.Condition, ...]
    library: Library
    stack: tuple[str, ...] = ()
    calls: tuple[s.Span, ...] = ()
    #: The morph weight of the innermost marked block being inlined, if any.
    morph: float | None = None

    def path(self, *parts: str) -> str:
        return ".".join(p for p in (self.prefix, *parts) if p)

    def inner(self, prefix: str | None = None, when: Iterable[ir.Condition] = ()) -> "Scope":
        return Scope(
            self.prefix if prefix is None else prefix,
            self.env.child(),
            (*self.when, *when),
            self.library,
            self.stack,
            self.calls,
            self.morph,
        )


def undocumented(stmts: Sequence[s.Statement]) -> Sequence[s.Statement]:
    """A body without its leading doc string."""
    return stmts[1:] if stmts and isinstance(stmts[0], s.Docstring) else stmts
