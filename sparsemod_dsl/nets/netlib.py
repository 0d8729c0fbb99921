"""`NetBuilder`: builds a `SparsemodNet` layer by layer, tracking the shape as it goes.

Also owns the shape arithmetic of windows and padding, and the grouping of
conv/linear/bn/relu runs into torch fusions. This module imports only torch
(and its sibling torch-only `modules` and `network`), so that `sparsemodc
compile --emit builder` can copy all three verbatim into a standalone generated
file: the runtime builder (`builder.py`, which walks the IR) and generated
builders drive the same `NetBuilder`, and so build identical networks.

Layouts (batch first): image (N, C, H, W), sequence (N, T, F), vector (N, F).
`same` padding follows TensorFlow Lite: the output has ceil(size / stride)
positions and the padding is split evenly, the extra pixel after. `causal`
padding (conv1d) puts the kernel's whole span less one in front. 2-D kernels,
strides and dilations are a number (square) or a (height, width) pair.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple, Union

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

#: A 2-D kernel, stride or dilation: one number for both sides, or (height, width).
Size2 = Union[int, Tuple[int, int]]


def pair(value: Size2) -> Tuple[int, int]:
    """(height, width) of a 2-D size."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def span(kernel: int, dilation: int) -> int:
    """Positions a dilated kernel covers: dilation * (kernel - 1) + 1."""
    return dilation * (kernel - 1) + 1


def same_padding(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """(before, after) padding of `same` mode: ceil(size / stride) outputs."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def stride_between(size: int, out: int) -> int | None:
    """The stride s with ceil(size / s) == out, if one exists (a 1x1 window's stride)."""
    if out < 1 or out > size:
        return None
    stride = -(-size // out)
    return stride if -(-size // stride) == out else None


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

    def residual_end(self, name: str = "residual", shortcut: str = "identity") -> None:
        """End a residual body: add its kept input, through the shortcut, to its output."""
        _, shape, kind = self.stack.pop()
        same = (kind, shape) == (self.kind, self.shape)
        if shortcut == "identity" or (shortcut == "auto" and same):
            if not same:
                raise ValueError(f"a residual body changes the shape {shape} into {self.shape}")
        else:
            self._shortcut(name, "projection" if shortcut == "auto" else shortcut, kind, shape)
        key = self.key("residual")
        self.adds.append(key)
        self._barrier("add", key)

    def _shortcut(self, name: str, shortcut: str, kind: str, shape: Tuple[int, ...]) -> None:
        """The skip path's module (lang/shortcuts.py): a 1x1 projection conv + batch norm,
        or average pooling, with the stride that meets the body's output."""
        if kind != self.kind or kind == "vector":
            raise ValueError(f"a {shortcut} shortcut cannot turn {shape} into {self.shape}")
        image = kind == "image"
        pairs = list(zip(shape[1:], self.shape[1:]) if image else [(shape[0], self.shape[0])])
        strides = {stride_between(a, b) for a, b in pairs}
        if None in strides or len(strides) > 1:
            raise ValueError(f"no one stride turns {shape} into {self.shape}")
        stride = int(strides.pop())  # type: ignore[arg-type]
        channels, out = (shape[0], self.shape[0]) if image else (shape[-1], self.shape[-1])
        key = self.key(f"{name}.shortcut")
        if shortcut == "avgpool":
            if channels != out or any(a != b * stride for a, b in pairs):
                raise ValueError(f"an avgpool shortcut cannot turn {shape} into {self.shape}")
            module: nn.Module = (nn.AvgPool2d(stride, stride) if image
                                 else SeqPool(nn.AvgPool1d(stride, stride)))
        elif image:
            module = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(channels, out, 1, stride, bias=False), bn=nn.BatchNorm2d(out)))
            self.fusions.append([f"layers.{key}.conv", f"layers.{key}.bn"])
        else:
            module = nn.Sequential(OrderedDict(
                conv=SeqConv1d((0, 0), nn.Conv1d(channels, out, 1, stride, bias=False)),
                bn=SeqBatchNorm(out)))
            self.fusions.append([f"layers.{key}.conv.conv", f"layers.{key}.bn.bn"])
        self.layers[key] = module
        self._barrier("shortcut", key)

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
        """(before, after) padding; `kernel` is the span a dilated kernel covers."""
        if padding == "same":
            return same_padding(size, kernel, stride)
        if padding == "valid":
            return (0, 0)
        if padding == "causal":
            return (kernel - 1, 0)
        return (int(padding), int(padding))  # type: ignore[call-overload]

    def _conv2d_window(self, kernel: Size2, stride: Size2, padding: object,
                       dilation: Size2 = 1) -> Tuple[nn.ZeroPad2d, int, int]:
        _, h, w = self.shape
        (kh, kw), (sh, sw), (dh, dw) = pair(kernel), pair(stride), pair(dilation)
        kh, kw = span(kh, dh), span(kw, dw)
        top, bottom = self._pads(padding, kh, sh, h)
        left, right = self._pads(padding, kw, sw, w)
        return (nn.ZeroPad2d((left, right, top, bottom)),
                window(h, kh, sh, (top, bottom), "kernel"),
                window(w, kw, sw, (left, right), "kernel"))

    def conv2d(self, name: str, filters: int, kernel: Size2, stride: Size2 = 1,
               padding: object = "same", groups: int = 1, bias: bool = True,
               dilation: Size2 = 1) -> None:
        """2-D convolution."""
        pad, h, w = self._conv2d_window(kernel, stride, padding, dilation)
        if self.channels % groups or filters % groups:
            raise ValueError(f"groups ({groups}) must divide {self.channels} and {filters}")
        conv = nn.Conv2d(self.channels, filters, pair(kernel), pair(stride),
                         dilation=pair(dilation), groups=groups, bias=bias)
        self.add(name, nn.Sequential(OrderedDict(pad=pad, conv=conv)), "image",
                 (filters, h, w), "conv")

    def sepconv2d(self, name: str, filters: int, kernel: Size2, stride: Size2 = 1,
                  padding: object = "same", multiplier: int = 1) -> None:
        """Depthwise kxk convolution, then pointwise 1x1."""
        pad, h, w = self._conv2d_window(kernel, stride, padding)
        c = self.channels
        module = nn.Sequential(OrderedDict(
            pad=pad,
            depthwise=nn.Conv2d(c, c * multiplier, pair(kernel), pair(stride), groups=c),
            pointwise=nn.Conv2d(c * multiplier, filters, 1),
        ))
        self.add(name, module, "image", (filters, h, w), "pointwise")

    def dwconv2d(self, name: str, kernel: Size2, stride: Size2 = 1, padding: object = "same",
                 multiplier: int = 1, dilation: Size2 = 1) -> None:
        """Depthwise convolution."""
        pad, h, w = self._conv2d_window(kernel, stride, padding, dilation)
        c = self.channels
        module = nn.Sequential(OrderedDict(
            pad=pad, depthwise=nn.Conv2d(c, c * multiplier, pair(kernel), pair(stride),
                                         dilation=pair(dilation), groups=c)))
        self.add(name, module, "image", (c * multiplier, h, w), "depthwise")

    def downconv2d(self, name: str, filters: int, kernel: Size2, ratio: float = 0.5,
                   stride: Size2 = 1, padding: object = "same") -> None:
        """1x1 bottleneck to max(1, round(ratio * channels)), then kxk convolution."""
        pad, h, w = self._conv2d_window(kernel, stride, padding)
        bottleneck = max(1, round(ratio * self.channels))
        module = nn.Sequential(OrderedDict(
            reduce=nn.Conv2d(self.channels, bottleneck, 1),
            pad=pad,
            conv=nn.Conv2d(bottleneck, filters, pair(kernel), pair(stride)),
        ))
        self.add(name, module, "image", (filters, h, w), "conv")

    def conv1d(self, name: str, filters: int, kernel: int, stride: int = 1,
               padding: object = "same", groups: int = 1, bias: bool = True,
               dilation: int = 1) -> None:
        """1-D convolution over the steps of a sequence."""
        steps, features = self.shape
        pad = self._pads(padding, span(kernel, dilation), stride, steps)
        out = window(steps, span(kernel, dilation), stride, pad, "kernel")
        if features % groups or filters % groups:
            raise ValueError(f"groups ({groups}) must divide {features} and {filters}")
        conv = nn.Conv1d(features, filters, kernel, stride, dilation=dilation, groups=groups,
                         bias=bias)
        self.add(name, SeqConv1d(pad, conv), "sequence", (out, filters), "conv")

    def _pool(self, name: str, size: Size2, stride: Size2 | None, maximum: bool) -> None:
        stride = size if stride is None else stride
        if self.kind == "image":
            c, h, w = self.shape
            (kh, kw), (sh, sw) = pair(size), pair(stride)
            pool = (nn.MaxPool2d if maximum else nn.AvgPool2d)((kh, kw), (sh, sw))
            shape: Tuple[int, ...] = (c, window(h, kh, sh, (0, 0), "window"),
                                      window(w, kw, sw, (0, 0), "window"))
            self.add(name, pool, "image", shape)
        else:
            steps, features = self.shape
            pool1 = (nn.MaxPool1d if maximum else nn.AvgPool1d)(size, stride)
            shape = (window(steps, size, stride, (0, 0), "window"), features)
            self.add(name, SeqPool(pool1), "sequence", shape)

    def maxpool(self, name: str, size: Size2 = 2, stride: Size2 | None = None) -> None:
        """Max pooling."""
        self._pool(name, size, stride, True)

    def avgpool(self, name: str, size: Size2 = 2, stride: Size2 | None = None) -> None:
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
