"""Shared utilities for the point, builder, codegen, quantisation and stdlib tests.

Every standard-library program (and the example) is compiled once per test run;
`batch` makes an input for a program at a point (sequence programs with a
`train.max_len` parameter see that many steps); `small_valid_points` picks sampled
points that validate and whose networks are cheap enough to run in a test.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping

import pytest
import torch

from sparsemod_dsl.lang import ir
from sparsemod_dsl.lang.compiler import check_file, compile_source
from sparsemod_dsl.nets import point

if TYPE_CHECKING:
    from sparsemod_dsl.nets.network import SparsemodNet

ROOT = Path(__file__).resolve().parents[1]
STDLIB = ROOT / "stdlib"
EXAMPLE = ROOT / "examples" / "quickstart.arch"
REFERENCE = ROOT.parent / "shared" / "reference" / "sparsemod_example_spaces.json"

#: Every `.arch` file of the standard library (the library `sparse_blocks` included).
STDLIB_FILES = tuple(sorted(STDLIB.glob("*.arch")))
#: Every file with a program: the stdlib programs and the example.
PROGRAM_FILES = tuple(f for f in STDLIB_FILES if f.stem != "sparse_blocks") + (EXAMPLE,)
PROGRAM_NAMES = tuple(f.stem for f in PROGRAM_FILES)

#: Forward passes are skipped for networks with more weights than this: the largest
#: points of the sequence spaces (750 steps, 100 filters, 5 x 512 LSTM) take seconds each.
MAX_WEIGHTS = 300_000

MAX_LEN = "train.max_len"


def src(text: str) -> str:
    """Dedented source without the leading newline."""
    return textwrap.dedent(text).lstrip("\n")


def at(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """Line and column (from 1) of the `nth` occurrence of `needle` in dedented `text`."""
    text = src(text)
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


@lru_cache(maxsize=None)
def program(name: str) -> ir.Program:
    """The checked program of a stdlib file or of the example, by file stem."""
    path = next(f for f in PROGRAM_FILES if f.stem == name)
    checked = check_file(path).program
    assert checked is not None, f"{path} has no program"
    return checked


#: A space using every layer and construct, with shapes that fail at some points.
ZOO_SOURCE = '''
arch zoo(input: image(3, 12, 12), classes = 5)

network {
    stem: conv2d(filters = choice[8, 12], kernel = int[1..4], stride = int[1..3],
                 padding = choice["same", "valid"]) batchnorm relu
    residual {
        inner: conv2d(filters = in_channels, kernel = choice[3, 5], bias = choice[true, false])
        batchnorm relu
    }
    sepconv2d(filters = int[4..16] step 4, kernel = choice[2, 3], stride = choice[1, 2],
              multiplier = choice[1, 2]) relu6
    dwconv2d(kernel = 3, padding = int[0..2], multiplier = choice[1, 2])
    downconv2d(filters = 6, kernel = int[2..3], ratio = float[0.0..1.0], padding = "valid")
    optional pooled {
        avgpool(size = choice[2, 3], stride = int[1..2])
    }
    to_sequence
    conv1d(filters = choice[6, 12], kernel = int[1..3], padding = choice["same", "valid"],
           groups = choice[1, 2, 3])
    skip: residual(shortcut = choice["auto", "projection", "avgpool"]) {
        down: conv1d(filters = choice[6, 12], kernel = 3, stride = choice[1, 2])
    }
    time_distributed {
        linear(units = int[4..12]) batchnorm relu
        dropout(p = 0.1)
    }
    maxpool(size = 2, stride = 1)
    batchnorm
    choose rec {
        long: lstm(hidden = int[4..16], layers = int[1..2], return_sequences = true)
        gated: gru(hidden = int[4..16], return_sequences = true)
    }
    global_avg_pool
    linear(classes)
}
'''


#: Two spaces that together use every operator of the deployed graph (`nets.graph`):
#: standalone batch norms (image, sequence, vector), numeric padding, residual adds with
#: a ReLU after them, flatten before a linear layer (its weights permuted) or before a
#: batch norm (a TRANSPOSE), image -> sequence, grouped conv1d, time-distributed layers;
#: `deploy_together` uses the constructs of issue 15 at once (searched resolution, pair
#: kernels from in_height/in_width, the repeat index, shortcuts, make_divisible, costs).
DEPLOY_SOURCES = {
    "deploy_image": '''
arch deploy_image(input: image(3, side, side), side = choice[10, 12] ordered, classes = 5)

network {
    batchnorm
    stem: conv2d(filters = choice[8, 12], kernel = int[1..4], stride = int[1..2],
                 padding = choice["same", "valid"]) batchnorm relu
    conv2d(filters = 8, kernel = 3, padding = int[1..2])
    residual {
        inner: conv2d(filters = in_channels, kernel = choice[3, 5], bias = choice[true, false])
        batchnorm
    }
    relu
    sepconv2d(filters = int[4..16] step 4, kernel = choice[2, 3], stride = choice[1, 2],
              multiplier = choice[1, 2]) relu6
    dwconv2d(kernel = 3, padding = int[0..2], multiplier = choice[1, 2])
    downconv2d(filters = 6, kernel = int[2..3], ratio = float[0.0..1.0], padding = "valid")
    optional pooled {
        avgpool(size = choice[2, 3], stride = int[1..2])
    }
    choose head {
        mean: global_avg_pool relu
        normed: flatten batchnorm
        dense: flatten dropout(p = 0.2) linear(units = 8) relu6
    }
    linear(classes)
}
''',
    "deploy_sequence": '''
arch deploy_sequence(input: image(2, 6, 10), classes = 4)

network {
    conv2d(filters = choice[3, 6], kernel = 3) batchnorm relu
    to_sequence
    conv1d(filters = choice[6, 12], kernel = int[1..3], padding = int[0..1],
           groups = choice[1, 2, 3])
    time_distributed {
        linear(units = int[4..12]) batchnorm relu
        dropout(p = 0.1)
    }
    choose pool {
        biggest: maxpool(size = 2, stride = 1)
        mean: avgpool(size = 2)
    }
    batchnorm relu
    flatten
    linear(classes)
}
''',
    "deploy_kernels": '''
arch deploy_kernels(input: image(2, 14, 9), classes = 4)

network {
    stem: conv2d(filters = 6, kernel = (int[2..5], choice[1, 3]), stride = (2, int[1..2]),
                 padding = choice["same", "valid"]) batchnorm relu
    dilated: conv2d(filters = 6, kernel = (2, 3), dilation = (choice[1, 2], int[1..2]),
                    padding = int[0..1])
    dwconv2d(kernel = (3, 1), stride = (1, 2), dilation = int[1..2], multiplier = choice[1, 2])
    sepconv2d(filters = 8, kernel = (1, choice[2, 3]), stride = (choice[1, 2], 1)) relu6
    avgpool(size = (2, 1), stride = (1, choice[1, 2]))
    to_sequence
    conv1d(filters = choice[6, 12], kernel = int[1..3], dilation = int[1..3],
           padding = choice["causal", "same", "valid"])
    relu
    conv1d(filters = 8, kernel = 2, dilation = 2, padding = "causal", groups = 2)
    global_avg_pool
    linear(classes)
}
''',
    "deploy_shortcuts": '''
arch deploy_shortcuts(input: image(3, 12, 12), classes = 4)

network {
    conv2d(filters = 8, kernel = 3) batchnorm relu
    down: residual(shortcut = choice["projection", "auto"]) {
        conv2d(filters = choice[8, 16], kernel = 3, stride = choice[1, 2]) batchnorm relu
        conv2d(filters = in_channels, kernel = 3) batchnorm
    }
    relu
    pooled: residual(shortcut = choice["avgpool", "auto"]) {
        conv2d(filters = in_channels, kernel = 3, stride = 2) batchnorm
    }
    to_sequence
    residual(shortcut = "auto") {
        conv1d(filters = choice[12, 24], kernel = 3, stride = choice[1, 2]) batchnorm relu
    }
    global_avg_pool
    linear(classes)
}
''',
    "deploy_together": '''
arch deploy_together(input: image(1, frames, 10), frames = choice[25, 33, 49] ordered,
                     classes = 6)

network {
    width = choice[0.25, 0.5, 0.75, 1.0] ordered default 0.5
    stem: conv2d(make_divisible(16 * width, 8),
                 kernel = (min(10, in_height), min(4, in_width)), stride = (2, 2))
    batchnorm relu
    repeat stage = int[1..3] default 2 as i {
        block: residual(shortcut = choice["auto", "projection"]) {
            conv2d(make_divisible(16 * i * width, 8), kernel = min(3, in_height, in_width),
                   stride = min(2, i)) batchnorm relu
            dwconv2d(kernel = 3, dilation = 2 ** (i - 1)) batchnorm
        }
        relu
    }
    to_sequence
    conv1d(24, kernel = 2) relu
    repeat level = int[1..2] as j {
        residual {
            conv1d(24, kernel = 3, dilation = 2 ** (j - 1), padding = "causal") relu
        }
    }
    head: choose {
        pooled: global_avg_pool
        last: flatten dropout(p = float[0.0..0.3])
    }
    linear(classes)
}

constraint ram <= 10 KB

constraint macs <= 400_000
''',
}


@lru_cache(maxsize=None)
def deploy_program(name: str) -> ir.Program:
    """The checked program of `DEPLOY_SOURCES[name]`."""
    return compile_source(DEPLOY_SOURCES[name], f"{name}.arch")


@lru_cache(maxsize=None)
def zoo() -> ir.Program:
    """The checked program of `ZOO_SOURCE`."""
    return compile_source(ZOO_SOURCE, "zoo.arch")


def input_sizes(prog: ir.Program, pt: Mapping[str, object]) -> tuple[int, ...]:
    """The input shape (without the batch) the network of `prog` sees at `pt`."""
    assert prog.input.shape is not None
    sizes = tuple(prog.input.shape)
    full = point.complete(prog, pt)
    if prog.input.kind == "sequence" and MAX_LEN in full:
        sizes = (int(full[MAX_LEN]), *sizes[1:])  # type: ignore[call-overload]
    if prog.input.searched:  # searched input sizes: the point's
        sizes = tuple(size if name is None else int(full[name])  # type: ignore[call-overload]
                      for size, name in zip(sizes, prog.input.searched))
    return sizes


def batch(prog: ir.Program, pt: Mapping[str, object], n: int = 2, seed: int = 0) -> torch.Tensor:
    """A reproducible random input batch of `n` examples for `prog` at `pt`."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, *input_sizes(prog, pt), generator=generator)


def weights(net: torch.nn.Module) -> int:
    """The number of weights (parameters) of a module."""
    return sum(p.numel() for p in net.parameters())


def small_valid_points(prog: ir.Program, n: int, seed: int) -> Iterator[point.Point]:
    """Points of `sample(prog, n, seed)` that validate and have at most MAX_WEIGHTS weights."""
    from sparsemod_dsl.nets.builder import build

    for pt in point.sample(prog, n, seed):
        if point.validate(prog, pt) and weights(build(prog, pt)) <= MAX_WEIGHTS:
            yield pt


def is_cnn(prog: ir.Program) -> bool:
    """True for programs with 2-D convolutions: an image input, or a sequence made one."""

    ops = {layer.op for layer in ir.layers(prog.network)}
    return prog.input.kind == "image" or "to_image" in ops


def is_rnn(prog: ir.Program) -> bool:
    """True for programs with an LSTM or a GRU."""

    return any(layer.op in ("lstm", "gru") for layer in ir.layers(prog.network))


#: Stub TFLite Micro headers for compiling exported C sources without TFLM's tree: the
#: op resolver declares its `Add*` methods only, so a misspelt one fails to compile.
def tflm_stub_headers() -> dict[str, str]:
    """Relative path -> text of the stub headers `csource`'s files include."""
    from sparsemod_dsl.nets.deploy.csource import RESOLVER_METHODS

    methods = "\n".join(f"  TfLiteStatus {m}();" for m in RESOLVER_METHODS.values())
    return {
        "tensorflow/lite/c/common.h":
            "#pragma once\ntypedef enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 } "
            "TfLiteStatus;\n",
        "tensorflow/lite/micro/micro_mutable_op_resolver.h":
            "#pragma once\n#include \"tensorflow/lite/c/common.h\"\nnamespace tflite {\n"
            "template <unsigned int tOpCount>\nclass MicroMutableOpResolver {\n public:\n"
            f"{methods}\n}};\n}}  // namespace tflite\n",
    }


def gxx(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """g++ -std=c++17 with every warning an error, in `folder` (on the include path)."""
    flags = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{folder}"]
    return subprocess.run([shutil.which("g++") or "g++", *flags, *args], cwd=folder,
                          capture_output=True, text=True, timeout=120)


def cheap_points(prog: ir.Program, n: int, max_steps: int) -> Iterator[point.Point]:
    """The first `n` valid points over fixed seeds that are cheap to quantise and run: at
    most MAX_WEIGHTS weights and, for sequences, at most `max_steps` steps (calibrating and
    running a 5-layer GRU over 750 steps takes seconds)."""
    from sparsemod_dsl.nets.builder import build

    found = 0
    for seed in range(50):
        for pt in point.sample(prog, 4, seed):
            if point.complete(prog, pt).get(MAX_LEN, 0) > max_steps:  # type: ignore[operator]
                continue
            if point.validate(prog, pt) and weights(build(prog, pt)) <= MAX_WEIGHTS:
                yield pt
                found += 1
                if found == n:
                    return


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `sparsemodc ARGV` in process; returns the exit code, stdout and stderr."""
    from sparsemod_dsl import cli

    try:
        code = cli.main(list(argv))
    except SystemExit as exit:  # argparse: --help, --version and usage errors
        code = exit.code if isinstance(exit.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def sensitive(prog: ir.Program, pt: Mapping[str, object],
              calibration: list[torch.Tensor]) -> "SparsemodNet":
    """The network at `pt`, made input-sensitive as training would: He-initialised
    convolutions and linear layers, batch-norm statistics from the calibration batches
    (a plain average). Untrained networks with default initialisation average their
    inputs away, and quantisation noise would then swamp what is left."""
    from torch import nn

    from sparsemod_dsl.nets.builder import build

    torch.manual_seed(0)
    net = build(prog, pt)
    for module in net.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batches
    net.train()
    with torch.no_grad():
        for x in calibration:
            net(x)
    return net.eval()
