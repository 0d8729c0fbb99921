"""The torch layer modules that plain `torch.nn` lacks, one small class each.

Sequence adapters (conv, pooling, mean, batch norm over (N, T, F)), recurrent
layers, layout changes between images and sequences, and the float island that
keeps a layer without an int8 kernel in float inside a quantised network.
`NetBuilder` (`netlib`) instantiates them; like it they import only torch,
because `codegen` copies this source verbatim into generated builders.

Layouts (batch first): image (N, C, H, W), sequence (N, T, F), vector (N, F).
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn
from torch.ao.quantization import DeQuantStub, QuantStub


class SeqConv1d(nn.Module):
    """conv1d over the steps of a (N, T, F) sequence: F input channels."""

    def __init__(self, pad: Tuple[int, int], conv: nn.Conv1d) -> None:
        super().__init__()
        self.pad = nn.ConstantPad1d(pad, 0.0)
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x.transpose(1, 2))).transpose(1, 2)


class SeqPool(nn.Module):
    """Max or average pooling over the steps of a (N, T, F) sequence."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x.transpose(1, 2)).transpose(1, 2)


class SeqMean(nn.Module):
    """Average over the steps: (N, T, F) -> (N, F)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool1d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x.transpose(1, 2)).flatten(1)


class SeqBatchNorm(nn.Module):
    """Batch norm over the features of a (N, T, F) sequence."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


class Recurrent(nn.Module):
    """LSTM or GRU on (N, T, F); outputs every step or only the last one.

    Bidirectional, every step holds the forward and the backward hidden state side by
    side; the last output is the forward state after the last step and the backward
    state after the first (each direction's final state, as Keras' `Bidirectional`).
    """

    def __init__(self, cell: str, features: int, hidden: int, layers: int, dropout: float,
                 return_sequences: bool, bidirectional: bool = False) -> None:
        super().__init__()
        kind = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = kind(features, hidden, layers, batch_first=True,
                        dropout=dropout if layers > 1 else 0.0, bidirectional=bidirectional)
        self.return_sequences = return_sequences
        self.hidden = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        if self.return_sequences:
            return out
        if self.rnn.bidirectional:
            return torch.cat([out[:, -1, :self.hidden], out[:, 0, self.hidden:]], dim=1)
        return out[:, -1, :]


class ToSequence(nn.Module):
    """Image (N, C, H, W) -> sequence (N, H, C*W): one step per row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.permute(0, 2, 1, 3).reshape(n, h, c * w)


class ToImage(nn.Module):
    """Sequence (N, T, F) -> image (N, 1, T, F)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)


class Softmax(nn.Module):
    """Softmax over the features: dimension 1 of an image (its channels), else the last."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=self.dim)


class FloatIsland(nn.Module):
    """Runs `inner` in float inside a quantised network (it has no int8 kernel)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.dequant = DeQuantStub()
        self.inner = inner
        self.quant = QuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant(self.inner(self.dequant(x)))

