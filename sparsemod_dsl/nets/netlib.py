"""`NetBuilder`: builds a `SparsemodNet` layer by layer, tracking the shape as it goes.

Also owns the shape arithmetic of windows and padding, and the grouping of
conv/linear/bn/relu runs into torch fusions. This module imports only torch
(and its sibling torch-only `modules` and `network`), so that `sparsemodc
compile --emit builder` can copy all three verbatim into a standalone generated
file: the runtime builder (`builder.py`, which walks the IR) and generated
builders drive the same `NetBuilder`, and so build identical networks.

Layouts (batch first): image (N, C, H, W), sequence (N, T, F), vector (N, F).
`same` padding follows TensorFlow Lite: the output has ceil(size / stride)
positions and the padding is split evenly, the extra pixel after.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

from torch import nn

from .fusion import fusion_groups
from .modules import (
    FloatIsland,
    Recurrent,
    SeqBatchNorm,
    SeqConv1d,
    SeqMean,
    SeqPool,
    Softmax,
    ToImage,
    ToSequence,
)
from .network import SparsemodNet


def same_padding(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """(before, after) padding of `same` mode: ceil(size / stride) outputs."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def window(size: int, kernel: int, stride: int, pad: Tuple[int, int], what: str) -> int:
    """Positions of a sliding window: floor((size + pads - kernel) / stride) + 1."""
    out = (size + pad[0] + pad[1] - kernel) // stride + 1
    if out < 1:
        raise ValueError(f"the input ({size}) is smaller than the {what} ({kernel})")
    return out


# --- building ----------------------------------------------------------------------------------------

#: The fusion kind (`fusion.fusion_groups`) of each module type torch can fuse.
_FUSION_KINDS = ((nn.Conv1d, "conv"), (nn.Conv2d, "conv"), (nn.Linear, "linear"),
                 (nn.BatchNorm1d, "bn1d"), (nn.BatchNorm2d, "bn2d"), (nn.ReLU, "relu"))


def _fusion_kind(module: nn.Module) -> str:
    """The fusion kind of a module, or "" when torch cannot fuse it."""
    return next((kind for cls, kind in _FUSION_KINDS if type(module) is cls), "")


def _fusion_groups(run: List[Tuple[str, nn.Module]]) -> List[List[str]]:
    """Split a run of consecutive conv/linear/bn/relu modules into groups torch can fuse."""
    kinds = [_fusion_kind(module) for _, module in run]
    return [[path for path, _ in run[start:start + size]]
            for start, size in fusion_groups(kinds)]


class NetBuilder:
    """Builds a `SparsemodNet` layer by layer, tracking the shape as it goes.

    Args:
        kind: `image` or `sequence`.
        shape: the input shape without the batch: (C, H, W) or (T, F).
        point: the parametrization, kept on the network for reference.
    """

    def __init__(self, kind: str, shape: Sequence[int], point: Dict[str, object]) -> None:
        self.kind = kind
        self.shape = tuple(int(d) for d in shape)
        self.point = point
        self.layers: "OrderedDict[str, nn.Module]" = OrderedDict()
        self.plan: List[Tuple[str, str]] = []
        self.adds: List[str] = []
        self.fusions: List[List[str]] = []
        self.run: List[Tuple[str, nn.Module]] = []
        self.stack: List[Tuple[str, Tuple[int, ...], str]] = []

    @property
    def channels(self) -> int:
        """Channels of an image, features of a sequence or vector."""
        return self.shape[0] if self.kind == "image" else self.shape[-1]

    def key(self, name: str) -> str:
        """A unique module key for a readable layer name (`a[1].b` -> `a__1__b`)."""
        base = name.replace("[", "__").replace("]", "").replace(".", "__")
        key, n = base, 1
        while key in self.layers or key in self.adds:
            n += 1
            key = f"{base}__{n}"
        return key

    def add(self, name: str, module: nn.Module, kind: str, shape: Tuple[int, ...],
            core: str = "") -> None:
        """Register a layer module; `core` is the path of its fusable conv/linear/bn."""
        key = self.key(name)
        self.layers[key] = module
        self.plan.append(("layer", key))
        inner = module.get_submodule(core) if core else module
        if _fusion_kind(inner):
            self.run.append((f"layers.{key}" + (f".{core}" if core else ""), inner))
        else:
            self._flush()
        self.kind, self.shape = kind, shape

    def _flush(self) -> None:
        self.fusions.extend(_fusion_groups(self.run))
        self.run = []

    def _barrier(self, step: str, key: str = "") -> None:
        self.plan.append((step, key))
        self._flush()

    # structure

    def residual_begin(self) -> None:
        """Start a residual body: its input is kept for the add."""
        self.stack.append(("residual", self.shape, self.kind))
        self._barrier("save")

    def residual_end(self) -> None:
        """End a residual body: add the kept input to the body's output."""
        _, shape, kind = self.stack.pop()
        if (kind, shape) != (self.kind, self.shape):
            raise ValueError(f"a residual body changes the shape {shape} into {self.shape}")
        key = self.key("residual")
        self.adds.append(key)
        self._barrier("add", key)

    def time_distributed_begin(self) -> None:
        """Start a body that runs on every step of a sequence."""
        if self.kind != "sequence":
            raise ValueError("time_distributed needs a sequence")
        self.stack.append(("steps", self.shape, self.kind))
        self._barrier("fold")
        self.kind, self.shape = "vector", (self.shape[1],)

    def time_distributed_end(self) -> None:
        """End a time-distributed body."""
        _, shape, _ = self.stack.pop()
        if self.kind != "vector":
            raise ValueError("the body of time_distributed must end in a vector")
        self._barrier("unfold")
        self.kind, self.shape = "sequence", (shape[0], self.shape[0])

    def finish(self) -> SparsemodNet:
        """The network; batch norms that no fusion absorbs run in float."""
        self._flush()
        fused = {path for group in self.fusions for path in group}
        for key, module in list(self.layers.items()):
            norm = module.bn if isinstance(module, SeqBatchNorm) else module
            path = f"layers.{key}" + (".bn" if isinstance(module, SeqBatchNorm) else "")
            if isinstance(norm, nn.BatchNorm1d) and path not in fused:
                self.layers[key] = FloatIsland(module)
        return SparsemodNet(self.layers, self.plan, self.adds, self.fusions, self.point)

    # layers

    def _pads(self, padding: object, kernel: int, stride: int, size: int) -> Tuple[int, int]:
        if padding == "same":
            return same_padding(size, kernel, stride)
        if padding == "valid":
            return (0, 0)
        return (int(padding), int(padding))  # type: ignore[call-overload]

    def _conv2d_window(self, kernel: int, stride: int, padding: object
                       ) -> Tuple[nn.ZeroPad2d, int, int]:
        _, h, w = self.shape
        top, bottom = self._pads(padding, kernel, stride, h)
        left, right = self._pads(padding, kernel, stride, w)
        return (nn.ZeroPad2d((left, right, top, bottom)),
                window(h, kernel, stride, (top, bottom), "kernel"),
                window(w, kernel, stride, (left, right), "kernel"))

    def conv2d(self, name: str, filters: int, kernel: int, stride: int = 1,
               padding: object = "same", groups: int = 1, bias: bool = True) -> None:
        """2-D convolution."""
        pad, h, w = self._conv2d_window(kernel, stride, padding)
        if self.channels % groups or filters % groups:
            raise ValueError(f"groups ({groups}) must divide {self.channels} and {filters}")
        conv = nn.Conv2d(self.channels, filters, kernel, stride, groups=groups, bias=bias)
        self.add(name, nn.Sequential(OrderedDict(pad=pad, conv=conv)), "image",
                 (filters, h, w), "conv")

    def sepconv2d(self, name: str, filters: int, kernel: int, stride: int = 1,
                  padding: object = "same", multiplier: int = 1) -> None:
        """Depthwise kxk convolution, then pointwise 1x1."""
        pad, h, w = self._conv2d_window(kernel, stride, padding)
        c = self.channels
        module = nn.Sequential(OrderedDict(
            pad=pad,
            depthwise=nn.Conv2d(c, c * multiplier, kernel, stride, groups=c),
            pointwise=nn.Conv2d(c * multiplier, filters, 1),
        ))
        self.add(name, module, "image", (filters, h, w), "pointwise")

    def dwconv2d(self, name: str, kernel: int, stride: int = 1, padding: object = "same",
                 multiplier: int = 1) -> None:
        """Depthwise convolution."""
        pad, h, w = self._conv2d_window(kernel, stride, padding)
        c = self.channels
        module = nn.Sequential(OrderedDict(
            pad=pad, depthwise=nn.Conv2d(c, c * multiplier, kernel, stride, groups=c)))
        self.add(name, module, "image", (c * multiplier, h, w), "depthwise")

    def downconv2d(self, name: str, filters: int, kernel: int, ratio: float = 0.5,
                   stride: int = 1, padding: object = "same") -> None:
        """1x1 bottleneck to max(1, round(ratio * channels)), then kxk convolution."""
        pad, h, w = self._conv2d_window(kernel, stride, padding)
        bottleneck = max(1, round(ratio * self.channels))
        module = nn.Sequential(OrderedDict(
            reduce=nn.Conv2d(self.channels, bottleneck, 1),
            pad=pad,
            conv=nn.Conv2d(bottleneck, filters, kernel, stride),
        ))
        self.add(name, module, "image", (filters, h, w), "conv")

    def conv1d(self, name: str, filters: int, kernel: int, stride: int = 1,
               padding: object = "same", groups: int = 1, bias: bool = True) -> None:
        """1-D convolution over the steps of a sequence."""
        steps, features = self.shape
        pad = self._pads(padding, kernel, stride, steps)
        out = window(steps, kernel, stride, pad, "kernel")
        if features % groups or filters % groups:
            raise ValueError(f"groups ({groups}) must divide {features} and {filters}")
        conv = nn.Conv1d(features, filters, kernel, stride, groups=groups, bias=bias)
        self.add(name, SeqConv1d(pad, conv), "sequence", (out, filters), "conv")

    def _pool(self, name: str, size: int, stride: int | None, maximum: bool) -> None:
        stride = size if stride is None else stride
        if self.kind == "image":
            c, h, w = self.shape
            pool = (nn.MaxPool2d if maximum else nn.AvgPool2d)(size, stride)
            shape: Tuple[int, ...] = (c, window(h, size, stride, (0, 0), "window"),
                                      window(w, size, stride, (0, 0), "window"))
            self.add(name, pool, "image", shape)
        else:
            steps, features = self.shape
            pool1 = (nn.MaxPool1d if maximum else nn.AvgPool1d)(size, stride)
            shape = (window(steps, size, stride, (0, 0), "window"), features)
            self.add(name, SeqPool(pool1), "sequence", shape)

    def maxpool(self, name: str, size: int = 2, stride: int | None = None) -> None:
        """Max pooling."""
        self._pool(name, size, stride, True)

    def avgpool(self, name: str, size: int = 2, stride: int | None = None) -> None:
        """Average pooling."""
        self._pool(name, size, stride, False)

    def global_avg_pool(self, name: str) -> None:
        """Average over all positions."""
        if self.kind == "image":
            module: nn.Module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        else:
            module = SeqMean()
        self.add(name, module, "vector", (self.channels,))

    def batchnorm(self, name: str) -> None:
        """Batch normalisation."""
        if self.kind == "image":
            self.add(name, nn.BatchNorm2d(self.channels), self.kind, self.shape)
        elif self.kind == "sequence":
            self.add(name, SeqBatchNorm(self.channels), self.kind, self.shape, "bn")
        else:
            self.add(name, nn.BatchNorm1d(self.channels), self.kind, self.shape)

    def relu(self, name: str) -> None:
        """ReLU."""
        self.add(name, nn.ReLU(), self.kind, self.shape)

    def relu6(self, name: str) -> None:
        """ReLU clipped at 6."""
        self.add(name, nn.ReLU6(), self.kind, self.shape)

    def softmax(self, name: str) -> None:
        """Softmax over the features (an image's channels); in float when quantised, until
        `quantize` gives it TFLite's fixed int8 output."""
        dim = 1 if self.kind == "image" else -1
        self.add(name, FloatIsland(Softmax(dim)), self.kind, self.shape)

    def dropout(self, name: str, p: float = 0.5) -> None:
        """Dropout."""
        self.add(name, nn.Dropout(p), self.kind, self.shape)

    def flatten(self, name: str) -> None:
        """Flatten to a vector."""
        size = 1
        for d in self.shape:
            size *= d
        self.add(name, nn.Flatten(), "vector", (size,))

    def linear(self, name: str, units: int, bias: bool = True) -> None:
        """Fully connected layer (on every step of a sequence)."""
        module = nn.Linear(self.channels, units, bias=bias)
        self.add(name, module, self.kind, (*self.shape[:-1], units))

    def _recurrent(self, name: str, cell: str, hidden: int, layers: int, dropout: float,
                   return_sequences: bool, bidirectional: bool) -> None:
        steps, features = self.shape
        module = Recurrent(cell, features, hidden, layers, dropout, return_sequences,
                           bidirectional)
        width = 2 * hidden if bidirectional else hidden
        if return_sequences:
            self.add(name, FloatIsland(module), "sequence", (steps, width))
        else:
            self.add(name, FloatIsland(module), "vector", (width,))

    def lstm(self, name: str, hidden: int, layers: int = 1, dropout: float = 0.0,
             return_sequences: bool = False, bidirectional: bool = False) -> None:
        """LSTM (bidirectional: 2 x hidden features)."""
        self._recurrent(name, "lstm", hidden, layers, dropout, return_sequences, bidirectional)

    def gru(self, name: str, hidden: int, layers: int = 1, dropout: float = 0.0,
            return_sequences: bool = False, bidirectional: bool = False) -> None:
        """GRU (bidirectional: 2 x hidden features)."""
        self._recurrent(name, "gru", hidden, layers, dropout, return_sequences, bidirectional)

    def to_sequence(self, name: str) -> None:
        """Image C x H x W -> sequence of H steps with C*W features."""
        c, h, w = self.shape
        self.add(name, ToSequence(), "sequence", (h, c * w))

    def to_image(self, name: str) -> None:
        """Sequence T x F -> image 1 x T x F."""
        steps, features = self.shape
        self.add(name, ToImage(), "image", (1, steps, features))
