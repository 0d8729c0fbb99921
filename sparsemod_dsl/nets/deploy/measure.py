"""The cost model's flash and RAM next to what TensorFlow Lite Micro measures.

`measure(program, point)` builds the network of a point with random weights (and batch
norms with non-trivial statistics, so that nothing folds to zero), calibrates int8 on
random data, exports the `.tflite` file, runs it once in TFLM and reads its arena:
the truth the cost model (`cost`) is checked against, by `sparsemodc cost --measure`,
`benchmarks/cost_truth.py` and the tests. Random weights do not change sizes: flash and
the arena depend on shapes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from ...lang import ir
from ..builder import build
from ..cost import CostReport, price
from ..graph import deployed_graph
from ..operators import Graph
from ..quantize import static_int8
from ..trace import trace
from . import tflm
from .int8 import Int8Graph, int8_graph
from .tflite import tflite_model


@dataclass(frozen=True)
class Measured:
    """What TFLM reports for a point's exported model (bytes)."""

    flash_bytes: int
    arena_bytes: int
    activation_bytes: int
    persistent_bytes: int


@dataclass(frozen=True)
class Comparison:
    """A point's predicted costs, what TFLM measured, and the model that was measured."""

    predicted: CostReport
    measured: Measured
    model: bytes
    int8: Int8Graph


def randomized(net: nn.Module, generator: torch.Generator) -> nn.Module:
    """`net` with batch norms given random statistics and affine parameters."""
    for module in net.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            channels = module.num_features
            with torch.no_grad():
                module.running_mean.uniform_(-0.5, 0.5, generator=generator)  # type: ignore[union-attr]
                module.running_var.uniform_(0.5, 2.0, generator=generator)  # type: ignore[union-attr]
                module.weight.copy_(0.5 + torch.rand(channels, generator=generator))
                module.bias.copy_(0.6 * torch.rand(channels, generator=generator) - 0.3)
    return net.eval()


def random_int8(program: ir.Program, point: Mapping[str, object], seed: int = 0,
                batches: int = 2) -> tuple[Graph, nn.Module]:
    """The deployed graph of a point and its int8 network, with random weights,
    calibrated on `batches` batches of 8 standard-normal inputs."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = randomized(build(program, point), generator)
    shape, _ = trace(program, point)
    calibration = [torch.randn(8, *shape.sizes(), generator=generator) for _ in range(batches)]
    return deployed_graph(program, point), static_int8(net, calibration)


def measure(program: ir.Program, point: Mapping[str, object], seed: int = 0) -> Comparison:
    """Predict and measure the flash and arena of the network at (valid) `point`.

    Raises:
        UsageError: TFLite Micro is not installed.
        Int8Error, TFLiteError: a network TFLite Micro cannot run (LSTM/GRU).
    """
    graph, int8 = random_int8(program, point, seed)
    numbers = int8_graph(graph, int8)
    model = tflite_model(numbers)
    arena = tflm.arena(model)
    return Comparison(price(graph), Measured(len(model), arena.total, arena.head, arena.tail),
                      model, numbers)
