"""`SparsemodNet`: the torch module of one built network, and how it runs and fuses.

It holds the layers `NetBuilder` (`netlib`) made and replays its plan in
`forward`. Imports only torch (and the layer modules), because `codegen` copies
this source verbatim into generated builders.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


class SparsemodNet(nn.Module):
    """A network built from a `.arch` program at one point of its space.

    Layers live in one `ModuleDict` under keys derived from their readable IR
    names; `plan` lists the steps of the forward pass: run a layer, save the
    input of a residual, run its shortcut on it, add it back, fold a sequence
    into a batch of steps for a time-distributed body and unfold it again.
    """

    def __init__(self, layers: "OrderedDict[str, nn.Module]", plan: Sequence[Tuple[str, str]],
                 adds: Sequence[str], fusions: Sequence[Sequence[str]],
                 point: Dict[str, object]) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.layers = nn.ModuleDict(layers)
        self.adds = nn.ModuleDict({key: FloatFunctional() for key in adds})
        self.dequant = DeQuantStub()
        self.plan = tuple(plan)
        self.fusions = [list(group) for group in fusions]
        self.point = dict(point)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        saved: List[torch.Tensor] = []
        folds: List[Tuple[int, int]] = []
        for step, key in self.plan:
            if step == "layer":
                x = self.layers[key](x)
            elif step == "save":
                saved.append(x)
            elif step == "shortcut":
                saved.append(self.layers[key](saved.pop()))
            elif step == "add":
                x = self.adds[key].add(x, saved.pop())
            elif step == "fold":
                folds.append((x.shape[0], x.shape[1]))
                x = x.reshape(x.shape[0] * x.shape[1], x.shape[2])
            else:
                n, t = folds.pop()
                x = x.reshape(n, t, x.shape[-1])
        return self.dequant(x)

    def fuse_model(self) -> None:
        """Fuse Conv-BN-ReLU, Conv-BN, Conv-ReLU, BN-ReLU, Linear-BN, Linear-ReLU (eval mode)."""
        if self.fusions:
            was_training = self.training
            self.eval()
            fuse_modules(self, self.fusions, inplace=True)
            self.train(was_training)
            self.fusions = []

