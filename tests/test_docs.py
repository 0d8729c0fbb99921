"""The documentation stays true: every example in docs/*.md is compiled or run.

Fenced blocks and the HTML comments written on the lines just above them:

- ```arch whose first line (after comments and a doc string) is an `arch`
  header: a complete program; the checker must accept it.
- any other ```arch: a fragment; it must parse, as a file or as the body of
  `network { ... }`. Then, unless marked `<!-- parse only -->`, it is completed
  into a program (a header `arch fragment(input: image, classes)` without a
  shape, and `network { flatten linear(classes) }` if it has no network) and
  checked like one, shapes excepted.
- `<!-- error -->` or `<!-- error: TEXT -->` above an ```arch block: the
  checker must reject it (with TEXT in one of its messages).
- `<!-- file: NAME -->` above an ```arch block: the block is also written to
  NAME in a scratch folder, for the commands below to use.
- `<!-- run -->` above a ```python or ```console block: the code is run in that
  scratch folder (`$ sparsemodc ...` lines run the CLI in-process) and what it
  prints must equal the ```text block that follows (for ```console, the lines
  after the command inside the same block).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from sparsemod_dsl import cli, errors
from sparsemod_dsl.lang import (
    build_tree,
    compiler,
    layers,
    loader,
    parser,
    syntax,
)
from sparsemod_dsl.lang.lower import limits as lower_limits
from sparsemod_dsl.lang.lower import stmts as lower_stmts

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOC_FILES = ("language.md", "architecture.md")

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARK = re.compile(r"^<!--\s*(.*?)\s*-->$")
_DOCSTRING = re.compile(r'^"""[\s\S]*?"""\s*', re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """One fenced block of a document."""

    doc: str
    line: int
    lang: str
    text: str
    marks: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    def mark(self, name: str) -> str | None:
        """The value of `<!-- name -->` (""), `<!-- name: VALUE -->` (VALUE), or None."""
        for mark in self.marks:
            key, colon, value = mark.partition(":")
            if key.strip() == name:
                return value.strip() if colon else ""
        return None


def blocks(doc: str) -> list[Block]:
    """Every fenced block of `docs/DOC`, with the HTML comments just above it."""
    lines = (DOCS / doc).read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        marks: list[str] = []
        k = i - 1
        while k >= 0 and (not lines[k].strip() or _MARK.match(lines[k].strip())):
            mark = _MARK.match(lines[k].strip())
            if mark is not None:
                marks.insert(0, mark.group(1))
            k -= 1
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        assert end < len(lines), f"{doc}:{i + 1}: the fenced block is never closed"
        text = "\n".join(lines[i + 1:end]) + "\n"
        found.append(Block(doc, i + 1, opening.group(1), text, tuple(marks)))
        i = end + 1
    return found


ALL = [b for doc in DOC_FILES for b in blocks(doc)]
ARCH = [b for b in ALL if b.lang == "arch"]


def is_program(text: str) -> bool:
    """Whether the first line, after comments and a doc string, is an `arch` header."""
    rest = "\n".join(
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )
    rest = _DOCSTRING.sub("", rest, count=1) if rest.startswith('"""') else rest
    return rest.lstrip().startswith("arch ")


def check_text(text: str) -> compiler.Checked:
    return compiler.check_unit(loader.load_text(text, "doc.arch"))


def as_file(fragment: str) -> str | None:
    """The fragment as a file that parses (itself, or wrapped in a network), or None."""
    for candidate in (fragment, f"network {{\n{fragment}}}\n"):
        try:
            parser.parse(candidate, "doc.arch")
        except errors.ArchError:
            continue
        return candidate
    return None


def complete(text: str) -> str:
    """A fragment that parses as a file, made a program: header and network added."""
    items = parser.parse(text, "doc.arch").items
    lines = text.splitlines(keepends=True)
    split = items[0].span.end_line if items and isinstance(items[0], syntax.Docstring) else 0
    network = "" if any(isinstance(i, syntax.NetworkSection) for i in items) else (
        "\nnetwork {\n    flatten\n    linear(classes)\n}\n"
    )
    header = "arch fragment(input: image, classes)\n"
    return "".join(lines[:split]) + header + "".join(lines[split:]) + network


@pytest.mark.parametrize("block", [b for b in ARCH if b.mark("error") is None], ids=lambda b: b.id)
def test_example_compiles(block: Block) -> None:
    text = block.text
    if not is_program(text):
        file = as_file(text)
        assert file is not None, f"{block.id}: the fragment does not parse"
        if block.mark("parse only") is not None:
            return
        text = complete(file)
    try:
        check_text(text)
    except errors.ArchError as error:
        pytest.fail(f"{block.id}: the checker rejects a documented example:\n{error}\n{text}")


@pytest.mark.parametrize("block", [b for b in ARCH if b.mark("error") is not None], ids=lambda b: b.id)
def test_error_example_is_rejected(block: Block) -> None:
    with pytest.raises(errors.ArchError) as raised:
        check_text(block.text)
    wanted = block.mark("error")
    messages = [d.message for d in raised.value.diagnostics]
    assert not wanted or any(wanted in m for m in messages), (
        f"{block.id}: expected an error containing {wanted!r}, got {messages}"
    )


def _scratch(doc: str, folder: Path) -> None:
    """Write the blocks of `doc` marked `<!-- file: NAME -->` into `folder`."""
    for block in blocks(doc):
        name = block.mark("file")
        if name:
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.text, encoding="utf-8")


def _run_console(text: str) -> tuple[str, str]:
    """Run the `$ sparsemodc ...` lines of a console block; (expected, actual) output."""
    expected: list[str] = []
    actual = io.StringIO()
    for line in text.splitlines():
        if not line.startswith("$ "):
            expected.append(line)
            continue
        argv = shlex.split(line[2:])
        assert argv[0] == "sparsemodc", line
        with contextlib.redirect_stdout(actual), contextlib.redirect_stderr(actual):
            code = cli.main(argv[1:])
        if code:
            print(f"[exit {code}]", file=actual)
    return "\n".join(expected).strip(), actual.getvalue().strip()


RUNS = [(doc, k) for doc in DOC_FILES for k, b in enumerate(blocks(doc)) if b.mark("run") is not None]


@pytest.mark.parametrize(("doc", "index"), RUNS, ids=[f"{d}:{blocks(d)[k].line}" for d, k in RUNS])
def test_shown_output_is_real(
    doc: str, index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scratch(doc, tmp_path)
    monkeypatch.chdir(tmp_path)
    every = blocks(doc)
    block = every[index]
    if block.lang == "console":
        expected, actual = _run_console(block.text)
    else:
        assert block.lang == "python", f"{block.id}: only python and console blocks run"
        assert index + 1 < len(every) and every[index + 1].lang == "text", (
            f"{block.id}: a run block is followed by a ```text block with its output"
        )
        expected = every[index + 1].text.strip()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block.text, block.id, "exec"), {"__name__": "__doc__"})
        actual = out.getvalue().strip()
    assert actual == expected, f"{block.id}: the shown output is stale; it now reads:\n{actual}"


def test_examples_were_found() -> None:
    assert sum(b.doc == "language.md" for b in ARCH) >= 30
    assert any(b.doc == "architecture.md" and is_program(b.text) for b in ARCH)
    assert any(b.mark("error") is not None for b in ARCH)
    assert RUNS


def test_every_layer_is_documented() -> None:
    text = (DOCS / "language.md").read_text(encoding="utf-8")
    missing = [name for name in layers.LAYERS if f"`{name}`" not in text]
    assert not missing, f"docs/language.md does not mention the layers {missing}"
    for spec in layers.LAYERS.values():
        for arg in spec.args:
            assert f"`{arg.name}`" in text, f"argument '{arg.name}' of '{spec.name}' is undocumented"


def test_every_train_key_is_documented() -> None:
    text = (DOCS / "language.md").read_text(encoding="utf-8")
    missing = [key for key in lower_stmts.TRAIN_KEYS if f"`{key}`" not in text]
    assert not missing, f"docs/language.md does not mention the train keys {missing}"


def test_documented_limits_are_the_real_ones() -> None:
    text = (DOCS / "language.md").read_text(encoding="utf-8")
    for value in (
        parser.MAX_NESTING,
        build_tree.MAX_EXPRESSION_DEPTH,
        lower_limits.MAX_REPEAT,
        lower_limits.MAX_PARAMETERS,
        lower_limits.MAX_LAYERS,
        lower_limits.MAX_CALLS,
        lower_limits.MAX_CALL_DEPTH,
        lower_limits.MAX_STRUCTURE_DEPTH,
        loader.MAX_IMPORT_DEPTH,
        errors.MAX_SHOWN,
    ):
        assert re.search(rf"\b{value}\b", text), f"docs/language.md does not state the limit {value}"
    assert loader.MAX_FILE_BYTES == 4 * 1024 * 1024 and "4 MiB" in text


def test_complete() -> None:
    assert complete('"""d"""\ntrain {\n    batch_size = 8\n}\n') == (
        '"""d"""\narch fragment(input: image, classes)\ntrain {\n    batch_size = 8\n}\n'
        "\nnetwork {\n    flatten\n    linear(classes)\n}\n"
    )
    assert as_file("relu\n") == "network {\nrelu\n}\n"
    assert as_file("relu relu(\n") is None


def test_is_program() -> None:
    assert is_program('# c\n"""doc\nmore"""\n\narch a(input: image)\n')
    assert not is_program("network {\n    relu\n}\n")
    assert not is_program("block b {\n    relu\n}\n")
