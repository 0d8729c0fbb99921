"""TensorFlow Lite Micro, in this process: run a `.tflite` model and read its arena.

The `tflite-micro` package (the `deploy` extra) holds TFLM's Python interpreter, built
from the same kernels as the firmware library (the reference kernels). `run` feeds int8
inputs through it; `arena` reads what TFLM's recording allocator reports after
`invoke`: the whole arena, its head (the activation area TFLM's greedy memory planner
lays out) and its tail (persistent data: tensor and node structs, quantisation
parameters, each kernel's data), per category. The cost models are checked against
these numbers (docs/cost-models.md).

The interpreter here is a 64-bit build with TFLM's reference kernels: its structs hold
8-byte pointers where a Cortex-M's hold 4 (its tail is larger than on a
microcontroller), and its kernels request no scratch buffers (CMSIS-NN's do).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import UsageError

#: Arena given to the interpreter when measuring: enough for any network a search keeps.
MEASURE_ARENA = 64 * 1024 * 1024
#: TFLM aligns the arena's start to this many bytes; a firmware arena needs that slack.
ARENA_ALIGNMENT = 16

_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL = re.compile(r"Arena allocation tail (\d+) bytes")
_CATEGORY = re.compile(r"'([^']+)' used (\d+) bytes with alignment overhead "
                       r"\(requested (\d+) bytes for (\d+) ")


@dataclass(frozen=True)
class Category:
    """One line of TFLM's allocation record: bytes used (aligned), requested, count."""

    used: int
    requested: int
    count: int


@dataclass(frozen=True)
class Arena:
    """TFLM's arena after `invoke` (bytes, on this 64-bit host).

    `head` is the activation area (TFLM's greedy memory plan, scratch buffers
    included), `tail` the persistent data; `total` = head + tail.
    """

    total: int
    head: int
    tail: int
    categories: dict[str, Category]


def _runtime() -> Any:
    try:
        from tflite_micro.python.tflite_micro import runtime  # noqa: PLC0415
    except ImportError:
        raise UsageError("TensorFlow Lite Micro is not installed: "
                         "pip install 'sparsemod-dsl[deploy]'") from None
    return runtime


def available() -> bool:
    """Whether TFLM's Python interpreter can be imported here."""
    try:
        _runtime()
    except UsageError:
        return False
    return True


def interpreter(model: bytes, arena_size: int = MEASURE_ARENA) -> Any:
    """A TFLM interpreter holding `model` (the `.tflite` bytes)."""
    return _runtime().Interpreter.from_bytes(model, arena_size=arena_size)


def run(model: bytes, inputs: np.ndarray) -> np.ndarray:
    """The model's int8 outputs for a batch of int8 inputs, one invoke per example.

    Args:
        model: the `.tflite` bytes.
        inputs: int8, shape (N, *input shape without the batch of 1).
    """
    runner = interpreter(model)
    outputs = []
    for example in inputs:
        runner.set_input(example[None].astype(np.int8), 0)
        runner.invoke()
        outputs.append(runner.get_output(0)[0].copy())
    return np.stack(outputs)


def _captured_stderr(call: Any) -> str:
    """What a C++ function prints to the process's stderr (file descriptor 2)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            call()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        return sink.read().decode("utf-8", "replace")


def arena(model: bytes, example: np.ndarray | None = None) -> Arena:
    """TFLM's arena for `model`, measured after one invoke (on zeros by default)."""
    runner = interpreter(model)
    details = runner.get_input_details(0)
    shape = tuple(int(d) for d in details["shape"])
    runner.set_input(np.zeros(shape, np.int8) if example is None else example, 0)
    runner.invoke()
    text = _captured_stderr(runner.print_allocations)
    numbers = [pattern.search(text) for pattern in (_TOTAL, _HEAD, _TAIL)]
    if not all(numbers):
        raise RuntimeError(f"unexpected output of TFLM's print_allocations:\n{text}")
    total, head, tail = (int(match.group(1)) for match in numbers)  # type: ignore[union-attr]
    categories = {m.group(1): Category(int(m.group(2)), int(m.group(3)), int(m.group(4)))
                  for m in _CATEGORY.finditer(text)}
    return Arena(total, head, tail, categories)
