"""The names and parameters lowering declares: the space's parameter table.

`Declarations` checks that a name is well formed, binds names in a scope (once per
scope) and declares parameters under their dotted paths (docs/language.md, "Names"),
reporting two parameters with one name at both places and stopping lowering when the
space unrolls to too many.
"""

from __future__ import annotations

import re

from ...errors import Diagnostics
from .. import ir
from .. import syntax as s
from .limits import MAX_PARAMETERS, TooBig
from .scopes import Binding, Scope

_BAD_NAME = re.compile(r"^_|_$|__")


class Declarations:
    """Every parameter declared so far, with the block calls it was declared through."""

    def __init__(self, diags: Diagnostics) -> None:
        self.diags = diags
        self.params: dict[str, ir.Parameter] = {}
        self.sites: dict[str, tuple[s.Span, ...]] = {}

    def check_name(self, name: str, span: s.Span) -> bool:
        if _BAD_NAME.search(name):
            self.diags.error(
                span, f"'{name}': names may not start or end with '_' nor contain '__'"
            )
            return False
        return True

    def declare(self, scope: Scope, name: str, binding: Binding) -> None:
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
        self, path: str, domain: ir.Domain, scope: Scope, span: s.Span, doc: str = "",
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
            raise TooBig
        if weight is None:
            weight = 1.0 if scope.morph is None else scope.morph
        self.params[path] = ir.Parameter(path, domain, scope.when, doc, span, weight)
        self.sites[path] = scope.calls
        return ir.ParamRef(path)
