"""Post-training int8 quantisation of built networks (`quantize`).

How closeness to float is judged: a freshly built network is a poor witness. With
PyTorch's default initialisation and batch norms at their initial statistics, the
biases dominate every layer, so the logits barely depend on the input (the
input-dependent part is often below one int8 step): raw correlations of logits are
then ~1 and argmax agreement is 100% whatever the quantiser does. So each network
is first made input-sensitive as training would make it: He-normal weights, zero
biases, and batch-norm statistics measured on the calibration data; and the
samples of a batch differ in overall scale (`varied`). The check is
then on the input-dependent part of the logits (each class's logit minus its batch
mean): its correlation between float and int8 must be above 0.8 for every point
and above 0.9 for the median of each program's points (measured: 0.83..1.0 for
static int8 over ~100 sampled points, medians 0.92..0.99, the deep MBConv nets
lowest; a broken scale, observer or float island gives ~0). Argmax agreement is
not used: near-tied logits of untrained nets flip under any noise.
"""

from __future__ import annotations

import statistics
from typing import Iterator

import numpy as np
import pytest
import torch
from helpers import (
    PROGRAM_NAMES,
    batch,
    cheap_points,
    is_cnn,
    is_rnn,
    program,
    sensitive,
    zoo,
)
from torch import nn
from torch.ao.nn import quantized as nnq
from torch.ao.nn.quantized import dynamic as nnqd

from sparsemod_dsl.lang import ir
from sparsemod_dsl.nets import point
from sparsemod_dsl.nets.builder import build
from sparsemod_dsl.nets.int8_kernels import Int8Add, Int8BatchNorm, Int8Linear
from sparsemod_dsl.nets.modules import FloatIsland, Recurrent
from sparsemod_dsl.nets.quantize import dynamic_int8, static_int8

CNN = [name for name in PROGRAM_NAMES if is_cnn(program(name))]
RNN = [name for name in PROGRAM_NAMES if is_rnn(program(name))]
SPACES = {name: program(name) for name in PROGRAM_NAMES} | {"zoo": zoo()}
POINTS_PER_SPACE = 3
MAX_STEPS = 200


def test_the_programs_are_classified() -> None:
    assert set(CNN) == {"ds_cnn", "mbconv", "sparse_cnn", "sparse_cnn_seq", "sparse_cnn_rnn",
                        "quickstart", "resnet8", "mcunet"}
    assert set(RNN) == {"sparse_rnn", "sparse_cnn_rnn"}


def points(prog: ir.Program, n: int = POINTS_PER_SPACE) -> Iterator[dict[str, object]]:
    """The first `n` valid points of `prog` that are cheap to quantise and run."""
    return cheap_points(prog, n, MAX_STEPS)




def varied(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Inputs whose samples differ in overall scale (from 0.5x to 2x).

    Independent noise averaged over a large feature map (global pooling over hundreds
    of steps) leaves the outputs of different samples almost equal, so quantisation
    noise would swamp the little input-dependent signal left; real inputs differ.
    """
    g = torch.Generator().manual_seed(seed)
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    return x * torch.empty(shape).uniform_(0.5, 2.0, generator=g)


def centered_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Correlation of the input-dependent parts: each column minus its batch mean."""
    a, b = a - a.mean(0), b - b.mean(0)
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-30))


# --- static int8 --------------------------------------------------------------------------


#: mcunet's random points stack up to 26 untrained inverted residuals, through which
#: random weights drift int8 from float further than trained ones do; mbconv has its
#: operators in shallower stacks.
@pytest.mark.parametrize("name", [*(n for n in CNN if n != "mcunet"), "zoo"])
def test_static_int8_converts_and_stays_close(name: str) -> None:
    prog = SPACES[name]
    correlations = []
    for k, pt in enumerate(points(prog)):
        calibration = [varied(batch(prog, pt, n=16, seed=k * 10 + s), s) for s in range(2)]
        net = sensitive(prog, pt, calibration)
        before = {key: value.clone() for key, value in net.state_dict().items()}
        q = static_int8(net, calibration)
        x = varied(batch(prog, pt, n=24, seed=99), 99)
        with torch.no_grad():
            expected, got = net(x), q(x)
        assert prog.classes is not None
        assert got.shape == expected.shape == (24, prog.classes)
        assert got.dtype == torch.float32 and torch.isfinite(got).all()
        # the float model is left as it was
        assert all(torch.equal(before[key], value) for key, value in net.state_dict().items())
        assert not any(isinstance(m, nnq.Conv2d) for m in net.modules())
        # every convolution and linear layer outside a float island runs in int8
        islands = [m for m in q.modules() if isinstance(m, FloatIsland)]
        in_islands = {id(m) for island in islands for m in island.inner.modules()}
        assert any(isinstance(m, (nnq.Conv1d, nnq.Conv2d)) for m in q.modules())
        floats = [m for m in q.modules() if type(m) in (nn.Conv1d, nn.Conv2d, nn.Linear)
                  and id(m) not in in_islands]
        assert not floats, floats
        # recurrent layers stay float, inside their island
        for module in q.modules():
            if isinstance(module, Recurrent):
                assert id(module) in in_islands
                assert type(module.rnn) in (nn.LSTM, nn.GRU)
                assert all(p.dtype == torch.float32 for p in module.parameters())
        correlations.append(centered_correlation(expected, got))
    assert len(correlations) == POINTS_PER_SPACE
    assert min(correlations) > 0.8 and statistics.median(correlations) > 0.9, correlations


def test_static_int8_of_a_residual_network_uses_quantized_adds() -> None:
    prog = program("mbconv")
    pt = {"stage": 2, "stage[1].extra": 2, "stage[2].extra": 1}
    calibration = [batch(prog, pt, n=8, seed=s) for s in range(2)]
    net = sensitive(prog, pt, calibration)
    assert len(net.adds) == 3
    q = static_int8(net, calibration)
    assert all(isinstance(add, Int8Add) for add in q.adds.values())
    x = batch(prog, pt, n=16, seed=5)
    with torch.no_grad():
        assert centered_correlation(net(x), q(x)) > 0.8


def test_unfused_batch_norms_compute_as_a_1x1_depthwise_convolution() -> None:
    prog = zoo()
    pt = next(points(prog, 1))
    net = build(prog, pt)
    # the batch norm after the time-distributed linear layer fuses with it; the one
    # after the sequence max-pool has nothing to fuse with: a float island in torch
    assert type(net.layers["batchnorm__3"]) is nn.BatchNorm1d
    assert ["layers.linear", "layers.batchnorm__3", "layers.relu__3"] not in net.fusions
    assert ["layers.linear", "layers.batchnorm__3"] in net.fusions
    island = net.layers["batchnorm__4"]
    assert isinstance(island, FloatIsland)
    with torch.no_grad():
        island.inner.bn.running_var.uniform_(0.5, 2.0)
        island.inner.bn.weight.uniform_(-1.5, 1.5)
    q = static_int8(net.eval(), [batch(prog, pt, n=4)])
    norm = q.layers["batchnorm__4"]
    # in int8, as the deployed graph's 1x1 depthwise convolution computes it
    assert isinstance(norm, Int8BatchNorm) and norm.axis == -1
    assert np.abs(norm.int_weights).max() == 127
    x = torch.quantize_per_tensor(torch.randn(3, 7, island.inner.bn.num_features), 0.05, 128,
                                  torch.quint8)
    with torch.no_grad():
        expected = island.inner(x.dequantize())
    got = norm(x).dequantize()
    low = (0 - norm.zero_point) * norm.scale  # the int8 range, in real values
    high = (255 - norm.zero_point) * norm.scale
    inside = (expected > low) & (expected < high)
    assert inside.float().mean() > 0.25
    assert (got - expected)[inside].abs().max() <= 2 * norm.scale
    assert isinstance(q.layers["linear"], Int8Linear)
    assert isinstance(q.layers["linear"].inner, nnq.Linear)


# --- dynamic int8 -------------------------------------------------------------------------


@pytest.mark.parametrize("name", RNN)
def test_dynamic_int8_quantizes_recurrent_and_linear_layers(name: str) -> None:
    prog = SPACES[name]
    for k, pt in enumerate(points(prog)):
        calibration = [batch(prog, pt, n=16, seed=k)]
        net = sensitive(prog, pt, calibration)
        q = dynamic_int8(net)
        kinds = {type(m) for m in q.modules()}
        assert not kinds & {nn.LSTM, nn.GRU, nn.Linear}, kinds
        assert nnqd.Linear in kinds
        cell = point.complete(prog, pt)["rnn.cell"]
        assert (nnqd.LSTM if cell == "lstm" else nnqd.GRU) in kinds
        # the float model keeps its float layers
        assert {nn.Linear} <= {type(m) for m in net.modules()}
        x = batch(prog, pt, n=24, seed=7)
        with torch.no_grad():
            expected, got = net(x), q(x)
        assert got.shape == expected.shape == (24, prog.classes)
        assert centered_correlation(expected, got) > 0.95


def test_dynamic_int8_keeps_a_cnn_running() -> None:
    prog = program("sparse_cnn")
    pt = {"fc": 2}
    net = build(prog, pt).eval()
    q = dynamic_int8(net)
    assert sum(isinstance(m, nnqd.Linear) for m in q.modules()) == 3
    assert any(type(m) is nn.Conv2d for m in q.modules())  # convolutions stay float
    x = batch(prog, pt, n=4)
    with torch.no_grad():
        assert q(x).shape == (4, 10)
