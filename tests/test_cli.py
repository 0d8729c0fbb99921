"""Tests of the `sparsemodc` command line, run in-process (and once as a real process)."""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_guard import guard_replace
from helpers import run_cli

from sparsemod_dsl import __version__, cli
from sparsemod_dsl.cli import source as cli_source
from sparsemod_dsl.lang.fmt import format_source

STDLIB = Path(__file__).resolve().parents[1] / "stdlib"
GOOD = """\
\"\"\"A tiny space.\"\"\"

arch tiny(input: image(1, 8, 8), classes = 10)

train {
    batch_size = int[2..64]
}

block unit(filters = int[1..16]) {
    conv2d(filters, 3)
    relu
}

network {
    width = 8
    repeat block = int[1..2] {
        unit
    }
    conv2d(width, 1)
    global_avg_pool
    linear(classes)
    constraint block[2].filters >= block[1].filters
}
"""



@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every test in an empty folder, so that printed paths are short and stable."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(name: str, text: str | bytes) -> str:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return name


def assert_no_traceback(*outputs: str) -> None:
    for output in outputs:
        assert "Traceback" not in output and "internal error" not in output


# --- check: summaries and exit codes ----------------------------------------------------------


def test_check_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "check", write("tiny.arch", GOOD))
    # Searchable: train.batch_size, block, block[1].filters, block[2].filters; fixed: width.
    assert (code, err) == (0, "")
    assert out == (
        "tiny.arch: ok: arch tiny: 4 searchable parameters (+1 fixed), 1 block, 1 constraint; "
        "shapes checked for 1x8x8\n"
    )


def test_check_summary_of_a_library_and_of_a_space_without_a_shape(
    capsys: pytest.CaptureFixture[str],
) -> None:
    write("lib.arch", "block a { relu }\nblock b { relu6 }\n")
    write("open.arch", "arch open(input: sequence, classes)\nnetwork {\n    lstm(8)\n}\n")
    code, out, _ = run_cli(capsys, "check", "lib.arch", "open.arch")
    assert code == 0
    assert out.splitlines() == [
        "lib.arch: ok: library with 2 blocks",
        "open.arch: ok: arch open: 0 searchable parameters, 0 blocks, 0 constraints; "
        "shapes not checked (no input shape: give --input)",
    ]


def test_check_input_and_classes_override_the_header(capsys: pytest.CaptureFixture[str]) -> None:
    write("open.arch",
          "arch open(input: sequence, classes)\nnetwork {\n    lstm(8)\n    linear(3)\n}\n")
    code, out, _ = run_cli(capsys, "check", "open.arch", "--input", "20x4", "--classes", "3")
    assert code == 0 and out.endswith("shapes checked for 20x4\n")
    code, out, err = run_cli(capsys, "check", "open.arch", "--input", "20x4", "--classes", "4")
    assert code == 1 and "the network ends with 3 features, not the 4 classes" in err


def test_check_error_format(capsys: pytest.CaptureFixture[str]) -> None:
    text = GOOD.replace("conv2d(width, 1)", "conv2d(widht, 1)")
    code, out, err = run_cli(capsys, "check", write("sub/bad.arch", text))
    assert (code, out) == (1, "")
    line = next(n for n, x in enumerate(text.splitlines(), 1) if "widht" in x)
    source = text.splitlines()[line - 1]
    column = source.index("widht") + 1
    assert err.splitlines() == [
        f"sub/bad.arch:{line}:{column}: error: 'widht' is not defined; did you mean 'width'?",
        f"    {source}",
        "    " + " " * (column - 1) + "^" + "~" * (len("widht") - 1),
    ]


def test_check_reports_every_error_and_goes_on_with_the_next_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = GOOD.replace("conv2d(width, 1)", "conv2d(widht, 1)").replace("relu\n", "reul\n")
    code, out, err = run_cli(capsys, "check", write("bad.arch", bad), write("good.arch", GOOD))
    assert code == 1
    assert out.startswith("good.arch: ok:")
    assert [x.split(": error: ")[1] for x in err.splitlines() if ": error: " in x] == [
        "unknown layer or block 'reul'; did you mean 'relu'?",
        "'widht' is not defined; did you mean 'width'?",
    ]


def test_check_notes_are_rendered(capsys: pytest.CaptureFixture[str]) -> None:
    text = "arch t(input: image, classes)\nnetwork {\n    a = 1\n    a = 2\n}\n"
    code, _, err = run_cli(capsys, "check", write("t.arch", text))
    assert code == 1
    assert err.splitlines() == [
        "t.arch:4:5: error: 'a' is already defined in this scope",
        "        a = 2",
        "        ^",
        "t.arch:3:5: note: 'a' is first defined here",
        "        a = 1",
        "        ^",
    ]


def test_check_errors_in_an_imported_file_quote_that_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    write("lib/blocks.arch", "block b {\n    conv2d(nope, 3)\n}\n")
    main = (
        'arch t(input: image(1, 8, 8), classes = 10)\nimport "lib/blocks.arch"\n'
        "network {\n    b\n}\n"
    )
    code, _, err = run_cli(capsys, "check", write("main.arch", main))
    assert code == 1
    assert err.splitlines()[:2] == [
        "lib/blocks.arch:2:12: error: 'nope' is not defined",
        "        conv2d(nope, 3)",
    ]


# --- check: unreadable or hostile input ---------------------------------------------------------


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.arch", None, "missing.arch: cannot read: No such file or directory"),
        ("folder", "dir", "folder: is a directory, not an .arch file"),
        ("binary.arch", b"arch t\x00\x01\x02",
         "binary.arch: not a text file (it contains NUL bytes)"),
        ("latin1.arch", "# café\n".encode("latin-1"),
         "latin1.arch: not UTF-8 text (bad byte at offset 5)"),
    ],
)
def test_unreadable_input_exits_2(
    capsys: pytest.CaptureFixture[str], name: str, content: str | bytes | None, message: str
) -> None:
    if content == "dir":
        Path(name).mkdir()
    elif content is not None:
        write(name, content)
    for command in ("check", "fmt"):
        code, out, err = run_cli(capsys, command, name)
        assert (code, out) == (2, "")
        assert err == f"sparsemodc: error: {message}\n"


def test_empty_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "check", write("empty.arch", ""))
    assert code == 1
    assert err.startswith("empty.arch:1:1: error: the file is empty")


@pytest.mark.parametrize(
    "body, message",
    [
        ("residual {" * 500 + "relu" + "}" * 500, "nesting is deeper than 64 levels"),
        ("x = " + "(" * 500 + "1" + ")" * 500, "nesting is deeper than 64 levels"),
        ("x = " + " + ".join(["1"] * 20000), "expression is nested deeper than 64 operators"),
        ("x = " + " - ".join(["a"] * 20000), "expression is nested deeper than 64 operators"),
        ("conv2d(int[1.." + "1" + "0" * 30 + "], 3)",
         "integer 10000000000000000000... is too large (at most 2**53)"),
        ("conv2d(8, 3, stride = 1e999)", "number 1e999 is out of range"),
    ],
    ids=["braces", "parentheses", "sum", "difference", "huge-int", "huge-float"],
)
def test_hostile_input_is_a_clean_error(
    capsys: pytest.CaptureFixture[str], body: str, message: str
) -> None:
    text = f"arch t(input: image(1, 8, 8), classes = 10)\nnetwork {{\n    {body}\n}}\n"
    started = time.perf_counter()
    code, out, err = run_cli(capsys, "check", write("hostile.arch", text))
    assert time.perf_counter() - started < 10
    assert code == 1 and message in err
    assert err.startswith("hostile.arch:3:")
    assert_no_traceback(out, err)
    code, out, err = run_cli(capsys, "fmt", "hostile.arch")
    assert code == 1
    assert_no_traceback(out, err)


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "x.arch", "--input", "8x"],
        ["check", "x.arch", "--input", "axbxc"],
        ["check", "x.arch", "--input", "1x0x8"],
        ["check", "x.arch", "--input", "1x8x8x8"],
        ["check", "x.arch", "--classes", "1"],
        ["check", "x.arch", "--classes", "ten"],
        ["check"],
        ["fmt", "--check", "--write", "x.arch"],
        ["frobnicate", "x.arch"],
        [],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    write("x.arch", GOOD)
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert "usage: sparsemodc" in err and "error:" in err
    assert_no_traceback(err)


def test_internal_errors_exit_70_without_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_source, "check_file", broken)
    monkeypatch.delenv("SPARSEMOD_DEBUG", raising=False)
    code, _, err = run_cli(capsys, "check", write("x.arch", GOOD))
    assert code == 70
    assert "sparsemodc: internal error: RuntimeError: boom" in err and "Traceback" not in err
    monkeypatch.setenv("SPARSEMOD_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["check", "x.arch"])


# --- fmt ----------------------------------------------------------------------------------------

MESSY = (
    "arch   t(input:image(1,8,8),classes=10)\n"
    "network{conv2d(8,3)   relu\nglobal_avg_pool linear( classes )}\n"
)


def test_fmt_prints_the_canonical_form(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "fmt", write("messy.arch", MESSY))
    assert (code, err) == (0, "")
    assert out == format_source(MESSY) and out != MESSY
    assert Path("messy.arch").read_text() == MESSY  # printing leaves the file alone


def test_fmt_check(capsys: pytest.CaptureFixture[str]) -> None:
    write("messy.arch", MESSY)
    write("canonical.arch", format_source(MESSY))
    code, out, _ = run_cli(capsys, "fmt", "--check", "messy.arch")
    assert code == 1
    assert out == "messy.arch: not in canonical form (run `sparsemodc fmt --write messy.arch`)\n"
    assert run_cli(capsys, "fmt", "--check", "canonical.arch") == (0, "", "")
    assert run_cli(capsys, "fmt", "--check", "canonical.arch", "messy.arch")[0] == 1


def test_fmt_write_rewrites_in_place(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    write("messy.arch", MESSY)
    os.chmod("messy.arch", 0o640)
    code, out, _ = run_cli(capsys, "fmt", "--write", "messy.arch")
    assert (code, out) == (0, "messy.arch: reformatted\n")
    text = Path("messy.arch").read_text()
    assert text == format_source(MESSY) == format_source(text)
    assert stat.S_IMODE(os.stat("messy.arch").st_mode) == 0o640
    assert sorted(p.name for p in in_tmp.iterdir()) == ["messy.arch"]  # no temporary left
    # A canonical file is not rewritten at all.
    before = os.stat("messy.arch").st_mtime_ns
    assert run_cli(capsys, "fmt", "--write", "messy.arch") == (0, "", "")
    assert os.stat("messy.arch").st_mtime_ns == before


def test_fmt_write_replaces_the_file_atomically(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, in_tmp: Path
) -> None:
    write("messy.arch", MESSY)

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    code, _, err = run_cli(capsys, "fmt", "--write", "messy.arch")
    assert (code, err) == (2, "sparsemodc: error: messy.arch: cannot write: disk full\n")
    # The old content is intact and the temporary file is gone.
    assert Path("messy.arch").read_text() == MESSY
    assert sorted(p.name for p in in_tmp.iterdir()) == ["messy.arch"]


def test_fmt_reports_syntax_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "fmt", write("bad.arch", "network {\n    conv2d(8, 3\n}\n"))
    assert (code, out) == (1, "")
    assert err.startswith("bad.arch:3:1: error: unexpected '}'")
    assert_no_traceback(err)


# --- help and version -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--help"], ["usage: sparsemodc", "check", "fmt", "--version"]),
        (["check", "--help"], ["usage: sparsemodc check", "--input", "--classes", "FILE"]),
        (["fmt", "--help"], ["usage: sparsemodc fmt", "--check", "--write", "FILE"]),
    ],
)
def test_help(capsys: pytest.CaptureFixture[str], argv: list[str], words: list[str]) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert (code, err) == (0, "")
    for word in words:
        assert word in out


def test_version_of_the_installed_command() -> None:
    script = Path(sys.executable).parent / "sparsemodc"
    assert script.exists(), "the package is not installed with its console script"
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0, f"sparsemodc {__version__}\n", ""
    )


# --- the standard library ----------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(STDLIB.glob("*.arch")), ids=lambda p: p.name)
def test_stdlib_files_check_and_are_canonical(
    capsys: pytest.CaptureFixture[str], path: Path
) -> None:
    code, out, err = run_cli(capsys, "check", str(path))
    assert (code, err) == (0, "") and f"{path}: ok: " in out
    assert run_cli(capsys, "fmt", "--check", str(path)) == (0, "", "")


# --- compile and sample ------------------------------------------------------------------


def test_compile_searchspace_lists_every_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    Path("tiny.arch").write_text(GOOD)
    code, out, _ = run_cli(capsys, "compile", "tiny.arch", "--emit", "searchspace")
    assert code == 0
    described = json.loads(out)
    names = [p["name"] for p in described["parameters"]]
    # train.batch_size, width (fixed), block, block[1].filters, block[2].filters
    assert names == ["train.batch_size", "width", "block", "block[1].filters", "block[2].filters"]
    assert {p["ax_name"] for p in described["parameters"]} >= {"block__2__filters"}
    (constraint,) = described["constraints"]
    assert constraint["linear"] is True


def test_compile_builder_writes_a_working_module(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    import torch

    Path("tiny.arch").write_text(GOOD)
    code, out, err = run_cli(capsys, "compile", "tiny.arch", "--emit", "builder", "-o", "net.py")
    assert code == 0 and out == "" and "net.py" in err
    spec = importlib.util.spec_from_file_location("generated_net", "net.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.build({"block": 2, "block[1].filters": 4, "block[2].filters": 6})
    assert net(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_compile_ir_and_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    Path("tiny.arch").write_text(GOOD)
    code, out, _ = run_cli(capsys, "compile", "tiny.arch", "--emit", "ir", "--input", "1x4x4",
                       "--classes", "3")
    assert code == 0
    program = json.loads(out)
    assert program["input"]["shape"] == [1, 4, 4] and program["classes"] == 3


def test_compile_refuses_libraries_and_reports_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "compile", str(STDLIB / "sparse_blocks.arch"))
    assert code == 2 and "no network" in err and "Traceback" not in err
    Path("bad.arch").write_text(GOOD.replace("linear(classes)", "linear(clases)"))
    code, _, err = run_cli(capsys, "compile", "bad.arch")
    assert code == 1 and "bad.arch:" in err and "did you mean 'classes'" in err


def test_sample_is_reproducible_and_valid_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    Path("tiny.arch").write_text(GOOD)
    first = run_cli(capsys, "sample", "tiny.arch", "-n", "6", "--seed", "3")
    again = run_cli(capsys, "sample", "tiny.arch", "-n", "6", "--seed", "3")
    other = run_cli(capsys, "sample", "tiny.arch", "-n", "6", "--seed", "4")
    assert first[0] == 0 and first == again and first[1] != other[1]
    points = [json.loads(line) for line in first[1].splitlines()]
    assert len(points) == 6
    for point in points:
        assert 2 <= point["train.batch_size"] <= 64
        # block[2] exists only when block is 2, and then satisfies the constraint
        assert ("block[2].filters" in point) == (point["block"] == 2)
        if point["block"] == 2:
            assert point["block[2].filters"] >= point["block[1].filters"]
    code, out, _ = run_cli(capsys, "sample", "tiny.arch", "-n", "3", "--valid")
    assert code == 0 and len(out.splitlines()) == 3
    assert run_cli(capsys, "sample", "tiny.arch", "-n", "0")[0] == 2


# --- files the commands read and write (issue 14) ------------------------------------------------

TINY = "arch t(input: image(1, 8, 8), classes = 3)\nnetwork {\n    conv2d(4, 3)\n    relu\n" \
       "    global_avg_pool\n    linear(classes)\n}\n"


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch, in_tmp: Path) -> Path:
    """The test's folder, with renames outside it refused (see cli_guard)."""
    guard_replace(monkeypatch, in_tmp)
    return in_tmp


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"conv2d.filters": 1' + "0" * 4300 + "}", "a number has more than 4,300 digits"),
        ("[" * 100_000 + "]" * 100_000, "arrays or objects are nested too deeply to read"),
    ],
    ids=["4301-digit-integer", "100000-nested-arrays"],
)
@pytest.mark.parametrize("command", [["morph"], ["cost", "--target", "stm32f746"]])
def test_params_python_cannot_read_exit_2(
    capsys: pytest.CaptureFixture[str], command: list[str], text: str, message: str
) -> None:
    write("t.arch", TINY)
    code, out, err = run_cli(capsys, command[0], "t.arch", *command[1:], "--params",
                             write("p.json", text))
    assert (code, out) == (2, "")
    assert err.startswith(f"sparsemodc: error: p.json: {message}") and err.count("\n") == 1


def test_params_path_empty_or_a_directory(capsys: pytest.CaptureFixture[str]) -> None:
    write("t.arch", TINY)
    Path("folder").mkdir()
    for path, message in [("", "--params: the path is empty: give a JSON file"),
                          ("folder", "folder: is a directory, not a JSON file")]:
        code, _, err = run_cli(capsys, "morph", "t.arch", "--params", path)
        assert (code, err) == (2, f"sparsemodc: error: {message}\n")


@pytest.mark.parametrize(
    "output, message",
    [
        ("missing/out.json", "missing/out.json: cannot write: no such folder: missing"),
        ("folder", "folder: is a directory; give the path of a file"),
        ("file.txt/out.json", "file.txt/out.json: cannot write: not a folder: file.txt"),
        ("", "the output path is empty: give a file name"),
    ],
    ids=["missing-folder", "a-directory", "under-a-file", "empty"],
)
def test_compile_output_that_cannot_be_written_exits_2(
    capsys: pytest.CaptureFixture[str], guarded: Path, output: str, message: str
) -> None:
    write("t.arch", TINY)
    write("file.txt", "keep")
    Path("folder").mkdir()
    code, out, err = run_cli(capsys, "compile", "t.arch", "-o", output)
    assert (code, out, err) == (2, "", f"sparsemodc: error: {message}\n")
    assert sorted(p.name for p in guarded.iterdir()) == ["file.txt", "folder", "t.arch"]
    assert Path("file.txt").read_text() == "keep" and not any(Path("folder").iterdir())


def test_outputs_go_through_devices_pipes_and_links(
    capsys: pytest.CaptureFixture[str], guarded: Path
) -> None:
    write("t.arch", TINY)
    # A device is written, never replaced by a file (as root, a rename would replace it).
    assert run_cli(capsys, "compile", "t.arch", "-o", os.devnull)[0] == 0
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    # A FIFO: its reader gets the output and it stays a FIFO.
    os.mkfifo("pipe")
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(Path("pipe").read_bytes()),
                              daemon=True)
    reader.start()
    code, _, err = run_cli(capsys, "compile", "t.arch", "--emit", "ir", "-o", "pipe")
    reader.join(timeout=30)
    assert code == 0, err
    assert received and json.loads(received[0])["name"] == "t"
    assert stat.S_ISFIFO(os.stat("pipe").st_mode)
    # A symbolic link stays a link: its target is replaced (compile -o, fmt --write).
    write("real/out.json", "old")
    os.symlink("real/out.json", "link.json")
    assert run_cli(capsys, "compile", "t.arch", "-o", "link.json")[0] == 0
    assert os.path.islink("link.json") and json.loads(Path("real/out.json").read_text())
    write("real/messy.arch", MESSY)
    os.symlink("real/messy.arch", "messy.arch")
    assert run_cli(capsys, "fmt", "--write", "messy.arch")[0] == 0
    assert os.path.islink("messy.arch")
    assert Path("real/messy.arch").read_text() == format_source(MESSY)


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="no /dev/full")
def test_a_full_device_is_a_clean_error(
    capsys: pytest.CaptureFixture[str], guarded: Path
) -> None:
    write("t.arch", TINY)
    code, _, err = run_cli(capsys, "compile", "t.arch", "-o", "/dev/full")
    assert (code, err) == (2, "sparsemodc: error: /dev/full: cannot write: No space left on "
                              "device\n")
    assert Path("/dev/full").is_char_device()
    # stdout on a full disk, as a real process: one line, no "Exception ignored" at exit.
    script = Path(sys.executable).parent / "sparsemodc"
    with open("/dev/full", "w") as full:
        result = subprocess.run([str(script), "targets"], stdout=full, stderr=subprocess.PIPE,
                                text=True, timeout=120, check=False)
    assert (result.returncode, result.stderr) == (
        2, "sparsemodc: error: cannot write the output: No space left on device\n")


def test_a_full_stdout_in_process_is_a_clean_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sys, "stdout", Full())
    assert cli.main(["targets"]) == 2
    assert capsys.readouterr().err == (
        "sparsemodc: error: cannot write the output: No space left on device\n")


@pytest.mark.parametrize("command", ["sample", "morph"])
def test_counts_are_bounded(capsys: pytest.CaptureFixture[str], command: str) -> None:
    write("t.arch", TINY)
    for count in ("0", "100001", "1" + "0" * 23, "-3", "two"):
        code, out, err = run_cli(capsys, command, "t.arch", "-n", count)
        assert (code, out) == (2, "")
        assert "is not a number of points: give a whole number from 1 to 100,000" in err


@pytest.mark.parametrize(
    "text, message",
    [
        ("clock_mhz = 1" + "0" * 5000, "a number has too many digits to read"),
        ("a = " + "[" * 5000 + "]" * 5000, "arrays or tables are nested too deeply to read"),
        ("sram_kb = 1e308", "key 'sram_kb': must be at most 1,073,741,824 KB (1 TB), not 1e+308"),
    ],
    ids=["huge-integer", "deep-arrays", "1e308-KB"],
)
def test_target_files_python_cannot_read_exit_2(
    capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    from sparsemod_dsl.nets.targets import builtin_dir

    base = builtin_dir().joinpath("stm32f746.toml").read_text("utf-8")
    key = text.split(" =")[0]
    lines = [line for line in base.splitlines() if not line.startswith(f"{key} =")]
    write("board.toml", "\n".join([text, *lines]) + "\n")
    code, _, err = run_cli(capsys, "cost", write("t.arch", TINY), "--target", "board.toml")
    assert (code, err) == (2, f"sparsemodc: error: board.toml: {message}\n")


# --- export from a .arch file: the files of a network trained elsewhere -------------------------


@pytest.fixture
def trained(in_tmp: Path) -> list[str]:
    """t.arch, its point, trained weights and calibration inputs: a valid export's arguments."""
    import numpy as np
    import torch

    from sparsemod_dsl.space import compile_file

    write("t.arch", TINY)
    write("p.json", "{}")
    torch.manual_seed(0)
    net = compile_file("t.arch").build({})
    torch.save(net.state_dict(), "w.pt")
    torch.save(torch.zeros(3), "tensor.pt")
    torch.save({key: 1 for key in net.state_dict()}, "ints.pt")
    torch.save({k: v * float("nan") for k, v in net.state_dict().items()}, "nan.pt")
    torch.save({k: v.abs() + 3e38 for k, v in net.state_dict().items()}, "huge.pt")
    x = np.random.default_rng(0).normal(size=(8, 1, 8, 8)).astype("float32")
    np.save("x.npy", x)
    np.save("flat.npy", x.reshape(8, 64))
    np.save("scalar.npy", np.float32(1))
    np.save("none.npy", x[:0])
    np.save("nan.npy", x * np.nan)
    np.save("words.npy", np.array(["a", "b"]))
    np.savez("x.npz", x=x)
    write("text.pt", "not torch")
    return ["export", "t.arch", "--params", "p.json", "--weights", "w.pt", "--calibration",
            "x.npy"]


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--weights", "text.pt", "text.pt: not a torch state dict (a file written by "
                                 "torch.save(net.state_dict()))"),
        ("--weights", os.devnull, f"{os.devnull}: not a torch state dict"),
        ("--weights", "tensor.pt", "tensor.pt: not a state dict: a dict of tensors was "
                                   "expected, found a Tensor"),
        ("--weights", "ints.pt", "ints.pt: not a state dict: 'layers.conv2d.conv.weight' holds "
                                 "a value of type int, not a tensor"),
        ("--weights", "nan.pt", "nan.pt: the weights hold NaN or infinite numbers"),
        ("--weights", "huge.pt", "x.npy: on these inputs, with the weights of huge.pt, the "
                                 "output of layer layers.conv2d.conv is NaN or infinite"),
        ("--calibration", "flat.npy", "flat.npy: calibration data of shape (8, 64): expected "
                                      "(N, 1, 8, 8) with N >= 1"),
        ("--calibration", "scalar.npy", "scalar.npy: calibration data of shape ()"),
        ("--calibration", "none.npy", "none.npy: calibration data of shape (0, 1, 8, 8)"),
        ("--calibration", "nan.npy", "nan.npy: the calibration data holds NaN or infinite"),
        ("--calibration", "words.npy", "words.npy: calibration data of type str32: expected "
                                       "numbers"),
        ("--calibration", "x.npz", "x.npz: an .npz archive, not a .npy array"),
        ("--calibration", os.devnull, f"{os.devnull}: not a .npy array"),
        ("--name", "../escape", "argument --name: '../escape' is not a file name"),
        ("-o", "", "-o: the output path is empty"),
        ("-o", "t.arch/sub/", "t.arch/sub: cannot make the folder: Not a directory"),
    ],
)
def test_export_of_bad_files_exits_2(
    capsys: pytest.CaptureFixture[str], guarded: Path, trained: list[str], option: str,
    value: str, message: str
) -> None:
    argv = list(trained)
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    before = sorted(p.name for p in guarded.iterdir())
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, ""), err
    assert message in err.splitlines()[-1] and "error:" in err.splitlines()[-1]
    assert_no_traceback(err)
    assert sorted(p.name for p in guarded.iterdir()) == before


def test_export_writes_to_devices_and_named_files(
    capsys: pytest.CaptureFixture[str], guarded: Path, trained: list[str]
) -> None:
    code, out, err = run_cli(capsys, *trained, "-o", os.devnull)
    assert code == 0 and out.startswith(f"wrote {os.devnull}\n"), err
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    write("model", "old")  # an existing file without a suffix: the model goes there
    assert run_cli(capsys, *trained, "-o", "model")[0] == 0
    assert Path("model").read_bytes()[4:8] == b"TFL3"
    assert run_cli(capsys, "export", "", "--trial", "0")[2] == (
        "sparsemodc: error: the source path is empty: give a results directory or a .arch "
        "file\n")
