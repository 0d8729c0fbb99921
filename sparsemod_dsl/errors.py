"""The project's exceptions, the source spans they point at, and their rendering.

Every user-facing error is a `SparsemodError`. Errors in `.arch` files carry a
`Span` and render as ``FILE:LINE:COL: error: message`` followed by the source
line and a caret under the offending text, so editors can jump to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file; lines and columns start at 1."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def where(self) -> str:
        """`FILE:LINE:COL`, the prefix of every diagnostic."""
        return f"{self.file}:{self.line}:{self.column}"


NO_SPAN = Span("<unknown>", 0, 0, 0, 0)


class SparsemodError(Exception):
    """Base class of every error a user can cause; never shown with a traceback."""


class UsageError(SparsemodError):
    """Bad command-line usage or an unreadable input file (exit code 2)."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a source file: where it is and what is wrong."""

    span: Span
    message: str
    notes: tuple[tuple[Span, str], ...] = ()

    def __str__(self) -> str:
        return f"{self.span.where()}: error: {self.message}"


class ArchError(SparsemodError):
    """One or more errors in `.arch` source, each with its position."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(diagnostics, key=_order))
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @classmethod
    def at(cls, span: Span, message: str) -> "ArchError":
        """A single error at `span`."""
        return cls([Diagnostic(span, message)])


def _order(diagnostic: Diagnostic) -> tuple[str, int, int]:
    span = diagnostic.span
    return (span.file, span.line, span.column)


class Diagnostics:
    """Collects errors during a pass so that all of them can be reported at once."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, span: Span, message: str, *notes: tuple[Span, str]) -> None:
        """Record an error at `span`, with optional notes pointing elsewhere."""
        diagnostic = Diagnostic(span, message, tuple(notes))
        if diagnostic not in self.items:
            self.items.append(diagnostic)

    def extend(self, error: ArchError) -> None:
        """Record every diagnostic of an already raised error."""
        for diagnostic in error.diagnostics:
            if diagnostic not in self.items:
                self.items.append(diagnostic)

    def raise_if_any(self) -> None:
        """Raise an `ArchError` holding everything collected so far."""
        if self.items:
            raise ArchError(self.items)


def render(error: ArchError, sources: dict[str, str]) -> str:
    """Render diagnostics with the source line and a caret under each span.

    Args:
        error: the error to show.
        sources: file name -> file text, for the lines to quote; a file missing
            here is shown without a quoted line.
    """
    return "\n".join(_render_one(d, sources) for d in error.diagnostics)


def _render_one(diagnostic: Diagnostic, sources: dict[str, str]) -> str:
    parts = [str(diagnostic), *_quote(diagnostic.span, sources)]
    for span, note in diagnostic.notes:
        parts.append(f"{span.where()}: note: {note}")
        parts.extend(_quote(span, sources))
    return "\n".join(parts)


def _quote(span: Span, sources: dict[str, str]) -> Iterable[str]:
    text = sources.get(span.file)
    if text is None or span.line < 1:
        return []
    lines = text.split("\n")
    if span.line > len(lines):
        return []
    line = lines[span.line - 1].expandtabs(1)
    start = max(span.column - 1, 0)
    if span.end_line == span.line and span.end_column > span.column:
        width = span.end_column - span.column
    else:
        width = max(len(line.rstrip()) - start, 1)
    return ["    " + line, "    " + " " * start + "^" + "~" * (width - 1)]
