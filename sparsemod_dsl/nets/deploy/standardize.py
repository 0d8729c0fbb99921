"""Standardisation carried into an exported network, so that the device feeds raw data.

A search standardises every input channel (images) or feature (sequences, vectors) with
the train split's mean and standard deviation (`search.prepare`). TFLite keeps one scale
per input tensor, so per-channel statistics cannot live in the input quantisation alone:
`standardized_program` puts a fixed batch norm named `standardize` in front of the
network instead, and `standardized_net` gives it the statistics (scale 1/std, shift
-mean/std) and the trained weights. Both models built from it (the deployed graph, a
1x1 DEPTHWISE_CONV_2D first; torch's int8 model, `Int8BatchNorm` first) compute the same
thing, so TFLite Micro still agrees with torch int8, on raw inputs.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import torch
from torch import nn

from ...lang import ir
from ..builder import build
from ..network import SparsemodNet

#: The readable name (and module key) of the leading batch norm.
STANDARDIZE = "standardize"


def standardized_program(program: ir.Program) -> ir.Program:
    """`program` with a leading batch norm `standardize`: the network an export writes."""
    first = ir.Layer("batchnorm", (), STANDARDIZE)
    return dataclasses.replace(program, network=(first, *program.network))


def standardized_net(program: ir.Program, point: Mapping[str, object], trained: nn.Module,
                     mean: Sequence[float], std: Sequence[float]) -> SparsemodNet:
    """The float network of `standardized_program(program)` at `point`: `trained`'s
    weights after a batch norm that maps raw inputs x to (x - mean) / std."""
    net = build(standardized_program(program), point)
    missing, unexpected = net.load_state_dict(trained.state_dict(), strict=False)
    if unexpected or any(not key.startswith(f"layers.{STANDARDIZE}.") for key in missing):
        raise ValueError(f"the trained network is not the one built at the point: "
                         f"{(unexpected or missing)[0]}")
    norm = next(m for m in net.layers[STANDARDIZE].modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm))
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor(mean, dtype=torch.float32))
        norm.running_var.copy_(torch.tensor(std, dtype=torch.float32) ** 2)
        norm.weight.fill_(1.0)
        norm.bias.fill_(0.0)
    norm.eps = 0.0
    net.eval()
    return net
