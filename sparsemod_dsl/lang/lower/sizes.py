"""Searched input sizes: `arch m(input: image(3, res, res), res = choice[48, 64] ordered)`.

A header parameter declared with a domain is a parameter of the space, named as written
(`res`), and visible to the network and constraints like a top-level parameter. An
image's height and width may name one, so that the input resolution is searched with
the network. Checked here: only an image's height and width take names, each name is
such a header parameter, and its values are integers of at least 1.
"""

from __future__ import annotations

from .. import ir
from .. import syntax as s
from ..intervals import interval_of
from ..shapes import Interval
from .messages import suggest
from .scopes import Scope
from .stmts import StmtLowerer


def size_params(header: s.ArchHeader) -> list[s.ArchParam]:
    """The header's searched sizes: its parameters declared with a domain."""
    return [
        p for p in header.params
        if p.domain is not None and p.kind is None and p.name not in ("input", "classes")
    ]


def declare_sizes(header: s.ArchHeader, root: Scope, stmts: StmtLowerer) -> None:
    """Declare the header's size parameters and check the input shape's names."""
    diags = stmts.diags
    declared: list[str] = []
    for param in size_params(header):
        assert param.domain is not None
        stmt = s.Param(param.name, param.domain, span=param.span, name_span=param.span)
        expr = stmts.param_stmt(stmt, root)
        declared.append(param.name)
        what = f"the input size '{param.name}'"
        if expr is None or not stmts.exprs.expect_type(expr, "int", param.domain, what):
            continue
        values = stmts.exprs.values(expr)
        if isinstance(values, Interval) and values.lo < 1:
            diags.error(param.domain.span, f"{what} is at least 1")
    for param in header.params:
        if param.name != "input" or param.shape is None:
            continue
        for index, size in enumerate(param.shape):
            if not isinstance(size, str):
                continue
            if param.kind != "image" or index == 0:
                diags.error(
                    param.span,
                    f"'{size}': only an image's height and width can be searched "
                    "(`image(3, res, res)`)",
                )
            elif size not in declared:
                diags.error(
                    param.span,
                    f"the input size '{size}' is not declared in the header"
                    + suggest(size, declared)
                    + f" (add `{size} = choice[32, 48] ordered` after the input)",
                )


def input_spec(
    kind: str,
    shape: tuple[int | str, ...] | None,
    given: tuple[int, ...] | None,
    params: dict[str, ir.Parameter],
) -> ir.InputSpec:
    """The input: a given shape overrides the header's, but searched sizes stay searched.

    A searched size's nominal value (in `shape`) is the given one, else the largest its
    domain allows: the size of the stored data, which training resizes to the chosen one.
    """
    searched = tuple(size if isinstance(size, str) else None for size in shape or ())
    if not any(searched):
        return ir.InputSpec(kind, given or shape)  # type: ignore[arg-type]
    nominal = given or tuple(
        size if isinstance(size, int) else int(interval_of(params[size].domain).hi)  # type: ignore[union-attr]
        for size in shape or ()
    )
    return ir.InputSpec(kind, nominal, searched)
