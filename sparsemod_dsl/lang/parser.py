"""Text -> syntax tree: the Lark LALR parser for `.arch` files.

The grammar lives in `grammar/arch.lark` (shipped as `sparsemod_dsl.grammar`).
A small post-lexer makes newlines significant except inside brackets; comments
are collected by a lexer callback. `build_tree` turns Lark's tree into `syntax`
nodes and attaches the comments to the statements around them, so that the
formatter can print them back.
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from functools import lru_cache
from importlib import resources
from typing import Iterator

import lark
from lark import Lark, Token
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from ..errors import ArchError
from . import syntax as s
from .build_tree import TreeBuilder, token_span

#: Deepest nesting of brackets and braces a file may use.
MAX_NESTING = 64


class _TooDeep(Exception):
    def __init__(self, token: Token) -> None:
        self.token = token


class _Layout:
    """Post-lexer: drops newlines inside () and [], at the start of the file
    and after `{`, merges runs of newlines, and bounds the nesting depth."""

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        brackets = 0
        depth = 0
        previous: str | None = None
        for token in stream:
            if token.type == "_NL" and (brackets or previous in (None, "LBRACE", "_NL")):
                continue
            if token.type in ("LPAR", "LSQB", "LBRACE"):
                depth += 1
                if depth > MAX_NESTING:
                    raise _TooDeep(token)
                brackets += token.type != "LBRACE"
            elif token.type in ("RPAR", "RSQB", "RBRACE"):
                depth = max(depth - 1, 0)
                if token.type != "RBRACE":
                    brackets = max(brackets - 1, 0)
            yield token
            previous = token.type


class _CommentSink:
    """Receives COMMENT tokens from the lexer during one parse."""

    def __init__(self) -> None:
        self.comments: list[Token] = []

    def __call__(self, token: Token) -> Token:
        self.comments.append(token)
        return token


_SINK = _CommentSink()
_LOCK = threading.Lock()


def grammar_text() -> str:
    """The grammar, as shipped with the package."""
    return resources.files("sparsemod_dsl.grammar").joinpath("arch.lark").read_text("utf-8")


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        postlex=_Layout(),
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _SINK},
    )


def parse(text: str, file: str = "<string>") -> s.Module:
    """Parse `.arch` source into a syntax tree.

    Raises:
        ArchError: on any syntax error, with its position.
    """
    text = text.removeprefix("\ufeff")
    with _LOCK:
        _SINK.comments = []
        try:
            tree = _lark().parse(text)
        except _TooDeep as deep:
            raise ArchError.at(
                token_span(deep.token, file),
                f"nesting is deeper than {MAX_NESTING} levels",
            ) from None
        except UnexpectedInput as error:
            raise ArchError.at(*_describe(error, text, file)) from None
        comments = list(_SINK.comments)
    builder = TreeBuilder(file, text, comments)
    module = builder.transform(tree)
    builder.diagnostics.raise_if_any()
    return replace(module, file=file)


# --- syntax errors ------------------------------------------------------------------

_NAMED_TERMINALS = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "DOCSTRING": "a doc string",
    "COMPARE": "a comparison (<=, >=, ==, ...)",
    "_NL": "a new line",
    "$END": "end of file",
}


def _describe_terminal(name: str) -> str:
    if name in _NAMED_TERMINALS:
        return _NAMED_TERMINALS[name]
    for terminal in _lark().terminals:
        if terminal.name == name and isinstance(terminal.pattern, lark.lexer.PatternStr):
            return f"'{terminal.pattern.value}'"
    return name


def _describe(error: UnexpectedInput, text: str, file: str) -> tuple[s.Span, str]:
    line = error.line if isinstance(error.line, int) and error.line > 0 else text.count("\n") + 1
    column = error.column if isinstance(error.column, int) and error.column > 0 else 1
    if text.startswith('"""', _offset(text, line, column)) and '"""' not in text[
        _offset(text, line, column) + 3:
    ]:
        return s.Span(file, line, column, line, column + 3), "unterminated doc string"
    if isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream] if error.pos_in_stream < len(text) else ""
        if char == '"':
            message = "unterminated string"
        else:
            message = f"unexpected character {char!r}"
        return s.Span(file, line, column, line, column + 1), message
    if isinstance(error, UnexpectedToken):
        labelled = _labelled_structure(text, line, column, file)
        if labelled is not None:
            return labelled
        token = error.token
        expected = sorted({_describe_terminal(t) for t in error.expected if t != "$END"})
        if "$END" in error.expected:
            expected.append("end of file")
        found = "end of file" if token.type == "$END" else _found(token)
        message = f"unexpected {found}"
        if expected:
            shown = expected if len(expected) <= 8 else expected[:8] + ["..."]
            message += "; expected " + ", ".join(shown)
        if token.type == "$END":
            return s.Span(file, line, column, line, column + 1), message
        return token_span(token, file), message
    if isinstance(error, UnexpectedEOF):
        return s.Span(file, line, column, line, column + 1), "unexpected end of file"
    return s.Span(file, line, column, line, column + 1), str(error).splitlines()[0]


_LABELLED = re.compile(r"\b([A-Za-z_]\w*)\s*:\s*(repeat|time_distributed)\b")


def _labelled_structure(text: str, line: int, column: int, file: str
                        ) -> tuple[s.Span, str] | None:
    """The error of a label on `repeat` or `time_distributed` before the
    error's position on its line, which Lark reports as a puzzling token after it."""
    source = text.split("\n")[line - 1] if line <= text.count("\n") + 1 else ""
    found = None
    for found in _LABELLED.finditer(source[: column - 1]):
        pass
    if found is None:
        return None
    label, keyword = found.groups()
    span = s.Span(file, line, found.start() + 1, line, found.end(1) + 2)
    if keyword == "repeat":
        return span, (f"a repeat is named after its keyword (`repeat {label} = COUNT {{`), "
                      "not by a label")
    return span, (f"a {keyword} takes no label: it has no parameter to name "
                  "(labels name layers, blocks, residuals, choose and optional); "
                  f"remove '{label}:'")


def _offset(text: str, line: int, column: int) -> int:
    """The index in `text` of a 1-based line and column."""
    lines = text.split("\n")
    return sum(len(x) + 1 for x in lines[: line - 1]) + column - 1


def _found(token: Token) -> str:
    if token.type == "_NL":
        return "end of line"
    value = str(token)
    if len(value) > 20:
        value = value[:17] + "..."
    return repr(value)
