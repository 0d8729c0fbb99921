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

#: Most errors shown at once; the rest are counted in one last line.
MAX_SHOWN = 100


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
        shown = [str(d) for d in self.diagnostics[:MAX_SHOWN]]
        super().__init__("\n".join([*shown, *_more(len(self.diagnostics))]))

    @classmethod
    def at(cls, span: Span, message: str) -> "ArchError":
        """A single error at `span`."""
        return cls([Diagnostic(span, message)])


def _order(diagnostic: Diagnostic) -> tuple[str, int, int]:
    span = diagnostic.span
    return (span.file, span.line, span.column)


def _more(count: int) -> list[str]:
    """The line that counts the errors left out, if any."""
    hidden = count - MAX_SHOWN
    if hidden <= 0:
        return []
    return [f"... and {hidden} more error{'' if hidden == 1 else 's'} "
            f"(only the first {MAX_SHOWN} are shown)"]


class Diagnostics:
    """Collects errors during a pass so that all of them can be reported at once.

    Each distinct error is kept once, in the order found; recording one takes constant
    time, so that a file with very many errors is still reported in linear time.
    """

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self._seen: set[Diagnostic] = set()

    def error(self, span: Span, message: str, *notes: tuple[Span, str]) -> None:
        """Record an error at `span`, with optional notes pointing elsewhere."""
        self.add(Diagnostic(span, message, tuple(notes)))

    @property
    def crowded(self) -> bool:
        """True once more errors are recorded than are shown: the time to find a
        suggestion for another one (among thousands of names, say) would be lost."""
        return len(self.items) >= MAX_SHOWN

    def add(self, diagnostic: Diagnostic) -> None:
        """Record a diagnostic unless it is already recorded."""
        if diagnostic not in self._seen:
            self._seen.add(diagnostic)
            self.items.append(diagnostic)

    def extend(self, error: ArchError) -> None:
        """Record every diagnostic of an already raised error."""
        for diagnostic in error.diagnostics:
            self.add(diagnostic)

    def raise_if_any(self) -> None:
        """Raise an `ArchError` holding everything collected so far."""
        if self.items:
            raise ArchError(self.items)


def render(error: ArchError, sources: dict[str, str]) -> str:
    """Render diagnostics with the source line and a caret under each span.

    The first `MAX_SHOWN` diagnostics are shown, then a line counting the others.

    Args:
        error: the error to show.
        sources: file name -> file text, for the lines to quote; a file missing
            here is shown without a quoted line.
    """
    lines = {name: text.split("\n") for name, text in sources.items()}
    shown = [_render_one(d, lines) for d in error.diagnostics[:MAX_SHOWN]]
    return "\n".join([*shown, *_more(len(error.diagnostics))])


def _render_one(diagnostic: Diagnostic, sources: dict[str, list[str]]) -> str:
    parts = [str(diagnostic), *_quote(diagnostic.span, sources)]
    for span, note in diagnostic.notes:
        parts.append(f"{span.where()}: note: {note}")
        parts.extend(_quote(span, sources))
    return "\n".join(parts)


def _quote(span: Span, sources: dict[str, list[str]]) -> Iterable[str]:
    lines = sources.get(span.file)
    if lines is None or span.line < 1 or span.line > len(lines):
        return []
    line = lines[span.line - 1].expandtabs(1)
    start = max(span.column - 1, 0)
    if span.end_line == span.line and span.end_column > span.column:
        width = span.end_column - span.column
    else:
        width = max(len(line.rstrip()) - start, 1)
    return ["    " + line, "    " + " " * start + "^" + "~" * (width - 1)]
