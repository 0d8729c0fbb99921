"""Comments -> the statements they belong to, for the formatter to print them back.

The lexer hands comments over apart from the parse tree; `TreeBuilder` asks a
`CommentAttacher` for each region it builds (the file, a body, a choose), inner
regions first. Kept apart from `build_tree` because which statement owns which
comment, and where blank lines stand, is a question of its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from lark import Token

from . import syntax as s


class CommentAttacher:
    """The comments of one file, each given to at most one statement."""

    def __init__(self, text: str, comments: Sequence[Token]) -> None:
        self.lines = text.split("\n")
        self.comments = sorted(comments, key=lambda t: (t.line, t.column))
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
        end: list[str] = []
        for i, token in enumerate(self.comments):
            if self.claimed[i] or not _inside(token, region):
                continue
            self.claimed[i] = True
            text = str(token).rstrip()
            owner = _trailing_owner(stmts, token)
            if owner is not None and trailing[owner] is None:
                trailing[owner] = text
                continue
            after = next(
                (k for k, st in enumerate(stmts) if (st.span.end_line, st.span.end_column)
                 > (token.line, token.column)),
                None,
            )
            if after is None:
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


def _inside(token: Token, region: s.Span) -> bool:
    start = (region.line, region.column)
    stop = (region.end_line, region.end_column)
    return start <= (token.line, token.column) < stop


def _trailing_owner(stmts: list, token: Token) -> int | None:
    """The last statement ending on the comment's line, before it, if any."""
    owner = None
    for k, st in enumerate(stmts):
        if st.span.end_line == token.line and st.span.end_column <= token.column:
            owner = k
    if owner is not None and any(
        st.span.line == token.line and st.span.column > token.column for st in stmts
    ):
        return None
    return owner
