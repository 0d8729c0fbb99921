"""A fuzz test of the whole command line: whatever the arguments and files, a clean exit.

Hypothesis draws command lines over every subcommand: mutated arguments and option
values, `.arch` files with a few tokens edited (`strategies.mutated_sources`), mutated
JSON points, target files, experiment files and results directories, and odd paths (a
missing file, a directory, a path under a file, /dev/null, /dev/full, the empty path).
Each command runs in process (`cli.main`) in a folder of its own. The property: the exit
code is 0, 1 or 2, and stderr has no traceback and no internal error (exit 70).

The time is bounded: a few hundred small examples, and nothing drawn can train or run
long. Every experiment file is invalid (its first line is an unknown key), so `search`
stops before any training, and the engine is replaced by one that fails the test if it
is ever built; counts (`-n`) stay below the ones that take seconds; the weights file fits
only the one small space. Renames outside the folder are refused (`cli_guard`), so that no
regression can replace /dev/null or /dev/full with a file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from cli_guard import guard_replace
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from strategies import SAMPLE_SOURCES, mutated_sources

from sparsemod_dsl import cli
from sparsemod_dsl.nets.targets import builtin_dir

GOOD = """\
arch t(input: image(1, 8, 8), classes = 3)

train {
    learning_rate = float[1e-4..1e-2] log
}

network {
    conv2d(filters = int[4..16] step 4, kernel = 3)
    relu
    global_avg_pool
    linear(classes)
}
"""
POINTS = ('{"conv2d.filters": 8}', "{}",
          '{"train.learning_rate": 0.001, "conv2d.filters": 16, "extra": [1, {"a": null}]}')
EXPERIMENT = """\
arch = "good.arch"
results = "res2"
seed = 0
[data]
dataset = "digits"
options = { samples = 60 }
[stages]
sobol = 2
bo_rounds = 0
morph_rounds = 0
epochs = [1, 1, 1]
[objectives]
minimize = ["error", "flash"]
[target]
name = "stm32f746"
ram_kb = 64
[training]
pruning = false
"""
#: Prepended to every experiment file: an unknown top-level key, so that none is valid.
INVALID = "fuzz_unknown_key = 1\n"
RESULTS = {
    "setup.json": json.dumps({
        "experiment": "exp.toml", "arch": "good.arch", "input_shape": [1, 8, 8], "classes": 3,
        "target": "stm32f746", "quantization": "post", "weights": "dense",
        "objectives": ["error", "flash"]}),
    "journal.jsonl": "".join(json.dumps(event) + "\n" for event in [
        {"event": "started", "trial": 0, "stage": "sobol", "params": {"conv2d.filters": 8},
         "parent": None, "time": "2026-11-25T12:25:58+00:00"},
        {"event": "finished", "trial": 0, "status": "completed", "reason": None,
         "error": 0.25, "flash_bytes": 5380, "ram_bytes": 3072, "macs": 9124,
         "latency_ms": 0.84, "train_seconds": 6.2, "sparsity": 0.0,
         "time": "2026-11-25T12:26:04+00:00"},
        {"event": "started", "trial": 1, "stage": "sobol", "params": {"conv2d.filters": 16},
         "parent": None, "time": "2026-11-25T12:26:04+00:00"},
        {"event": "finished", "trial": 1, "status": "infeasible", "reason": "too big",
         "time": "2026-11-25T12:26:05+00:00"},
        {"event": "started", "trial": 2, "stage": "morph", "params": {}, "parent": 0,
         "time": "2026-11-25T12:26:06+00:00"},
    ]),
    "state.json": json.dumps({"format": 1, "experiment_hash": "0" * 64, "arch_hash": "0" * 64,
                              "settings": {}, "next_trial": 3, "progress": {"sobol": 2},
                              "seconds": 14.7}),
    "networks/trial-0.json": json.dumps({"trial": 0, "params": {"conv2d.filters": 8},
                                         "arch_sha256": "0" * 64, "extra": {}}),
}
TARGET = builtin_dir().joinpath("stm32f746.toml").read_text("utf-8")

#: Paths that name nothing useful: missing, a folder, under a file, devices, empty.
ODD_PATHS = ("missing.arch", "adir", "adir/", "afile", "afile/x", "", "/dev/null", "nodir/x")
#: Outputs that can be written, then odd ones (/dev/full only where it exists).
OUTPUTS = ("out.json", "out", "adir/out.tflite", "out.onnx", "good.arch", os.devnull)
ODD_OUTPUTS = (*ODD_PATHS, *(("/dev/full",) if Path("/dev/full").is_char_device() else ()))
#: Option values: (usual ones, odd ones).
SHAPES = (("1x8x8", "3x8x8", "1x4x4", "20x4"), ("8", "1x0x8", "1x8x8x8", "axb", "-1x8x8", ""))
CLASSES = (("2", "3", "10"), ("0", "1", "1000001", "x", ""))
COUNTS = (("1", "2", "3"), ("0", "-1", "100001", "1" + "0" * 30, "x", "", "1.5", " 2"))
TRIALS = (("0", "1", "2"), ("-1", "3", "1" + "0" * 30, "x", "", "1.5"))
SEEDS = (("0", "7", "-1", "1" + "0" * 30), ("x", "", "1e3"))
SPARSITIES = (("0", "0.5", "0.99"), ("1", "-0.1", "nan", "inf", "x", ""))
NAMES = (("net", "a.b", "m-1"), ("../up", "", "-x", "é", "a/b"))
GARBAGE = ("--bogus", "-", "--", "x", "-n", "--params", "--help", "-o")


#: One in nine: odd values (in the middle, where Hypothesis's own bias to the ends of a
#: range does not make them common).
_ODDS = (False,) * 4 + (True,) + (False,) * 4


def pick(draw: st.DrawFn, values: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    """A usual value most of the time, an odd one sometimes."""
    usual, odd = values
    return draw(st.sampled_from(odd if draw(st.sampled_from(_ODDS)) else usual))


def path(draw: st.DrawFn, *usual: str) -> str:
    """One of the `usual` paths most of the time, an odd one sometimes."""
    return pick(draw, (usual, ODD_PATHS) if usual else (ODD_PATHS, ODD_PATHS))


def option(draw: st.DrawFn, argv: list[str], name: str, value: Any, p: float = 0.5) -> None:
    """Add `name VALUE` to `argv` with probability about `p`; `value(draw)` gives VALUE."""
    if draw(st.integers(0, 99)) < 100 * p:
        argv += [name, value(draw)]


def flag(draw: st.DrawFn, argv: list[str], name: str, p: float = 0.5) -> None:
    """Add the flag `name` to `argv` with probability about `p`."""
    if draw(st.integers(0, 99)) < 100 * p:
        argv.append(name)


def shape_options(draw: st.DrawFn, argv: list[str]) -> None:
    """--input and --classes, sometimes."""
    option(draw, argv, "--input", lambda d: pick(d, SHAPES), 0.2)
    option(draw, argv, "--classes", lambda d: pick(d, CLASSES), 0.2)


ARCHES = ("good.arch", "good.arch", "mut.arch")


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """A `sparsemodc` command line over the files `folder_contents` writes."""
    command = draw(st.sampled_from(
        ("compile", "check", "fmt", "sample", "morph", "cost", "targets", "frobnicate",
         "search", "report", "show", "export", "export", "cost")))
    argv = [command]
    if command in ("check", "fmt"):
        argv += [path(draw, *ARCHES) for _ in range(draw(st.integers(1, 3)))]
        if command == "check":
            shape_options(draw, argv)
        else:
            flag(draw, argv, "--check", 0.3)
            flag(draw, argv, "--write", 0.3)
    elif command in ("compile", "sample", "morph", "cost"):
        argv.append(path(draw, *ARCHES))
        shape_options(draw, argv)
        if command == "compile":
            option(draw, argv, "--emit", lambda d: pick(d, (("searchspace", "builder", "ir"),
                                                             ("x", ""))))
            option(draw, argv, "-o", lambda d: pick(d, (OUTPUTS, ODD_OUTPUTS)))
        if command in ("sample", "morph"):
            option(draw, argv, "-n", lambda d: pick(d, COUNTS))
            option(draw, argv, "--seed", lambda d: pick(d, SEEDS))
        if command == "sample":
            flag(draw, argv, "--valid")
        if command in ("morph", "cost"):
            option(draw, argv, "--params", lambda d: path(d, "p.json"), 0.7)
        if command == "cost":
            option(draw, argv, "--target", lambda d: pick(
                d, (("stm32f746", "nrf52840", "board.toml", "board.toml"), ("nope", *ODD_PATHS))),
                0.95)
            option(draw, argv, "--quant", lambda d: pick(d, (("int8", "float32"), ("int4",))),
                   0.3)
            option(draw, argv, "--sparse-weights", lambda d: pick(d, SPARSITIES), 0.3)
            flag(draw, argv, "--json")
            flag(draw, argv, "--measure", 0.05)  # exports and runs TFLite Micro: slower
    elif command == "search":
        argv.append(path(draw, "exp.toml"))
    elif command in ("report", "show"):
        argv.append(path(draw, "res"))
        if command == "show":
            argv += ["--trial", pick(draw, TRIALS)]
    elif command == "export":
        argv.append(path(draw, "res", "good.arch", "good.arch", "mut.arch"))
        option(draw, argv, "--trial", lambda d: pick(d, TRIALS), 0.5)
        option(draw, argv, "--format", lambda d: pick(d, (("tflite", "c", "onnx", "onnx-int8"),
                                                          ("x",))), 0.7)
        option(draw, argv, "-o", lambda d: pick(d, (OUTPUTS, ODD_OUTPUTS)), 0.7)
        option(draw, argv, "--name", lambda d: pick(d, NAMES), 0.2)
        option(draw, argv, "--params", lambda d: path(d, "p.json"), 0.7)
        option(draw, argv, "--weights", lambda d: path(d, "w.pt", "w.pt", "x.npy"), 0.8)
        option(draw, argv, "--calibration", lambda d: path(d, "x.npy", "x.npy", "w.pt"), 0.7)
        shape_options(draw, argv)
    if draw(st.integers(0, 19)) == 0:
        argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(GARBAGE)))
    return argv


#: Values that `retyped` puts in place of a TOML or JSON value.
VALUES = ("-1", "0", "1" + "0" * 30, "1e400", "-1e400", "1e308", "0.5", "true", "null", '""',
          '"x"', '"adir"', '"afile"', '"afile/x"', '"/dev/null"', '"../.."', "[]", "{}",
          '["error"]', "[1, 2]", '{"a": 1}', "nan", "inf")


@st.composite
def retyped(draw: st.DrawFn, text: str) -> str:
    """`text` (TOML or JSON) with one to three values replaced by others of any type: files
    that parse, so that the checks of their contents are what is tried."""
    pattern = re.compile(r'(?m)(^\s*[\w.]+\s*=\s*|"\w+":\s*)([^,}\n]+)')
    spans = [match.span(2) for match in pattern.finditer(text)]
    for start, end in sorted(draw(st.lists(st.sampled_from(spans), min_size=1, max_size=3,
                                           unique=True)), reverse=True):
        text = text[:start] + draw(st.sampled_from(VALUES)) + text[end:]
    return text


def damaged(text: str) -> st.SearchStrategy[str]:
    """`text` as it is, with values of other types, or with a few tokens edited."""
    return st.one_of(st.just(text), retyped(text), mutated_sources((text,)))


@st.composite
def folder_contents(draw: st.DrawFn) -> dict[str, str | bytes | None]:
    """The files of one example: path -> text or bytes (None: a folder)."""
    files: dict[str, str | bytes | None] = {
        "good.arch": GOOD, "afile": "not a folder\n", "adir": None,
        "mut.arch": draw(mutated_sources((GOOD, *SAMPLE_SOURCES))),
        "p.json": draw(st.one_of(damaged(POINTS[2]), st.sampled_from(POINTS), st.sampled_from((
            '{"conv2d.filters": 1' + "0" * 4300 + "}", "[" * 50_000, '{"conv2d.filters": NaN}',
            '{"conv2d.filters": 1e400}', "\ufeff{}", "")))),
        "board.toml": draw(damaged(TARGET)),
        "exp.toml": INVALID + draw(damaged(EXPERIMENT)),
        "w.pt": weights(), "x.npy": calibration(),
        **{f"res/{name}": text for name, text in RESULTS.items()},
    }
    for _ in range(draw(st.integers(0, 2))):  # damage the results directory
        name = draw(st.sampled_from(sorted(RESULTS)))
        odd = ("", "{}", "null", "[]") + (() if name == "journal.jsonl" else (None,))
        # journal.jsonl as a folder: an internal error in search/journal.py (reported to
        # the search's owner), left out until it is fixed.
        files[f"res/{name}"] = draw(st.one_of(damaged(RESULTS[name]), st.sampled_from(odd)))
    return files


@contextlib.contextmanager
def example_folder(root: Path, files: dict[str, str | bytes | None]) -> Iterator[Path]:
    """A new folder under `root` holding `files`, as the current directory meanwhile."""
    folder = Path(tempfile.mkdtemp(dir=root))
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir(exist_ok=True)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(old)


def weights() -> bytes:
    """A state dict of `GOOD`'s network at its default point (built once)."""
    if not _CACHE.get("weights"):
        import torch

        from sparsemod_dsl.space import compile_text

        torch.manual_seed(0)
        buffer = io.BytesIO()
        torch.save(compile_text(GOOD, "good.arch").build({}).state_dict(), buffer)
        _CACHE["weights"] = buffer.getvalue()
    return _CACHE["weights"]


def calibration() -> bytes:
    """Four random inputs of `GOOD`'s shape, as a .npy file (built once)."""
    if not _CACHE.get("calibration"):
        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, np.random.default_rng(0).normal(size=(4, 1, 8, 8)).astype("float32"))
        _CACHE["calibration"] = buffer.getvalue()
    return _CACHE["calibration"]


_CACHE: dict[str, bytes] = {}


class Trained(BaseException):
    """Raised if a drawn experiment ever got as far as the search engine."""


def no_engine(*args: Any, **kwargs: Any) -> None:
    raise Trained("an experiment file was valid: the fuzz test must never train")


def run(argv: list[str]) -> tuple[int, str]:
    """`sparsemodc ARGV` in process: the exit code and stderr."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit:  # argparse: usage errors, --help
            code = 0 if exit.code is None else exit.code if isinstance(exit.code, int) else 2
    return code, err.getvalue()


@settings(max_examples=150, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(files=folder_contents(), argv=command_lines())
def test_every_command_line_exits_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str | bytes | None],
    argv: list[str],
) -> None:
    from sparsemod_dsl.search import engine

    monkeypatch.delenv("SPARSEMOD_DEBUG", raising=False)
    monkeypatch.setattr(engine, "Search", no_engine)
    guard_replace(monkeypatch, tmp_path)
    with example_folder(tmp_path, files):
        code, err = run(argv)
    event(f"{argv[0]}: exit {code}")  # pytest --hypothesis-show-statistics shows the spread
    assert code in (0, 1, 2), f"exit {code}: {err}"
    assert "Traceback" not in err and "internal error" not in err, err
