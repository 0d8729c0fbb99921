"""Plain-text tables for what the CLI prints."""

from __future__ import annotations

from typing import Sequence


def table(rows: Sequence[Sequence[str]], header: Sequence[str], left: int = 0) -> str:
    """Columns padded to their widest cell; the first `left` columns left-aligned, the
    rest (numbers) right-aligned."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if k < left else str(c).rjust(w)
            for k, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])
