"""The Python API's main object: a compiled `.arch` program and what it can do.

    import sparsemod_dsl as sm
    space = sm.compile_file("stdlib/sparse_cnn.arch", input_shape=(1, 8, 8), classes=10)
    point = space.sample(1, seed=0)[0]
    if space.validate(point):
        net = space.build(point)

Each method delegates to one backend module; this class only binds them to a
program.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
from ax.core.search_space import SearchSpace

from .errors import UsageError
from .lang import ir
from .lang.compiler import check_file, compile_source
from .nets import axspace, codegen, point, quantize
from .nets import cost as cost_model
from .nets.builder import bind, build
from .nets.deploy import export as export_model
from .nets.network import SparsemodNet
from .nets.targets import Target, load_target
from .nets.trace import trace


class Space:
    """A checked program bound to an input shape and a number of classes."""

    def __init__(self, program: ir.Program) -> None:
        self.program = program

    @property
    def name(self) -> str:
        """The `arch` name."""
        return self.program.name

    @property
    def parameters(self) -> tuple[ir.Parameter, ...]:
        """Every parameter, searchable and fixed, in declaration order."""
        return self.program.parameters

    @property
    def searchable(self) -> tuple[ir.Parameter, ...]:
        """The parameters an optimiser chooses."""
        return self.program.searchable

    @cached_property
    def search_space(self) -> SearchSpace:
        """The flat Ax search space (one Ax parameter per IR parameter)."""
        return axspace.search_space(self.program)

    def hierarchical_search_space(self) -> SearchSpace:
        """The Ax search space without parameters of absent parts (Ax hierarchy)."""
        return axspace.search_space(self.program, hierarchical=True)

    def validate(self, params: Mapping[str, object]) -> point.Validation:
        """Whether a point can be built, and if not why (never raises)."""
        return point.validate(self.program, params)

    def build(self, params: Mapping[str, object]) -> SparsemodNet:
        """The PyTorch network at a point (raises `BuildError` for invalid points)."""
        return build(self.program, params)

    def sample(self, n: int, seed: int = 0) -> list[point.Point]:
        """`n` reproducible random points (active parameters, readable names)."""
        return point.sample(self.program, n, seed)

    def active(self, params: Mapping[str, object]) -> point.Point:
        """The active parameters of a point, defaults filled in."""
        return point.active(self.program, params)

    def cost(self, params: Mapping[str, object], target: Target | str | None = None,
             quant: str = "int8", sparse_weights: float = 0.0) -> cost_model.CostReport:
        """Parameters, flash bytes (the `.tflite` file), RAM bytes (TFLite Micro's arena,
        its activation area, the live-tensor bound), MACs and latency (ms, with a target:
        a `Target`, a built-in name or a TOML path) of a point, priced on its deployed
        graph without building it.

        Raises `PointError` (with `validate`'s reason) for a point that cannot be built.
        """
        self._check(params)
        resolved = None if target is None else self._target(target)
        return cost_model.cost(self.program, params, resolved, quant, sparse_weights)

    def fits(self, params: Mapping[str, object], target: Target | str, quant: str = "int8",
             sparse_weights: float = 0.0) -> cost_model.Fit:
        """Whether a point fits the target's SRAM and flash budgets; `.reason` says why not.

        Raises `PointError` (with `validate`'s reason) for a point that cannot be built.
        """
        self._check(params)
        return cost_model.fits(self.program, params, self._target(target), quant,
                               sparse_weights)

    def export(self, params: Mapping[str, object], net: SparsemodNet, format: str = "tflite",
               calibration: Iterable[torch.Tensor] = (), name: str | None = None
               ) -> export_model.Exported:
        """The files that deploy the trained float network `net` of a point (see
        `nets.deploy.export`): `tflite` (int8), `c` (C++ source for TensorFlow Lite Micro),
        `onnx` (float) or `onnx-int8` (QDQ). The int8 formats are calibrated on
        `calibration`, float input batches; `name` names the files (default: the arch).

        Raises `PointError` for a point that cannot be built and `ExportError` for a
        network the format cannot hold (LSTM/GRU in TFLite, say).
        """
        self._check(params)
        name = name or self.name
        batches = list(calibration)
        if format in ("onnx", "onnx-int8"):
            shape = self.trace_input(params)
            return export_model.export_onnx(net, shape, format, name, batches)
        if not batches:
            raise export_model.ExportError(f"--format {format} needs calibration data")
        int8 = quantize.static_int8(net, batches)
        return export_model.export_int8(self.program, params, int8, format, name)

    def trace_input(self, params: Mapping[str, object]) -> tuple[int, ...]:
        """The input shape (batch excluded) the network of a point takes."""
        shape, _ = trace(self.program, params)
        return shape.sizes()

    def _check(self, params: Mapping[str, object]) -> None:
        check = point.validate(self.program, params)
        if not check:
            raise point.PointError(check.reason)

    @staticmethod
    def _target(target: Target | str) -> Target:
        """A target given as itself, a built-in name or a TOML path."""
        return load_target(target) if isinstance(target, str) else target

    def builder_source(self) -> str:
        """A standalone Python module (torch only) that builds this space's networks."""
        return codegen.builder_source(self.program)


def _bound(program: ir.Program, input_shape: Sequence[int] | None, classes: int | None) -> Space:
    program = bind(program, input_shape, classes)
    if program.input.shape is None:
        raise UsageError(
            f"{program.file}: the input shape is unknown: pass input_shape or write it in the "
            "header, e.g. `arch name(input: image(1, 8, 8), classes = 10)`"
        )
    if program.classes is None:
        raise UsageError(f"{program.file}: the number of classes is unknown: pass classes")
    return Space(program)


def compile_file(
    path: str | Path, input_shape: Sequence[int] | None = None, classes: int | None = None
) -> Space:
    """Compile a `.arch` file (with its imports) into a `Space`.

    Args:
        path: the file.
        input_shape: (C, H, W) for images or (T, F) for sequences; defaults to the header's.
        classes: the number of classes; defaults to the header's.

    Raises:
        UsageError: unreadable file, a library without a network, or no shape/classes.
        ArchError: errors in the source, with positions.
    """
    checked = check_file(path, tuple(input_shape) if input_shape else None, classes)
    if checked.program is None:
        raise UsageError(f"{path}: a library of blocks has no network to compile")
    return _bound(checked.program, input_shape, classes)


def compile_text(
    text: str,
    file: str = "<string>",
    input_shape: Sequence[int] | None = None,
    classes: int | None = None,
) -> Space:
    """Like `compile_file`, for source text."""
    shape = tuple(input_shape) if input_shape else None
    return _bound(compile_source(text, file, shape, classes), input_shape, classes)
