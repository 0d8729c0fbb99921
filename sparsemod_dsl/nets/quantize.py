"""Eager-mode int8 quantisation of built networks (post-training).

`static_int8` fuses, observes activations on calibration batches and converts
to int8 kernels (per-channel weights in TFLite's symmetric -127..127); layers
without int8 kernels stay in float inside their `FloatIsland`; convolutions, linear
layers, residual adds and average pooling then compute with TFLite's integer
arithmetic (`int8_kernels`), so that the model is, bit for bit, the one `sparsemodc
export` deploys. `dynamic_int8` quantises the
weights of LSTM, GRU and Linear layers and quantises their activations on the fly.
"""

from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn
from torch.ao.nn import quantized as nnq
from torch.ao.nn.intrinsic import quantized as nniq
from torch.ao.quantization import (
    HistogramObserver,
    PerChannelMinMaxObserver,
    QConfig,
    convert,
    prepare,
    quantize_dynamic,
)

from .int8_kernels import (
    Int8Add,
    Int8AvgPool,
    Int8BatchNorm,
    Int8Conv,
    Int8Linear,
    Int8Softmax,
)
from .modules import FloatIsland, SeqBatchNorm, Softmax
from .network import SparsemodNet

#: The quantised engine: x86 (fbgemm) on PCs; qnnpack mirrors ARM MCU kernels best
#: but lacks some per-channel paths, so x86 is the default where available.
DEFAULT_ENGINE = "x86" if "x86" in torch.backends.quantized.supported_engines else "qnnpack"


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch's notices that eager-mode quantisation is deprecated: it is still
    the API with QuantStub/DeQuantStub and fusion that this project targets."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions")
        warnings.filterwarnings("ignore", message=".*reduce_range will be deprecated")
        warnings.filterwarnings("ignore", message=".*torch.jit.script. is deprecated")
        yield


def static_int8(
    model: SparsemodNet, calibration: Iterable[torch.Tensor], engine: str = DEFAULT_ENGINE
) -> nn.Module:
    """A post-training statically quantised copy of `model`.

    Args:
        model: a float network from `builder.build` (left unchanged).
        calibration: input batches used to observe activation ranges.
        engine: torch quantised engine (`x86`, `fbgemm`, `qnnpack`, `onednn`).
    """
    torch.backends.quantized.engine = engine
    net = copy.deepcopy(model).eval()
    net.fuse_model()
    # Activations use all 8 bits: x86's default keeps 7 (reduce_range) against overflow in
    # fbgemm's kernels, which no longer compute the products (`int8_kernels` does).
    net.qconfig = QConfig(  # type: ignore[assignment]
        activation=HistogramObserver.with_args(reduce_range=False),
        weight=PerChannelMinMaxObserver.with_args(  # TFLite: int8 weights in -127..127
            dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-127,
            quant_max=127))
    for module in net.modules():
        if isinstance(module, FloatIsland):
            module.inner.qconfig = None  # type: ignore[assignment]
    with _quiet():
        prepare(net, inplace=True)
        with torch.no_grad():
            for batch in calibration:
                net(batch)
        convert(net, inplace=True)
    _tflite_arithmetic(net)
    return net


#: Converted torch modules -> the `int8_kernels` module that computes them as TFLite does,
#: and whether a ReLU is fused into them.
_TFLITE_KERNELS: dict[type, tuple[type, bool]] = {
    nnq.Conv1d: (Int8Conv, False), nnq.Conv2d: (Int8Conv, False),
    nniq.ConvReLU1d: (Int8Conv, True), nniq.ConvReLU2d: (Int8Conv, True),
    nnq.Linear: (Int8Linear, False), nniq.LinearReLU: (Int8Linear, True),
}


def _tflite_arithmetic(net: SparsemodNet) -> None:
    """Swap the converted convolutions, linear layers, residual adds, average pools and
    softmaxes for the `int8_kernels` modules that compute them as TFLite Micro does."""
    for key, add in net.adds.items():
        net.adds[key] = Int8Add(add.scale, add.zero_point)
    for key, layer in net.layers.items():
        norm = _float_batchnorm(layer)
        if isinstance(layer, (nnq.BatchNorm2d, nniq.BNReLU2d)):
            net.layers[key] = Int8BatchNorm(layer, layer.scale, layer.zero_point, 1,
                                            isinstance(layer, nniq.BNReLU2d))
        elif norm is not None:
            net.layers[key] = Int8BatchNorm(norm, layer.quant.scale, layer.quant.zero_point, -1)
        elif isinstance(layer, FloatIsland) and isinstance(layer.inner, Softmax):
            net.layers[key] = Int8Softmax(layer.inner.dim)
    islands = [m for m in net.modules() if isinstance(m, FloatIsland)]
    in_float = {id(m) for island in islands for m in island.inner.modules()}
    for module in list(net.modules()):
        for name, child in module.named_children():
            if id(child) in in_float:
                continue
            if type(child) in _TFLITE_KERNELS:
                kernel, relu = _TFLITE_KERNELS[type(child)]
                setattr(module, name, kernel(child, relu))
            elif isinstance(child, (nn.AvgPool1d, nn.AvgPool2d)):
                setattr(module, name, Int8AvgPool(_dims(child), _window(child.kernel_size),
                                                  _window(child.stride)))
            elif isinstance(child, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
                setattr(module, name, Int8AvgPool(_dims(child)))


def _float_batchnorm(layer: nn.Module) -> nn.Module | None:
    """The batch norm a float island holds, if it holds one (not a recurrent layer)."""
    if not isinstance(layer, FloatIsland):
        return None
    inner = layer.inner.bn if isinstance(layer.inner, SeqBatchNorm) else layer.inner
    return inner if isinstance(inner, nn.BatchNorm1d) else None


def _dims(pool: nn.Module) -> int:
    return 1 if isinstance(pool, (nn.AvgPool1d, nn.AdaptiveAvgPool1d)) else 2


def _window(size: object) -> int | tuple[int, int]:
    """A window's size: a number, or (height, width) when its sides differ (torch keeps
    some as 1-tuples or pairs)."""
    if isinstance(size, int):
        return size
    sides = tuple(int(side) for side in size)  # type: ignore[attr-defined]
    return sides[0] if len(set(sides)) == 1 else (sides[0], sides[1])


def dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` with int8 weights for LSTM, GRU and Linear (dynamic activations)."""
    with _quiet():
        return quantize_dynamic(
            copy.deepcopy(model).eval(), {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8
        )
