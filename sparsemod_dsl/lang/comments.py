"""Comments -> the statements they belong to, for the formatter to print them back.

The lexer hands comments over apart from the parse tree; `TreeBuilder` asks a
`CommentAttacher` for each region it builds (the file, a body, a choose), inner
regions first. Kept apart from `build_tree` because which statement owns which
comment, and where blank lines stand, is a question of its own.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import replace
from typing import Sequence

from lark import Token

from . import syntax as s


class CommentAttacher:
    """The comments of one file, each given to at most one statement.

    Comments, and the statements of a region, are in source order, so each lookup is a
    binary search: attaching takes time linear in the comments times the nesting depth.
    """

    def __init__(self, text: str, comments: Sequence[Token]) -> None:
        self.lines = text.split("\n")
        self.comments = sorted(comments, key=_where)
        self.positions = [_where(t) for t in self.comments]
        self.claimed = [False] * len(self.comments)

    def attach(self, stmts: list, region: s.Span) -> tuple[list, list[str]]:
        """Give each unclaimed comment inside `region` to the statement it belongs to.

        A comment at the end of a statement's last line trails that statement;
        any other comment leads the first statement ending after it; comments
        after the last statement are returned as the region's end comments.
        Inner regions are built first, so they claim their comments first.
        """
        leading: list[list[str]] = [[] for _ in stmts]
        trailing: list[str | None] = [None] * len(stmts)
        first_line = [st.span.line for st in stmts]
        starts = [(st.span.line, st.span.column) for st in stmts]
        ends = [(st.span.end_line, st.span.end_column) for st in stmts]
        end: list[str] = []
        first = bisect_left(self.positions, (region.line, region.column))
        stop = bisect_left(self.positions, (region.end_line, region.end_column))
        for i in range(first, stop):
            if self.claimed[i]:
                continue
            self.claimed[i] = True
            token = self.comments[i]
            text = str(token).rstrip()
            where = self.positions[i]
            after = bisect_right(ends, where)  # the first statement ending after it
            owner = _trailing_owner(starts, ends, after, where)
            if owner is not None and trailing[owner] is None:
                trailing[owner] = text
            elif after == len(stmts):
                end.append(text)
            else:
                leading[after].append(text)
                first_line[after] = min(first_line[after], token.line)
        result = []
        for k, st in enumerate(stmts):
            blank = k > 0 and self.blank_between(stmts[k - 1].span.end_line, first_line[k])
            result.append(
                replace(
                    st,
                    comments=tuple(leading[k]),
                    trailing=trailing[k],
                    blank_before=blank,
                )
            )
        return result, end

    def blank_between(self, after_line: int, before_line: int) -> bool:
        return any(not self.lines[n - 1].strip() for n in range(after_line + 1, before_line))


def _where(token: Token) -> tuple[int, int]:
    return (token.line or 0, token.column or 0)


def _trailing_owner(
    starts: list[tuple[int, int]], ends: list[tuple[int, int]], after: int,
    where: tuple[int, int],
) -> int | None:
    """The last statement ending on the comment's line before it, unless another
    statement starts after the comment on that line (then the comment leads it)."""
    owner = after - 1
    if owner < 0 or ends[owner][0] != where[0]:
        return None
    later = bisect_right(starts, where)
    if later < len(starts) and starts[later][0] == where[0]:
        return None
    return owner
