"""Export a network for a microcontroller: int8 TFLite, C source for TFLite Micro, ONNX.

`export(program, point, model, format, name)` writes the files of one format:

- `tflite`: the deployed graph (`graph`) with the numbers of torch's int8 model
  (`int8`), serialised by the TFLite backend (`tflite`); LSTM/GRU networks are refused
  (TFLite Micro cannot run them here: use ONNX);
- `c`: the same model as C++ source for a TFLite Micro firmware (`csource`), with the
  arena TFLM measured (or, without TFLM installed, the modelled one, said so);
- `onnx` / `onnx-int8`: the float network, or its static int8 QDQ form (`onnx_export`),
  for ST's STM32Cube.AI and for recurrent networks.

`tflite` and `c` take the int8 model (`quantize.static_int8`: the search's deployable
model, so that the file is the network whose accuracy was measured); the ONNX formats
take the float network and, for `onnx-int8`, calibration batches. `run_tflm` and
`tflite_inputs` run an exported model on float data, for the accuracy checks of
`sparsemodc export`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from ...errors import SparsemodError
from ...lang import ir
from ..arena import arena
from ..graph import deployed_graph
from ..operators import Graph
from . import tflm
from .csource import TensorInfo, c_sources
from .int8 import Int8Error, Int8Graph, QParams, int8_graph
from .standardize import STANDARDIZE
from .tflite import TFLiteError, tflite_model

FORMATS = ("tflite", "c", "onnx", "onnx-int8")


class ExportError(SparsemodError):
    """A network that cannot be exported in the asked format; the message says why."""


@dataclass(frozen=True)
class Exported:
    """The files of one export (name -> bytes) and what they measure.

    `flash_bytes` is the model file's size (None for ONNX, which no MCU runtime reads
    as is); `arena_bytes` TFLM's arena and `arena_measured` whether TFLM measured it
    (else it is the cost model's figure); `int8` the deployed graph's numbers.
    """

    format: str
    files: dict[str, bytes]
    flash_bytes: int | None = None
    arena_bytes: int | None = None
    arena_measured: bool = False
    int8: Int8Graph | None = None
    model: bytes | None = None


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ExportError(f"unknown export format '{format}': use one of {', '.join(FORMATS)}")


def _int8(graph: Graph, model: nn.Module) -> tuple[Int8Graph, bytes]:
    try:
        numbers = int8_graph(graph, model)
        return numbers, tflite_model(numbers)
    except (Int8Error, TFLiteError) as error:
        raise ExportError(str(error)) from None


def _tensor(numbers: Int8Graph, index: int) -> TensorInfo:
    q = numbers.activations[index]
    return TensorInfo(numbers.graph.tensors[index].shape, float(q.scale[0]),
                      int(q.zero_point[0]))


def export_int8(program: ir.Program, point: Mapping[str, object], model: nn.Module,
                format: str, name: str,
                normalization: tuple[list[float], list[float]] | None = None) -> Exported:
    """The `tflite` or `c` files of the network at `point`, from its int8 model.

    Raises:
        ExportError: a layer TFLite Micro cannot run, or `model` is not the int8 network
            built at `point`.
    """
    _check_format(format)
    graph = deployed_graph(program, point)
    recurrent = next((op for op in graph.ops if op.mac_class == "recurrent"), None)
    if recurrent is not None:
        raise ExportError(
            f"layer {recurrent.name} ({recurrent.code.lower()}) has no int8 kernel in "
            "TensorFlow Lite Micro; export this network with --format onnx or onnx-int8")
    numbers, data = _int8(graph, model)
    measured = tflm.available()
    arena_bytes = tflm.arena(data).total if measured else arena(graph).arena_bytes
    if format == "tflite":
        return Exported(format, {f"{name}.tflite": data}, len(data), arena_bytes, measured,
                        numbers, data)
    operators = [op.code for op in graph.ops]
    raw = any(op.name == STANDARDIZE for op in graph.ops)
    sources = c_sources(name, data, arena_bytes, _tensor(numbers, graph.input),
                        _tensor(numbers, graph.output), operators, normalization,
                        f"{program.name} at a point of its space, exported by sparsemod-dsl; "
                        f"arena {'measured by TFLite Micro' if measured else 'modelled'}"
                        + ("; the input is raw data (the first operator standardises it)"
                           if raw else ""))
    return Exported(format, {file: text.encode() for file, text in sources.items()},
                    len(data), arena_bytes, measured, numbers, data)


def export_onnx(net: nn.Module, input_shape: tuple[int, ...], format: str, name: str,
                calibration: Iterable[torch.Tensor] = ()) -> Exported:
    """The `onnx` (float) or `onnx-int8` (QDQ, calibrated) file of a float network."""
    from .onnx_export import onnx_float, onnx_int8  # noqa: PLC0415 (onnx loads on use)

    _check_format(format)
    if format == "onnx":
        data = onnx_float(net, input_shape)
    else:
        batches = list(calibration)
        if not batches:
            raise ExportError("--format onnx-int8 needs calibration data")
        data = onnx_int8(net, input_shape, batches)
    suffix = "" if format == "onnx" else "_int8"
    return Exported(format, {f"{name}{suffix}.onnx": data}, model=data)


def tflite_inputs(x: torch.Tensor, q: QParams) -> np.ndarray:
    """Float inputs in torch's layout (N, C, H, W or N, T, F or N, F) as the model's int8
    inputs (NHWC, sequences as one-row images, vectors as they are)."""
    values = x.detach().cpu().numpy()
    if values.ndim == 4:
        values = values.transpose(0, 2, 3, 1)
    elif values.ndim == 3:
        values = values[:, None]
    codes = np.round(values / float(q.scale[0])) + int(q.zero_point[0])
    return np.clip(codes, -128, 127).astype(np.int8)


def run_tflm(exported: Exported, x: torch.Tensor) -> np.ndarray:
    """Float outputs (dequantised) of the exported int8 model in TFLite Micro."""
    if exported.model is None or exported.int8 is None:
        raise ExportError(f"a {exported.format} export has no int8 TFLite model to run")
    graph = exported.int8.graph
    q_in, q_out = exported.int8.activations[graph.input], exported.int8.activations[graph.output]
    raw = tflm.run(exported.model, tflite_inputs(x, q_in))
    return (raw.astype(np.float32) - float(q_out.zero_point[0])) * float(q_out.scale[0])
