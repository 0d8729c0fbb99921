"""torch's int8 model computing as TensorFlow Lite Micro's int8 kernels compute.

`quantize.static_int8` calibrates and converts with torch's eager quantisation, then
swaps these modules in, so that the int8 model whose accuracy the search measures is
the model the device runs, bit for bit:

- `Int8Conv`, `Int8Linear`: the int32 accumulator of (input - zero point) x int8
  weights + int32 bias (exact, computed in float64), requantised per channel with
  TFLite's fixed-point multiplier (torch's fbgemm requantises in float, which differs
  by one step now and then, and the differences grow through deep networks);
- `Int8Add`: ADD in 32-bit fixed point (inputs shifted left by 20, three multiplier
  roundings) where torch rounds the exact sum (two steps apart on up to 8% of the
  outputs of a MobileNet-style network with a few residual adds);
- `Int8AvgPool`: averages rounded half away from zero, where torch rounds half to even;
- `Int8BatchNorm`: a batch norm that folds into nothing, as the 1x1 depthwise
  convolution the deployed graph makes of it (torch computes it in float).

The arithmetic follows TFLite's `reference_integer_ops` (Add, AveragePool, Conv,
DepthwiseConv, FullyConnected) and gemmlowp's fixed-point helpers; the tests compare
every module with TFLite Micro, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import torch
from torch import nn

from .netlib import pair

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
#: TFLite's left shift of ADD's int8 inputs before rescaling.
ADD_LEFT_SHIFT = 20


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's `QuantizeMultiplier`: (q31 multiplier, shift) with real = m * 2^(shift-31)."""
    if real == 0:
        return 0, 0
    fraction, shift = math.frexp(real)
    fixed = int(math.floor(abs(fraction) * (1 << 31) + 0.5)) * (1 if fraction >= 0 else -1)
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


Multiplier = int | torch.Tensor


def _doubling_high_mul(a: torch.Tensor, b: Multiplier) -> torch.Tensor:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int64 tensors holding int32s.

    Saturation (both operands -2^31) cannot happen: TFLite's multipliers are positive.
    """
    product = a * b
    nudge = torch.where(product >= 0, 1 << 30, 1 - (1 << 30))
    return torch.div(product + nudge, 1 << 31, rounding_mode="trunc")  # C++ truncates


def _rounding_divide_by_pot(x: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """gemmlowp's RoundingDivideByPOT: x / 2^exponent, rounded half away from zero."""
    mask = (torch.ones_like(exponent) << exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


#: Whether FULLY_CONNECTED requantises as the LiteRT wheel's reference kernel does: with
#: per-channel weights it rounds once (x * m + 2^(30 - shift)) >> (31 - shift), where TFLM
#: (and LiteRT's other kernels) round twice, gemmlowp's way; they differ on rounding ties.
_LITERT_FULLY_CONNECTED: ContextVar[bool] = ContextVar("litert_fully_connected", default=False)


@contextmanager
def litert_rounding() -> Iterator[None]:
    """Within the block, int8 models compute as LiteRT's reference kernels, not TFLM's."""
    token = _LITERT_FULLY_CONNECTED.set(True)
    try:
        yield
    finally:
        _LITERT_FULLY_CONNECTED.reset(token)


def _multiply(x: torch.Tensor, multiplier: Multiplier, shift: Multiplier,
              once: bool = False) -> torch.Tensor:
    """TFLite's MultiplyByQuantizedMultiplier (shift > 0 shifts left first); `once`: its
    single-rounding form."""
    shift = torch.as_tensor(shift)
    if once:
        total = 31 - shift
        return (x * multiplier + (torch.ones_like(total) << (total - 1))) >> total
    left, right = shift.clamp(min=0), (-shift).clamp(min=0)
    return _rounding_divide_by_pot(_doubling_high_mul(x << left, multiplier), right)


def _int8(x: torch.Tensor) -> torch.Tensor:
    """The TFLite int8 values (-128..127) of a torch quint8 tensor, as int64."""
    return x.int_repr().long() - 128


def _quint8(values: torch.Tensor, scale: float, zero_point: int, low: int = -128) -> torch.Tensor:
    """TFLite int8 values (clamped to [low, 127]) as a torch quint8 tensor."""
    codes = (values.clamp(low, 127) + 128).to(torch.uint8)
    return torch._make_per_tensor_quantized_tensor(codes, scale, zero_point)


def f32(value: float) -> float:
    """A scale as the TFLite file stores it (float32), back in a Python float."""
    return float(np.float32(value))


def quantized_bias(bias: torch.Tensor | None, input_scale: float, weight_scales: np.ndarray,
                   channels: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's int32 bias and its scales (input scale x weight scale, float32)."""
    scales = (np.float32(input_scale) * weight_scales.astype(np.float32)).astype(np.float32)
    floats = np.zeros(channels) if bias is None else bias.detach().double().numpy()
    quantised = np.round(floats / scales.astype(np.float64))
    return np.clip(quantised, _INT32_MIN, _INT32_MAX).astype(np.int32), scales


def _requantize(acc: torch.Tensor, input_scale: float, weight_scales: np.ndarray,
                output_scale: float, zero_point: int, relu: bool, axis: int,
                once: bool = False) -> torch.Tensor:
    """Per-channel fixed-point requantisation of int32 accumulators to torch quint8."""
    pairs = [quantize_multiplier(f32(input_scale) * float(w) / f32(output_scale))
             for w in weight_scales.astype(np.float32)]
    view = [1] * acc.dim()
    view[axis] = len(pairs)
    multipliers = torch.tensor([m for m, _ in pairs]).view(view)
    shifts = torch.tensor([s for _, s in pairs]).view(view)
    out = _multiply(acc, multipliers, shifts, once) + (zero_point - 128)
    return _quint8(out, output_scale, zero_point, zero_point - 128 if relu else -128)


class _Int8Weighted(nn.Module):
    """Common part of `Int8Conv` and `Int8Linear`: wraps the converted torch module and
    offers its accessors (`weight()`, `bias()`, `scale`, `zero_point`)."""

    def __init__(self, converted: nn.Module, relu: bool) -> None:
        super().__init__()
        self.inner = converted
        self.relu = relu
        self.scale = float(converted.scale)  # type: ignore[arg-type]
        self.zero_point = int(converted.zero_point)  # type: ignore[arg-type]
        weight = converted.weight()  # type: ignore[operator]
        self.weight_scales = weight.q_per_channel_scales().numpy()
        self.int_weight = weight.int_repr().double()

    def weight(self) -> torch.Tensor:
        return self.inner.weight()  # type: ignore[operator,no-any-return]

    def bias(self) -> torch.Tensor | None:
        return self.inner.bias()  # type: ignore[operator,no-any-return]

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def rounds_once(self) -> bool:
        """Whether requantisation rounds once (see `litert_rounding`)."""
        return False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = self.int_weight.shape[0]
        bias, _ = quantized_bias(self.bias(), x.q_scale(), self.weight_scales, channels)
        values = x.int_repr().double() - x.q_zero_point()
        axis = 1 if self.int_weight.dim() > 2 else -1
        view = [1] * x.dim()
        view[axis] = channels
        # exact: float64 holds every int32 accumulator of int8 products
        acc = self.accumulate(values).long() + torch.from_numpy(bias).long().view(view)
        return _requantize(acc, x.q_scale(), self.weight_scales, self.scale, self.zero_point,
                           self.relu, axis, self.rounds_once())


class Int8Conv(_Int8Weighted):
    """A converted quantised Conv1d/Conv2d (ReLU fused or not), as TFLite computes it."""

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        conv = nn.functional.conv1d if self.int_weight.dim() == 3 else nn.functional.conv2d
        inner = self.inner
        return conv(x, self.int_weight, None, inner.stride, inner.padding,  # type: ignore[arg-type]
                    inner.dilation, inner.groups)  # type: ignore[arg-type]


class Int8Linear(_Int8Weighted):
    """A converted quantised Linear (ReLU fused or not), as TFLite's FULLY_CONNECTED."""

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.int_weight)

    def rounds_once(self) -> bool:
        return _LITERT_FULLY_CONNECTED.get()


class Int8Add(nn.Module):
    """A quantised residual add computed as TFLite's int8 ADD (`.add(a, b)`).

    Holds the output `scale` and `zero_point` (torch's quint8 convention) that torch's
    calibration chose, as the converted `QFunctional` it replaces did.
    """

    def __init__(self, scale: float, zero_point: int) -> None:
        super().__init__()
        self.scale = float(scale)
        self.zero_point = int(zero_point)

    def add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        scale_a, scale_b = f32(a.q_scale()), f32(b.q_scale())
        twice_max = 2 * max(scale_a, scale_b)
        m_a, s_a = quantize_multiplier(scale_a / twice_max)
        m_b, s_b = quantize_multiplier(scale_b / twice_max)
        m_out, s_out = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * f32(self.scale)))
        shifted_a = (a.int_repr().long() - a.q_zero_point()) << ADD_LEFT_SHIFT
        shifted_b = (b.int_repr().long() - b.q_zero_point()) << ADD_LEFT_SHIFT
        total = _multiply(shifted_a, m_a, s_a) + _multiply(shifted_b, m_b, s_b)
        out = _multiply(total, m_out, s_out) + (self.zero_point - 128)
        return _quint8(out, self.scale, self.zero_point)

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # a QFunctional is never called
        raise RuntimeError("use Int8Add.add(a, b)")


class Int8Softmax(nn.Module):
    """Softmax of a quantised tensor with the output TFLite requires of an int8 SOFTMAX:
    scale 1/256, zero point -128 (0 in torch's quint8), whatever calibration saw."""

    SCALE = 1 / 256

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = torch.softmax(x.dequantize(), dim=self.dim)
        return torch.quantize_per_tensor(probabilities, self.SCALE, 0, torch.quint8)


class Int8AvgPool(nn.Module):
    """Average pooling of a quantised tensor as TFLite's int8 AVERAGE_POOL_2D rounds it.

    `kernel` and `stride` are the window over the last one (1-D) or two (2-D) dims (2-D:
    a number, or (height, width)); `kernel=None` averages over all of them (global
    average pooling). The output keeps the input's scale and zero point.
    """

    def __init__(self, dims: int, kernel: int | tuple[int, int] | None = None,
                 stride: int | tuple[int, int] | None = None) -> None:
        super().__init__()
        self.dims = dims
        self.kernel = kernel
        self.stride = stride or kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = _int8(x).double()
        if self.dims == 1:
            size = self.kernel or x.shape[-1]
            sums = nn.functional.avg_pool1d(values, size, self.stride or size) * size
            count = size
        else:
            window = pair(self.kernel) if self.kernel else tuple(x.shape[-2:])
            stride = pair(self.stride) if self.kernel else window
            sums = nn.functional.avg_pool2d(values, window, stride, divisor_override=1)
            count = window[0] * window[1]
        sums = torch.round(sums).long()
        out = torch.sign(sums) * torch.div(sums.abs() + count // 2, count, rounding_mode="floor")
        return _quint8(out, x.q_scale(), x.q_zero_point())


class Int8BatchNorm(nn.Module):
    """A batch norm that folds into no convolution, as its 1x1 depthwise convolution in
    TFLite computes it: one int8 weight per channel (+-127, scale |gamma / sigma| / 127),
    an int32 bias for the shift, per-channel requantisation to the output's scale.

    Replaces torch's quantised batch norm (which computes in float) and the float
    island around a 1-D batch norm; `axis` is the channel dimension (1 for images,
    -1 for sequences and vectors).
    """

    def __init__(self, norm: nn.Module, scale: float, zero_point: int, axis: int,
                 relu: bool = False) -> None:
        super().__init__()
        mean = norm.running_mean.detach().double()  # type: ignore[union-attr]
        var = norm.running_var.detach().double()  # type: ignore[union-attr]
        factor = norm.weight.detach().double() / torch.sqrt(var + norm.eps)  # type: ignore[union-attr,operator]
        self.shift = (norm.bias.detach().double() - mean * factor).numpy()  # type: ignore[union-attr]
        factors = factor.numpy()
        self.weight_scales = np.where(factors == 0, 1.0, np.abs(factors) / 127).astype(np.float32)
        self.int_weights = np.round(factors / self.weight_scales).astype(np.int8)
        self.scale, self.zero_point = float(scale), int(zero_point)
        self.axis, self.relu = axis, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = len(self.int_weights)
        bias, _ = quantized_bias(torch.from_numpy(self.shift), x.q_scale(), self.weight_scales,
                                 channels)
        view = [1] * x.dim()
        view[self.axis] = channels
        weights = torch.from_numpy(self.int_weights.astype(np.int64)).view(view)
        acc = (x.int_repr().long() - x.q_zero_point()) * weights + torch.from_numpy(
            bias.astype(np.int64)).view(view)
        return _requantize(acc, x.q_scale(), self.weight_scales, self.scale, self.zero_point,
                           self.relu, self.axis % x.dim())
