"""The front end's limits: depth, size and error count, each a positioned error.

A fuzz campaign found inputs that crashed `check` (a chain of 250 blocks, 1,000
imports, a 300-character import name), never returned (`/dev/urandom`), or took
time growing with the square of the number of errors. These tests pin each limit
docs/language.md states, at the limit and one past it, and count the work done on
files with many errors (counted calls, never timed).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Callable

import pytest

from sparsemod_dsl import cli
from sparsemod_dsl.errors import MAX_SHOWN, ArchError, Diagnostic, Diagnostics, Span, render
from sparsemod_dsl.lang import ir, loader
from sparsemod_dsl.lang.compiler import check_file, compile_source
from sparsemod_dsl.lang.lower import limits

HEADER = "arch deep(input: image(1, 8, 8), classes = 4)\n\n"
TAIL = "network {\n    conv2d(8, 3)\n    b0()\n    global_avg_pool\n    linear(classes)\n}\n"


def chain(count: int, levels: int = 0) -> str:
    """`count` blocks, each calling the next inside `levels` nested residuals."""
    blocks = []
    for i in range(count):
        body = f"    b{i + 1}()" if i + 1 < count else "    relu"
        for _ in range(levels):
            body = f"residual {{\n{body}\n}}"
        blocks.append(f"block b{i}() {{\n{body}\n}}\n")
    return HEADER + "\n".join(blocks) + "\n" + TAIL


def errors(text: str, file: str = "deep.arch") -> tuple[Diagnostic, ...]:
    with pytest.raises(ArchError) as caught:
        compile_source(text, file)
    return caught.value.diagnostics


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


# --- depth ---------------------------------------------------------------------------------


def test_a_chain_of_blocks_at_the_limit_compiles() -> None:
    program = compile_source(chain(limits.MAX_CALL_DEPTH))
    assert [layer.op for layer in _layers(program)][:2] == ["conv2d", "relu"]


def test_a_chain_of_250_blocks_stops_at_the_call_past_the_limit() -> None:
    text = chain(250)
    (error,) = errors(text)  # one error: checking stops there
    depth = limits.MAX_CALL_DEPTH
    assert (error.span.line, error.span.column) == (line_of(text, f"    b{depth}()\n"), 5)
    assert f"blocks call blocks more than {depth} deep here" in error.message
    assert f"(b0 -> ... -> b{depth - 1} -> b{depth})" in error.message


def test_structures_nested_through_blocks_stop_at_the_limit() -> None:
    depth = limits.MAX_STRUCTURE_DEPTH
    assert compile_source(chain(depth // 2, levels=2))
    text = chain(depth // 2, levels=3)
    (error,) = errors(text)
    assert f"structures are nested more than {depth} deep here" in error.message
    # b0 to b20 hold 63 residuals: the 65th is the second one of b21
    block = text.index(f"block b{depth // 3}()")
    assert (error.span.line, error.span.column) == (text[:block].count("\n") + 3, 1)


def test_derived_values_nested_too_deep_once_substituted() -> None:
    lines = "\n".join(f"    x{i + 1} = x{i} + 1" for i in range(100))
    text = HEADER + f"network {{\n    x0 = int[1..3]\n{lines}\n    conv2d(x100, 3)\n" \
        "    global_avg_pool\n    linear(classes)\n}\n"
    (error,) = errors(text)
    assert (error.span.line, error.span.column) == (line_of(text, "x65 = "), 11)
    assert "nested deeper than 64 operators once the names in it are replaced" in error.message


def test_block_arguments_nested_too_deep_once_substituted() -> None:
    deep = "+".join(["x"] * 40)
    text = HEADER + (
        f"block b0(x = 1) {{\n    y = {deep}\n    b1(y)\n}}\n\n"
        f"block b1(x) {{\n    conv2d({deep}, 3)\n}}\n\n" + TAIL
    )
    (error,) = errors(text)
    assert error.span.line == line_of(text, "    conv2d(x+") and "once the names" in error.message


def test_doubling_blocks_stop_at_the_call_limit() -> None:
    """Thirty blocks each calling the next twice: 2**30 calls without a layer."""
    blocks = [f"block b{i}() {{\n    b{i + 1}() b{i + 1}()\n}}\n" for i in range(29)]
    text = HEADER + "\n".join(blocks) + "\nblock b29() {}\n\n" + TAIL
    (error,) = errors(text)
    assert f"more than {limits.MAX_CALLS} block calls" in error.message


def _layers(program: ir.Program) -> list[ir.Layer]:
    return list(ir.layers(program.network))


# --- imports -------------------------------------------------------------------------------


def write_import_chain(folder: Path, count: int) -> Path:
    for i in range(count):
        head = f"import m{i + 1}\n\n" if i + 1 < count else ""
        (folder / f"m{i}.arch").write_text(head + f"block k{i}() {{\n    relu\n}}\n")
    main = folder / "main.arch"
    main.write_text("import m0\n\n" + HEADER + TAIL.replace("b0()", "k0()"))
    return main


def test_an_import_chain_at_the_limit_loads(tmp_path: Path) -> None:
    unit = loader.load(write_import_chain(tmp_path, loader.MAX_IMPORT_DEPTH))
    assert len(unit.sources) == loader.MAX_IMPORT_DEPTH + 1


def test_a_chain_of_1000_imports_stops_at_the_import_past_the_limit(tmp_path: Path) -> None:
    with pytest.raises(ArchError) as caught:
        loader.load(write_import_chain(tmp_path, 1000))
    (error,) = caught.value.diagnostics
    depth = loader.MAX_IMPORT_DEPTH
    assert Path(error.span.file).name == f"m{depth - 1}.arch"
    assert (error.span.line, error.span.column) == (1, 1)
    assert f"imports are nested more than {depth} files deep (from main.arch)" in error.message


def test_an_import_name_too_long_for_the_file_system(tmp_path: Path) -> None:
    name = "a" * 300
    main = tmp_path / "main.arch"
    main.write_text(f"import {name}\n\n" + HEADER + TAIL.replace("b0()", "relu"))
    with pytest.raises(ArchError) as caught:
        check_file(main)
    (error,) = caught.value.diagnostics
    assert (error.span.line, error.span.column) == (1, 1)
    assert error.message.startswith(f"cannot import '{name[:57]}...': ")


# --- input files ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_devices_are_read_up_to_the_size_limit(device: str, capsys: Any) -> None:
    if not os.path.exists(device):
        pytest.skip(f"no {device} here")
    for command in ("check", "fmt"):
        assert cli.main([command, device]) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert err == f"sparsemodc: error: {device}: file is too large " \
            f"(more than {loader.MAX_FILE_BYTES} bytes, 4 MiB)\n"


def test_a_pipe_is_read_as_a_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.arch"
    os.mkfifo(fifo)
    text = HEADER + TAIL.replace("b0()", "relu")
    writer = threading.Thread(target=fifo.write_text, args=(text,))
    writer.start()
    assert loader.read_source(fifo) == text
    writer.join()


# --- many errors ---------------------------------------------------------------------------


def many(count: int) -> ArchError:
    return ArchError([Diagnostic(Span("f.arch", n, 1, n, 2), f"error {n}") for n in
                      range(count, 0, -1)])


def test_the_first_errors_are_shown_then_a_count() -> None:
    error = many(MAX_SHOWN + 7)
    shown = render(error, {"f.arch": "x\n" * (MAX_SHOWN + 7)}).splitlines()
    assert shown[0] == "f.arch:1:1: error: error 1"
    assert shown[-4:] == [
        f"f.arch:{MAX_SHOWN}:1: error: error {MAX_SHOWN}", "    x", "    ^",
        f"... and 7 more errors (only the first {MAX_SHOWN} are shown)",
    ]
    assert str(error).splitlines()[-1] == shown[-1]
    last = f"f.arch:{MAX_SHOWN}:1: error: error {MAX_SHOWN}"
    assert str(many(MAX_SHOWN)).splitlines()[-1] == last


def test_diagnostics_are_kept_once_in_order() -> None:
    diags = Diagnostics()
    span = Span("f.arch", 2, 1, 2, 3)
    for message in ("b", "a", "b"):
        diags.error(span, message)
    diags.extend(ArchError.at(span, "a"))
    assert [d.message for d in diags.items] == ["b", "a"]


def count_calls(run: Callable[[], object]) -> int:
    """Python function calls made by `run` (a measure of work that does not depend on
    the machine's speed)."""
    calls = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(profile)
    try:
        run()
    except ArchError:
        pass
    finally:
        sys.setprofile(None)
    return calls


def docstrings(n: int) -> str:
    return HEADER + '"""x"""\n\n' * n + TAIL.replace("b0()", "relu")


def arguments(n: int) -> str:
    return HEADER + f"network {{\n    relu({'1, ' * n}1)\n    global_avg_pool\n" \
        "    linear(classes)\n}\n"


def comments(n: int) -> str:
    body = "    residual {  # c\n        relu\n    }\n" * n
    return HEADER + f"network {{\n{body}    global_avg_pool\n    linear(classes)\n}}\n"


def undefined(n: int) -> str:
    """`n` parameters, and `n` misspelt names, each with a suggestion to look for."""
    defined = "".join(f"    p{i}x = int[1..2]\n    conv2d(p{i}x, 3)\n" for i in range(n))
    misspelt = "".join(f"    conv2d(q{i}y, 3)\n" for i in range(n))
    return HEADER + f"network {{\n{defined}{misspelt}    global_avg_pool\n" \
        "    linear(classes)\n}\n"


@pytest.mark.parametrize("make", [docstrings, arguments, comments, undefined],
                         ids=lambda make: make.__name__)
def test_work_grows_linearly_with_errors_and_comments(make: Callable[[int], str]) -> None:
    """Twice the misplaced doc strings, arguments, comments or misspelt names: about
    twice the work (it was about four times: every error was compared with every other
    one, every comment with every body, every misspelt name with every parameter)."""
    def work(n: int) -> int:
        text = make(n)
        return count_calls(lambda: compile_source(text, "many.arch"))

    work(10)  # the parser is built on first use
    small, large = work(400), work(800)
    assert large < 2.3 * small, (small, large)
