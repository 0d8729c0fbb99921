"""The layer catalogue: every layer the language knows, its arguments and shape rule.

Each `LayerSpec` says which arguments a layer takes (with types, defaults and
legal ranges) and how it maps an input `Shape` to an output `Shape`. Shape
rules work on intervals, so the checker can run them over a whole space and
validation over one point. Builders and cost models (later backends) key on
the same layer names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Union

from .shapes import Interval, Kind, Shape

ArgType = Literal["int", "float", "bool", "padding"]
#: The named padding modes; a number pads that many pixels per side. `causal` (conv1d
#: only) pads dilation * (kernel - 1) steps in front, so no output sees a later step.
PADDING_MODES = ("same", "valid", "causal")
#: What an argument can be during shape inference: numbers as intervals,
#: flags and padding modes as the set of values they can take, a pair
#: `(height, width)` as two intervals.
ArgValue = Union[Interval, frozenset, tuple[Interval, Interval]]


class LayerError(Exception):
    """A layer cannot be built for the given input and arguments.

    `arg` names the argument at fault, when there is one, so that callers can
    point at the readable parameter behind it.
    """

    def __init__(self, message: str, arg: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.arg = arg


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One argument of a layer: type, default (None: required) and legal range."""

    name: str
    type: ArgType
    default: int | float | bool | str | None = None
    required: bool = False
    lo: float | None = None
    hi: float | None = None
    hi_open: bool = False
    doc: str = ""
    #: Whether it also takes a pair `(height, width)` (2-D kernels, strides, dilations).
    pair: bool = False

    def legal(self) -> str:
        """The legal range in words, for messages."""
        if self.type == "padding":
            return '"same", "valid", "causal" (conv1d) or a number of at least 0'
        if self.lo is not None and self.hi is not None:
            closing = ")" if self.hi_open else "]"
            return f"in [{self.lo:g}, {self.hi:g}{closing}"
        if self.lo is not None:
            return f"at least {self.lo:g}"
        return ""


@dataclass(frozen=True, slots=True)
class LayerSpec:
    """A layer of the language."""

    name: str
    args: tuple[ArgSpec, ...]
    inputs: frozenset[str]
    rule: Callable[[Shape, "Args"], Shape]
    doc: str

    def arg(self, name: str) -> ArgSpec | None:
        """The argument called `name`, if the layer has one."""
        return next((a for a in self.args if a.name == name), None)


class Args:
    """The arguments of one layer during shape inference."""

    def __init__(self, values: Mapping[str, ArgValue]) -> None:
        self.values = values

    def num(self, name: str) -> Interval:
        """A numeric argument as an interval."""
        value = self.values[name]
        assert isinstance(value, Interval), name
        return value

    def pair(self, name: str, default: int = 1) -> tuple[Interval, Interval]:
        """A 2-D argument as (height, width); one number is both sides, absent is `default`."""
        value = self.values.get(name, Interval.of(default))
        if isinstance(value, tuple):
            return value
        assert isinstance(value, Interval), name
        return value, value

    def options(self, name: str) -> frozenset:
        """A flag or mode argument as the set of values it can take."""
        value = self.values[name]
        return value if isinstance(value, frozenset) else frozenset({value})

    def flag(self, name: str) -> bool:
        """A flag that must have one value at this point."""
        options = self.options(name)
        if len(options) != 1:
            raise LayerError(
                f"'{name}' cannot be searched: the layers after it need one kind of input; "
                "give it a fixed value",
                name,
            )
        return bool(next(iter(options)))


def _window(
    size: Interval, kernel: Interval, stride: Interval, pad: Interval, dim: str, what: str
) -> Interval:
    """Output size of a sliding window: floor((n + 2p - k) / s) + 1."""
    hi = math.floor((size.hi + 2 * pad.hi - kernel.lo) / stride.lo) + 1
    if hi < 1:
        padding = f" with padding {pad.hi:g}" if pad.hi else ""
        if size.exact and kernel.exact:  # one point: plain numbers
            message = f"the input {dim} {size.hi:g} is smaller than the {what} {kernel.lo:g}"
        else:
            message = (f"the input {dim} is at most {size.hi:g}, smaller than the {what} "
                       f"({kernel.lo:g} at the least)")
        raise LayerError(message + padding, "kernel" if what.endswith("kernel") else "size")
    lo = math.floor((size.lo + 2 * pad.lo - kernel.hi) / stride.hi) + 1
    return Interval(max(lo, 1), hi)


def _spatial(x: Shape, a: Args, kernel: str, what: str = "kernel") -> tuple[Interval, ...]:
    """Window the spatial dims of an image (H, W) or the steps of a sequence.

    A dilated kernel spans dilation * (kernel - 1) + 1 positions.
    """
    kernels = a.pair(kernel)
    strides = a.pair("stride") if "stride" in a.values else kernels
    dilations = a.pair("dilation")
    spans = tuple(d * (k - Interval.of(1)) + Interval.of(1) if d != Interval.of(1) else k
                  for k, d in zip(kernels, dilations))
    if any(d != Interval.of(1) for d in dilations):
        what = f"dilated {what}"
    modes = a.options("padding") if "padding" in a.values else frozenset({Interval.of(0)})
    if x.kind == "image":
        if "causal" in modes:
            raise LayerError('"causal" padding is for conv1d over a sequence; '
                             'use "same" or "valid"', "padding")
        return (
            _positions(x.dims[1], spans[0], strides[0], modes, "height", what),
            _positions(x.dims[2], spans[1], strides[1], modes, "width", what),
        )
    paired = next((name for name in (kernel, "stride") if isinstance(a.values.get(name), tuple)),
                  None)
    if paired is not None:
        raise LayerError(f"'{paired}' is a pair (height, width), but a sequence has one "
                         "dimension to slide over: give one number", paired)
    return (_positions(x.dims[0], spans[0], strides[0], modes, "length", what),)


def _positions(
    size: Interval, kernel: Interval, stride: Interval, modes: frozenset, dim: str, what: str
) -> Interval:
    """Output positions over every padding mode the argument can take.

    `same` (TensorFlow Lite) gives ceil(size / stride) positions whatever the
    kernel, and so does `causal` (it pads the kernel's span less one in front);
    `valid` pads nothing; a number pads that much on each side.
    """
    result: Interval | None = None
    failure: LayerError | None = None
    for mode in modes:
        if mode in ("same", "causal"):
            out = Interval(math.ceil(size.lo / stride.hi), math.ceil(size.hi / stride.lo))
        else:
            try:
                out = _window(size, kernel, stride, Interval.of(0) if mode == "valid" else mode,
                              dim, what)
            except LayerError as error:
                failure = failure or error
                continue
        result = out if result is None else result.hull(out)
    if result is None:
        assert failure is not None
        raise failure
    return result


def _check_groups(channels: Interval, filters: Interval, groups: Interval) -> None:
    if channels.exact and filters.exact and groups.exact and math.isfinite(channels.lo):
        c, f, g = int(channels.lo), int(filters.lo), int(groups.lo)
        if c % g or f % g:
            raise LayerError(
                f"groups ({g}) must divide the input channels ({c}) and the filters ({f})",
                "groups",
            )


def _conv2d(x: Shape, a: Args) -> Shape:
    _check_groups(x.channels, a.num("filters"), a.num("groups"))
    return Shape("image", (a.num("filters"), *_spatial(x, a, "kernel")))


def _conv1d(x: Shape, a: Args) -> Shape:
    _check_groups(x.channels, a.num("filters"), a.num("groups"))
    (steps,) = _spatial(x, a, "kernel")
    return Shape("sequence", (steps, a.num("filters")))


def _filters_conv(x: Shape, a: Args) -> Shape:
    return Shape("image", (a.num("filters"), *_spatial(x, a, "kernel")))


def _dwconv2d(x: Shape, a: Args) -> Shape:
    return Shape("image", (x.channels * a.num("multiplier"), *_spatial(x, a, "kernel")))


def _pool(x: Shape, a: Args) -> Shape:
    windowed = _spatial(x, a, "size", "window")
    if x.kind == "image":
        return Shape("image", (x.channels, *windowed))
    return Shape("sequence", (windowed[0], x.channels))


def _global_avg_pool(x: Shape, a: Args) -> Shape:
    return Shape("vector", (x.channels,))


def _same(x: Shape, a: Args) -> Shape:
    return x


def _flatten(x: Shape, a: Args) -> Shape:
    total = Interval.of(1)
    for d in x.dims:
        total = total * d
    return Shape("vector", (total,))


def _linear(x: Shape, a: Args) -> Shape:
    return Shape(x.kind, (*x.dims[:-1], a.num("units")))


def _recurrent(x: Shape, a: Args) -> Shape:
    # bidirectional: both directions' hidden states side by side (2 x hidden features)
    units, both = a.num("hidden"), a.options("bidirectional")
    hidden = Interval(units.lo * (2 if all(both) else 1), units.hi * (2 if any(both) else 1))
    if a.flag("return_sequences"):
        return Shape("sequence", (x.dims[0], hidden))
    return Shape("vector", (hidden,))


def _to_sequence(x: Shape, a: Args) -> Shape:
    channels, height, width = x.dims
    return Shape("sequence", (height, channels * width))


def _to_image(x: Shape, a: Args) -> Shape:
    steps, features = x.dims
    return Shape("image", (Interval.of(1), steps, features))


def _arg(name: str, type: ArgType, default: object = None, **kw: object) -> ArgSpec:
    return ArgSpec(name, type, default, required=default is None, **kw)  # type: ignore[arg-type]


def _opt(name: str, type: ArgType, default: object, **kw: object) -> ArgSpec:
    return ArgSpec(name, type, default, required=False, **kw)  # type: ignore[arg-type]


_FILTERS = _arg("filters", "int", lo=1, doc="output channels")
_KERNEL = _arg("kernel", "int", lo=1, doc="kernel size")
_STRIDE = _opt("stride", "int", 1, lo=1, doc="step of the kernel")
_PADDING = _opt("padding", "padding", "same",
                doc="`same` (ceil(size / stride) outputs), `valid` (none) or pixels per side")
_DILATION = _opt("dilation", "int", 1, lo=1, doc="spacing of the kernel's taps")
#: 2-D kernels, strides and dilations: one number (square) or `(height, width)`.
_KERNEL2 = _arg("kernel", "int", lo=1, pair=True, doc="kernel size: k or (height, width)")
_STRIDE2 = _opt("stride", "int", 1, lo=1, pair=True,
                doc="step of the kernel: s or (height, width)")
_DILATION2 = _opt("dilation", "int", 1, lo=1, pair=True,
                  doc="spacing of the kernel's taps: d or (height, width)")
_CAUSAL = _opt("padding", "padding", "same",
               doc="`same`, `valid`, pixels per side, or `causal` (dilation * (kernel - 1) "
                   "steps in front: no output sees a later step)")
_GROUPS = _opt("groups", "int", 1, lo=1, doc="grouped convolution")
_BIAS = _opt("bias", "bool", True, doc="add a bias")
_MULTIPLIER = _opt("multiplier", "int", 1, lo=1, doc="depthwise channel multiplier")
_P = _opt("p", "float", 0.5, lo=0.0, hi=1.0, hi_open=True, doc="drop probability")
_RECURRENT = (
    _arg("hidden", "int", lo=1, doc="hidden units"),
    _opt("layers", "int", 1, lo=1, doc="stacked recurrent layers"),
    _opt("dropout", "float", 0.0, lo=0.0, hi=1.0, hi_open=True, doc="dropout between layers"),
    _opt("return_sequences", "bool", False, doc="output every step, not only the last"),
    _opt("bidirectional", "bool", False,
         doc="also run backwards over the steps; outputs 2 x hidden features"),
)
_POOL = (
    _opt("size", "int", 2, lo=1, pair=True, doc="window size: n, or (height, width) on images"),
    ArgSpec("stride", "int", None, required=False, lo=1, pair=True,
            doc="step (default: size): s, or (height, width) on images"),
)

_ALL: frozenset[str] = frozenset({"image", "sequence", "vector"})
_IMAGE = frozenset({"image"})
_SEQUENCE = frozenset({"sequence"})

LAYERS: dict[str, LayerSpec] = {
    spec.name: spec
    for spec in (
        LayerSpec("conv2d",
                  (_FILTERS, _KERNEL2, _STRIDE2, _PADDING, _GROUPS, _BIAS, _DILATION2), _IMAGE,
                  _conv2d, "2-D convolution"),
        LayerSpec("conv1d",
                  (_FILTERS, _KERNEL, _STRIDE, _CAUSAL, _GROUPS, _BIAS, _DILATION), _SEQUENCE,
                  _conv1d, "1-D convolution over the steps of a sequence"),
        LayerSpec("sepconv2d", (_FILTERS, _KERNEL2, _STRIDE2, _PADDING, _MULTIPLIER), _IMAGE,
                  _filters_conv, "depthwise-separable convolution: depthwise kxk, then 1x1"),
        LayerSpec("dwconv2d", (_KERNEL2, _STRIDE2, _PADDING, _MULTIPLIER, _DILATION2), _IMAGE,
                  _dwconv2d, "depthwise convolution"),
        LayerSpec("downconv2d",
                  (_FILTERS, _KERNEL2,
                   _opt("ratio", "float", 0.5, lo=0.0, hi=1.0,
                        doc="bottleneck channels = max(1, round(ratio * input channels))"),
                   _STRIDE2, _PADDING), _IMAGE,
                  _filters_conv, "downsampled convolution: 1x1 bottleneck, then kxk"),
        LayerSpec("maxpool", _POOL, _IMAGE | _SEQUENCE, _pool, "max pooling"),
        LayerSpec("avgpool", _POOL, _IMAGE | _SEQUENCE, _pool, "average pooling"),
        LayerSpec("global_avg_pool", (), _IMAGE | _SEQUENCE, _global_avg_pool,
                  "average over all positions: image or sequence -> vector"),
        LayerSpec("batchnorm", (), _ALL, _same, "batch normalisation"),
        LayerSpec("relu", (), _ALL, _same, "ReLU"),
        LayerSpec("relu6", (), _ALL, _same, "ReLU clipped at 6"),
        LayerSpec("softmax", (), _ALL, _same,
                  "softmax over the features (an image's channels): they sum to 1"),
        LayerSpec("dropout", (_P,), _ALL, _same, "dropout (training only)"),
        LayerSpec("flatten", (), _ALL, _flatten, "flatten to a vector"),
        LayerSpec("linear", (_arg("units", "int", lo=1, doc="output features"), _BIAS), _ALL
                  - _IMAGE, _linear, "fully connected; on a sequence, applied to every step"),
        LayerSpec("lstm", _RECURRENT, _SEQUENCE, _recurrent, "LSTM"),
        LayerSpec("gru", _RECURRENT, _SEQUENCE, _recurrent, "GRU"),
        LayerSpec("to_sequence", (), _IMAGE, _to_sequence,
                  "image C x H x W -> sequence of H steps with C*W features"),
        LayerSpec("to_image", (), _SEQUENCE, _to_image,
                  "sequence T x F -> image 1 x T x F"),
    )
}

KIND_WORDS: dict[Kind, str] = {"image": "an image", "sequence": "a sequence", "vector": "a vector"}

