"""The ONNX backend: a built network as an ONNX model, float or static int8 (QDQ).

ONNX is what STM32Cube.AI / ST Edge AI (and other MCU toolchains) import besides TFLite.
`onnx_float` exports the float `SparsemodNet` (its QuantStub/DeQuantStub are identities
in float); `onnx_int8` quantises that model with onnxruntime's `quantize_static` in QDQ
format, the form ST Edge AI takes quantised ONNX models in: int8 activations
(asymmetric, calibrated min/max), per-channel symmetric int8 weights, int32 biases.
torch's eager int8 model (`quantize`) has no ONNX export, so the int8 model is derived
from the float one here. `run_onnx` runs either with onnxruntime on the CPU.

Facts, measured with torch 2.13 and onnxruntime 1.32 on every stdlib space:

- Exporter: torch's TorchScript exporter (`dynamo=False`); the dynamo exporter needs
  `onnxscript`, which this project does not install. It handles every stdlib layer,
  LSTM and GRU included; its model is then simplified by onnxruntime's basic (standard
  operators only) optimisations: constant folding, Pad and BatchNorm folded into Conv
  (the exporter leaves the pads of a ZeroPad2d as a subgraph it cannot fold); this
  cuts the node count 3-10x.
- Opset 13 (`OPSET`): the first with per-axis QuantizeLinear/DequantizeLinear, inside
  what ST Edge AI imports (opsets 7..20) and what the TorchScript exporter writes (..20).
- Input "input", output "output", the batch dimension dynamic ("batch"); the trace
  uses a batch of one, as a traced LSTM/GRU needs. Reshapes after `to_sequence` and
  around `time_distributed` bodies keep small Shape/Gather/Concat subgraphs for it.
- LSTM and GRU stay float in the int8 model (ONNX has no QDQ form of them): the graph
  dequantises before them and quantises after them. Batch norms that follow no
  convolution or linear layer are quantised like them (per-channel int8 scales).

onnx and onnxruntime are imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from ...errors import SparsemodError

#: The ONNX opset of exported models (see the module docstring).
OPSET = 13
INPUT, OUTPUT = "input", "output"


class OnnxExportError(SparsemodError):
    """ONNX export, quantisation or inference failed (or onnx/onnxruntime are missing)."""


def _require() -> tuple[Any, Any]:
    """The `onnx` and `onnxruntime` modules, or an `OnnxExportError` saying how to get them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise OnnxExportError(f"ONNX export needs onnx and onnxruntime ({exc}): "
                              "pip install 'sparsemod-dsl[deploy]'") from exc
    return onnx, onnxruntime


def _shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if not shape or not all(type(s) is int or isinstance(s, np.integer) for s in shape) \
            or min(shape) < 1:
        raise OnnxExportError(f"bad input shape {shape}: expected positive integer sizes "
                              "without the batch, (C, H, W) or (T, F)")
    return tuple(int(s) for s in shape)


def _session(ort: Any, model: bytes | str, level: str = "ORT_ENABLE_BASIC",
             save: str | None = None) -> Any:
    """An onnxruntime CPU session (errors-only logging, as many threads as torch) that
    optimises the graph at `level` and writes the optimised model to `save`."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    if save:
        options.optimized_model_filepath = save
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def onnx_float(net: torch.nn.Module, input_shape: Sequence[int]) -> bytes:
    """The float network (in eval mode) as a serialised ONNX model (`OPSET`, dynamic batch).

    Args:
        net: a built network (`space.build(point)`); it is not modified.
        input_shape: the input without the batch: (C, H, W) or (T, F).

    Raises:
        OnnxExportError: onnx/onnxruntime are missing, the shape does not fit the
            network, or the exporter fails; the message holds the cause.
    """
    onnx, ort = _require()
    shape = _shape(input_shape)
    model = copy.deepcopy(net).eval()
    example = torch.zeros(1, *shape)
    try:
        with torch.no_grad():
            model(example)
    except Exception as exc:  # conv, linear or reshape errors
        raise OnnxExportError(f"the network does not take inputs of shape {shape}: "
                              f"{exc}") from exc
    try:
        with tempfile.TemporaryDirectory(prefix="sparsemod-onnx-") as folder:
            traced, simplified = Path(folder) / "traced.onnx", Path(folder) / "float.onnx"
            with warnings.catch_warnings():  # the TorchScript exporter's deprecation
                warnings.simplefilter("ignore")  # notice, the tracer's notes on nn.LSTM
                torch.onnx.export(
                    model, (example,), str(traced), dynamo=False, opset_version=OPSET,
                    input_names=[INPUT], output_names=[OUTPUT],
                    dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                )
            _session(ort, str(traced), save=str(simplified))
            data = _standard_domains(onnx, simplified.read_bytes())
        onnx.checker.check_model(onnx.load_from_string(data))
    except Exception as exc:
        raise OnnxExportError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    return data


def _standard_domains(onnx: Any, data: bytes) -> bytes:
    """The model without the opset imports no node uses: onnxruntime's optimiser declares
    its private domains (com.microsoft, ...), which other importers need not know."""
    model = onnx.load_from_string(data)
    used = {node.domain for node in model.graph.node}
    keep = [o for o in model.opset_import if o.domain in used or o.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return bytes(model.SerializeToString())


def _batches(calibration: Iterable[Any], shape: tuple[int, ...]) -> list[np.ndarray]:
    batches = []
    for item in calibration:
        array = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item
        array = np.ascontiguousarray(array, dtype=np.float32)
        if array.shape[1:] != shape or not len(array):  # (N, *shape), N > 0
            raise OnnxExportError(f"calibration batch of shape {array.shape}: expected "
                                  f"(N, {', '.join(map(str, shape))})")
        batches.append(array)
    if not batches:
        raise OnnxExportError("no calibration batches: int8 quantisation needs at least one")
    return batches


@contextlib.contextmanager
def _quiet_root() -> Iterator[None]:
    """onnxruntime's quantiser logs notes on the root logger; without a handler there,
    Python would set one up for good (`logging.basicConfig`): hold one meanwhile."""
    root, handler = logging.getLogger(), logging.NullHandler()
    added = not root.handlers
    if added:
        root.addHandler(handler)
    try:
        yield
    finally:
        if added:
            root.removeHandler(handler)


def onnx_int8(net: torch.nn.Module, input_shape: Sequence[int],
              calibration: Iterable[torch.Tensor | np.ndarray]) -> bytes:
    """The network as a static int8 ONNX model in QDQ format.

    QuantizeLinear/DequantizeLinear pairs around int8 activations (asymmetric, min/max
    over `calibration`), per-channel symmetric int8 weights, int32 biases. LSTM and GRU
    layers stay float.

    Args:
        net: a built network; it is not modified.
        input_shape: the input without the batch: (C, H, W) or (T, F).
        calibration: float input batches, each of shape (N, *input_shape), torch
            tensors or numpy arrays; they should look like the deployed inputs.

    Raises:
        OnnxExportError: as `onnx_float`, or a calibration batch has the wrong shape,
            or the quantiser fails.
    """
    onnx, _ = _require()
    shape = _shape(input_shape)
    batches = _batches(calibration, shape)
    data = onnx_float(net, shape)
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.feeds = iter([{INPUT: batch} for batch in batches])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    try:
        with tempfile.TemporaryDirectory(prefix="sparsemod-onnx-") as folder, _quiet_root():
            source, prepared, target = (Path(folder) / f"{name}.onnx"
                                        for name in ("float", "prepared", "int8"))
            source.write_bytes(data)
            quant_pre_process(str(source), str(prepared))  # shape inference, as advised
            quantize_static(
                str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ,
                per_channel=True, activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False,
                               # a batch norm's scale is 1-D: its channels are axis 0
                               "QDQOpTypePerChannelSupportToAxis": {"BatchNormalization": 0}},
            )
            return _standard_domains(onnx, target.read_bytes())
    except Exception as exc:
        raise OnnxExportError(f"int8 quantisation failed: {type(exc).__name__}: {exc}") \
            from exc


def run_onnx(model: bytes, inputs: np.ndarray | torch.Tensor, *,
             int8_kernels: bool = False) -> np.ndarray:
    """The outputs of an ONNX model (`onnx_float` or `onnx_int8`) for a float batch,
    from onnxruntime's CPU provider.

    By default the graph runs as written: an int8 model's QuantizeLinear/DequantizeLinear
    nodes round and clip exactly and the operators between them compute in float, as a
    microcontroller's int8 kernels (int32 sums) do up to rounding. `int8_kernels=True`
    lets onnxruntime fuse them into its x86 int8 kernels: faster, but on CPUs without
    VNNI they saturate 16-bit sums of products (measured: a correlation with the float
    outputs of 0.60 where the QDQ graph gives 0.98).

    Raises:
        OnnxExportError: onnxruntime is missing, or cannot load or run the model on
            `inputs` (a wrong shape, say); the message holds the cause.
    """
    _, ort = _require()
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.detach().cpu().numpy()
    try:
        session = _session(ort, model, "ORT_ENABLE_ALL" if int8_kernels else "ORT_ENABLE_BASIC")
        feed = {session.get_inputs()[0].name: np.ascontiguousarray(inputs, dtype=np.float32)}
        return np.asarray(session.run(None, feed)[0])
    except Exception as exc:
        raise OnnxExportError(f"onnxruntime failed: {type(exc).__name__}: {exc}") from exc
