"""Eager-mode int8 quantisation of built networks (post-training).

`static_int8` fuses, observes activations on calibration batches and converts
to int8 kernels (per-channel weights); layers without int8 kernels stay in
float inside their `FloatIsland`. `dynamic_int8` quantises the weights of
LSTM, GRU and Linear layers and quantises their activations on the fly.
"""

from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn
from torch.ao.quantization import (
    convert,
    get_default_qconfig,
    prepare,
    quantize_dynamic,
)

from .modules import FloatIsland
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
    net.qconfig = get_default_qconfig(engine)  # type: ignore[assignment]
    for module in net.modules():
        if isinstance(module, FloatIsland):
            module.inner.qconfig = None  # type: ignore[assignment]
    with _quiet():
        prepare(net, inplace=True)
        with torch.no_grad():
            for batch in calibration:
                net(batch)
        convert(net, inplace=True)
    return net


def dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` with int8 weights for LSTM, GRU and Linear (dynamic activations)."""
    with _quiet():
        return quantize_dynamic(
            copy.deepcopy(model).eval(), {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8
        )
