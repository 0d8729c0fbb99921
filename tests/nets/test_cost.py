"""The cost models (`cost`) against the built PyTorch networks, and their API and CLI.

The main properties, for hypothesis-drawn points of every stdlib space, the example
and the zoo (a space with every layer and construct):

- the parameter count equals `sum(p.numel())` of `builder.build`'s module, exactly;
- convolution and linear MACs equal torch's `FlopCounterMode` FLOPs / 2;
- peak RAM (float32 activations) equals the peak of live activation tensors observed
  while the built float module runs (`observed_peak_bytes` explains the observation);
- int8 flash equals the bytes of the quantised module's weights (the issue asks 10 %).

The forward-pass checks draw from a bounded part of each space (`SMALL`: at most
80 steps per sequence, 64 hidden units, 48 filters) and skip networks with more
than `helpers.MAX_WEIGHTS` weights, since the largest sequence networks take
seconds per pass; the parameter check covers whole spaces.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest
import torch
from helpers import (
    EXAMPLE,
    MAX_WEIGHTS,
    PROGRAM_FILES,
    PROGRAM_NAMES,
    input_sizes,
    program,
    src,
    weights,
    zoo,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.ao.nn import quantized as nnq
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
from torch.utils.flop_counter import FlopCounterMode

from sparsemod_dsl import cli
from sparsemod_dsl.errors import UsageError
from sparsemod_dsl.lang import ir
from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.lang.layers import LAYERS
from sparsemod_dsl.nets import cost, point
from sparsemod_dsl.nets.builder import bind, build
from sparsemod_dsl.nets.modules import FloatIsland, Recurrent
from sparsemod_dsl.nets.network import SparsemodNet
from sparsemod_dsl.nets.point import PointError
from sparsemod_dsl.nets.quantize import static_int8
from sparsemod_dsl.nets.targets import Target, Throughput, builtin_targets, load_target
from sparsemod_dsl.space import compile_file

SPACES = {name: program(name) for name in PROGRAM_NAMES} | {"zoo": zoo()}
FILES = {path.stem: path for path in PROGRAM_FILES}

#: Upper bounds of integer parameters (by the last part of their name) for forward passes.
SMALL = {"max_len": 80, "hidden": 64, "filters": 48}



def relaxed(examples: int) -> settings:
    """Hypothesis settings for tests that build networks: no deadline, filtering allowed."""
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def values(param: ir.Parameter, caps: Mapping[str, int]) -> st.SearchStrategy[Any]:
    """Any value of a parameter's domain; integers at most `caps[last name part]`."""
    domain = param.domain
    if isinstance(domain, ir.FixedDomain):
        return st.just(domain.value)
    if isinstance(domain, ir.ChoiceDomain):
        return st.sampled_from(domain.values)
    if isinstance(domain, ir.FloatDomain):
        return st.floats(domain.low, domain.high)
    high = min(domain.high, caps.get(param.name.rsplit(".", 1)[-1], domain.high))
    return st.sampled_from(range(domain.low, max(high, domain.low) + 1, domain.step))


def points(prog: ir.Program, caps: Mapping[str, int] | None = None
           ) -> st.SearchStrategy[point.Point]:
    """Points of a space (active parameters), each value drawn from its domain."""
    draws = {p.name: values(p, caps or {}) for p in prog.parameters}
    return st.fixed_dictionaries(draws).map(lambda full: point.active(prog, full))


def valid(prog: ir.Program, pt: point.Point) -> None:
    assume(point.validate(prog, pt).ok)


def small_net(prog: ir.Program, pt: point.Point) -> SparsemodNet:
    """The built network, or a rejected example when it is too large to run."""
    valid(prog, pt)
    net = build(prog, pt)
    assume(weights(net) <= MAX_WEIGHTS)
    return net.eval()


def example(prog: ir.Program, pt: point.Point) -> torch.Tensor:
    """One input example (batch of 1, so that bytes are per example)."""
    return torch.randn(1, *input_sizes(prog, pt), generator=torch.Generator().manual_seed(0))


# --- parameters and MACs --------------------------------------------------------------------


def test_every_layer_of_the_language_has_a_cost_model() -> None:
    assert set(cost.SPECS) == set(LAYERS)


@pytest.mark.parametrize("name", [*SPACES])
@relaxed(30)
@given(data=st.data())
def test_parameter_count_equals_the_built_module(name: str, data: st.DataObject) -> None:
    prog = SPACES[name]
    pt = data.draw(points(prog))
    valid(prog, pt)
    assert cost.cost(prog, pt).params == weights(build(prog, pt))


#: FlopCounterMode operators of convolutions and linear layers.
CONV_LINEAR_OPS = {"aten.convolution", "aten.addmm", "aten.mm", "aten.bmm"}


def conv_linear_flops(net: SparsemodNet, x: torch.Tensor) -> int:
    """FLOPs that FlopCounterMode counts for convolutions and matrix products, less
    those of LSTM/GRU layers (torch's GRU decomposes into addmm; LSTM is not counted)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    counts = counter.get_flop_counts()
    recurrent = [key for key, module in net.layers.items()
                 if isinstance(module, FloatIsland) and isinstance(module.inner, Recurrent)]
    total = 0
    for scope, ops in counts.items():
        inside = next((k for k in recurrent if scope.endswith(f".layers.{k}")), None)
        if scope == "Global" or inside:
            flops = sum(n for op, n in ops.items() if str(op) in CONV_LINEAR_OPS)
            total += -flops if inside else flops
    return total


@pytest.mark.parametrize("name", [*SPACES])
@relaxed(25)
@given(data=st.data())
def test_conv_and_linear_macs_equal_the_flop_counter(name: str, data: st.DataObject) -> None:
    prog = SPACES[name]
    pt = data.draw(points(prog, SMALL))
    net = small_net(prog, pt)
    report = cost.cost(prog, pt)
    ir_macs = sum(row.macs for row in report.layers if row.op not in ("lstm", "gru"))
    flops = conv_linear_flops(net, example(prog, pt))
    assert math.isclose(ir_macs, flops / 2, rel_tol=0.01), (ir_macs, flops / 2)


# --- peak RAM ------------------------------------------------------------------------------

_PADS = (nn.ZeroPad2d, nn.ConstantPad1d)
_STUBS = (torch.ao.quantization.QuantStub, torch.ao.quantization.DeQuantStub)


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _key(t: torch.Tensor) -> tuple[int, int, int]:
    """The same data: views (flatten, the steps fold) share storage, offset and size."""
    return (t.untyped_storage().data_ptr(), int(t.storage_offset()), t.numel())


def observed_ram_bytes(net: SparsemodNet, x: torch.Tensor) -> list[int]:
    """Bytes of activation tensors alive at once while each layer (and residual add) of
    `net` runs on `x`, in execution order: the largest sum over its kernel calls.

    Forward hooks record every kernel call in order: the leaf modules inside each
    layer (a padding module is not a kernel: the kernel after it reads the unpadded
    tensor, as MCU kernels pad on the fly; quant stubs are identities in float), and
    the residual adds (`FloatFunctional.add`, wrapped). A kernel holds its input and
    its output; an LSTM/GRU holds the layer's input, its output (the last step or all
    steps, as the layer returns) and its state (h, and c for an LSTM). Besides, a
    tensor passed to a residual add is alive from the call that made it to the add,
    and counts at every call in between that does not read it.
    """
    calls: list[tuple[int, tuple[int, int, int], int]] = []  # (layer, running input, held)
    made: dict[tuple[int, int, int], int] = {_key(x): -1}  # tensor -> call that made it
    adds: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (call, body output, kept)
    unpadded: dict[int, torch.Tensor] = {}
    state: list[int] = []
    layers = [0]  # layers and adds begun so far
    keep: list[torch.Tensor] = [x]  # hold every tensor so that storage is not reused

    def record(running: torch.Tensor, held: int, out: torch.Tensor) -> None:
        keep.extend((running, out))
        made.setdefault(_key(out), len(calls))
        calls.append((layers[0], _key(running), held))

    def begin(module: nn.Module, args: tuple[Any, ...]) -> None:
        layers[0] += 1

    def kernel(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if isinstance(module, _PADS):
            unpadded[id(out)] = args[0]
            keep.append(out)
        elif isinstance(module, (nn.LSTM, nn.GRU)):
            state.append(sum(_nbytes(t) for t in (out[1] if isinstance(out[1], tuple)
                                                  else (out[1],))))
        elif not isinstance(module, _STUBS):
            running = unpadded.get(id(args[0]), args[0])
            record(running, _nbytes(running) + _nbytes(out), out)

    def island(module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
        if isinstance(module.inner, Recurrent):
            record(args[0], _nbytes(args[0]) + _nbytes(out) + state.pop(), out)

    def wrap(add: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def recorded(body: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
            out = add(body, kept)
            layers[0] += 1
            adds.append((len(calls), body, kept))
            record(body, _nbytes(body) + _nbytes(kept) + _nbytes(out), out)
            return out
        return recorded

    handles = [m.register_forward_pre_hook(begin) for m in net.layers.values()]
    handles += [m.register_forward_hook(island) for m in net.layers.values()
                if isinstance(m, FloatIsland)]
    handles += [m.register_forward_hook(kernel) for layer in net.layers.values()
                for m in layer.modules() if not list(m.children())]
    for functional in net.adds.values():
        functional.add = wrap(functional.add)  # type: ignore[assignment,arg-type]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
        for functional in net.adds.values():
            del functional.add
    ram = [0] * layers[0]
    for index, (layer, running, held) in enumerate(calls):
        operands = {running} | {_key(t) for call, body, kept in adds if call == index
                                for t in (body, kept)}
        alive = {_key(kept): _nbytes(kept) for call, _, kept in adds
                 if made[_key(kept)] < index < call and _key(kept) not in operands}
        ram[layer - 1] = max(ram[layer - 1], held + sum(alive.values()))
    return ram


@pytest.mark.parametrize("name", [*SPACES])
@relaxed(25)
@given(data=st.data())
def test_ram_of_every_layer_equals_the_live_tensors_of_a_forward_pass(
    name: str, data: st.DataObject
) -> None:
    prog = SPACES[name]
    pt = data.draw(points(prog, SMALL))
    net = small_net(prog, pt)
    report = cost.cost(prog, pt, quant="float32")
    observed = observed_ram_bytes(net, example(prog, pt))
    assert [row.ram_bytes for row in report.layers] == observed
    assert report.peak_ram_bytes == max(observed)
    assert cost.cost(prog, pt).peak_ram_bytes * 4 == report.peak_ram_bytes


def test_peak_ram_of_a_plain_network_is_the_largest_input_plus_output() -> None:
    prog = compile_source(src("""
        arch plain(input: image(2, 10, 10), classes = 4)
        network {
            conv2d(filters = 6, kernel = 3)
            maxpool(2)
            flatten
            linear(classes)
        }
    """), "plain.arch")
    report = cost.cost(prog, {})
    assert [row.ram_bytes for row in report.layers] == [
        200 + 600, 600 + 150, 150 + 150, 150 + 4]
    assert (report.peak_ram_bytes, report.peak_layer) == (800, "conv2d")


def test_a_residual_keeps_its_input_alive_until_the_add() -> None:
    prog = compile_source(src("""
        arch res(input: image(4, 8, 8), classes = 4)
        network {
            residual {
                sepconv2d(filters = 4, kernel = 3, multiplier = 2)
                relu
            }
            global_avg_pool
            linear(classes)
        }
    """), "res.arch")
    rows = {row.name: row for row in cost.cost(prog, {}).layers}
    x = 4 * 64
    # sepconv2d: its input is the kept tensor; then depthwise output + output + kept input
    assert rows["sepconv2d"].ram_bytes == max(x + 2 * x, 2 * x + x + x)
    assert rows["relu"].ram_bytes == x + x + x
    assert rows["residual"].ram_bytes == 3 * x
    assert rows["global_avg_pool"].ram_bytes == x + 4


# --- flash ------------------------------------------------------------------------------------


def quantised_weight_bytes(model: nn.Module) -> int:
    """Bytes of the constants of a quantised network, read off its modules: int8
    weights (1 B), per-channel scales and zero points (float32 + int32 = 8 B per
    channel; torch keeps float64 + int64 in memory), biases (4 B), and 2 x 4 B per
    channel for a batch norm that no convolution absorbed (its four vectors reduce to
    a scale and a shift). Activation scales are runtime metadata, not counted."""
    total = 0

    def weight(w: torch.Tensor) -> int:
        per_channel = w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
        return w.numel() + 8 * (len(w.q_per_channel_scales()) if per_channel else 1)

    for module in model.modules():
        if isinstance(module, (nnq.Conv1d, nnq.Conv2d, nnq.Linear)):
            bias = module.bias()
            total += weight(module.weight()) + (0 if bias is None else 4 * bias.numel())
        elif hasattr(module, "get_weight"):  # dynamic LSTM / GRU
            total += sum(weight(w) for w in module.get_weight().values())
            total += sum(4 * b.numel() for b in module.get_bias().values())
        elif isinstance(module, (nnq.BatchNorm2d, nn.BatchNorm1d, nn.BatchNorm2d)):
            total += 2 * 4 * module.num_features
    return total


@pytest.mark.parametrize("name", [*SPACES])
@relaxed(12)
@given(data=st.data())
def test_int8_flash_equals_the_weights_of_the_quantised_module(
    name: str, data: st.DataObject
) -> None:
    prog = SPACES[name]
    pt = data.draw(points(prog, SMALL))
    net = small_net(prog, pt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantised = static_int8(net, [example(prog, pt)])
        # LSTM/GRU stay float in static_int8; dynamic quantisation with per-channel
        # weights, as the cost model assumes, gives their deployed int8 form.
        quantised = quantize_dynamic(
            quantised, {nn.LSTM: per_channel_dynamic_qconfig, nn.GRU: per_channel_dynamic_qconfig},
            dtype=torch.qint8)
    # The issue asks for agreement within 10 %; the accounting above is exact.
    assert cost.cost(prog, pt).flash_bytes == quantised_weight_bytes(quantised)


@pytest.mark.parametrize("name", [*SPACES])
@relaxed(10)
@given(data=st.data(), sparsities=st.lists(st.floats(0.0, 0.999), min_size=2, max_size=5))
def test_sparsity_lowers_flash_and_never_raises_it_above_dense(
    name: str, data: st.DataObject, sparsities: list[float]
) -> None:
    prog = SPACES[name]
    pt = data.draw(points(prog))
    valid(prog, pt)
    for quant in cost.QUANTS:
        dense = cost.cost(prog, pt, quant=quant).flash_bytes
        flashes = [cost.cost(prog, pt, quant=quant, sparsity=s).flash_bytes
                   for s in sorted(sparsities)]
        assert all(f <= dense for f in flashes)
        assert flashes == sorted(flashes, reverse=True)


def test_pruning_most_weights_really_lowers_flash() -> None:
    prog = compile_source(src("""
        arch fc(input: image(1, 10, 10), classes = 10)
        network { flatten linear(units = 50, bias = false) linear(classes, bias = false) }
    """), "fc.arch")
    dense = cost.cost(prog, {})
    weights_, channels = 100 * 50 + 50 * 10, 50 + 10
    assert dense.flash_bytes == weights_ + 8 * channels
    pruned = cost.cost(prog, {}, sparsity=0.9)
    # 10 % nonzero int8 weights + a 1-bit mask per weight (5000 and 500 weights)
    assert pruned.flash_bytes == (500 + 625) + (50 + 63) + 8 * channels
    # at 1/8 sparsity the mask costs more than it saves: dense stays
    assert cost.cost(prog, {}, sparsity=0.1).flash_bytes == dense.flash_bytes


@pytest.mark.parametrize("name", [*SPACES])
@relaxed(10)
@given(data=st.data())
def test_float32_weights_cost_four_times_int8(name: str, data: st.DataObject) -> None:
    """float32 - int8 flash = 3 B per weight - 8 B of qparams per output channel, for
    every weight tensor of the built module; biases and batch norms cost the same."""
    prog = SPACES[name]
    pt = data.draw(points(prog))
    valid(prog, pt)
    net = build(prog, pt)
    tensors = [p for n, p in net.named_parameters()
               if n.rsplit(".", 1)[-1].startswith("weight") and p.dim() > 1]
    difference = sum(3 * w.numel() - 8 * w.shape[0] for w in tensors)
    assert (cost.cost(prog, pt, quant="float32").flash_bytes
            - cost.cost(prog, pt).flash_bytes) == difference


def test_folded_batch_norms_cost_no_flash_but_a_bias_where_the_conv_had_none() -> None:
    prog = compile_source(src("""
        arch bn(input: image(1, 6, 6), classes = 3)
        network {
            conv2d(filters = 4, kernel = 3, bias = false) batchnorm relu
            conv2d(filters = 4, kernel = 3) batchnorm
            relu batchnorm
            flatten linear(classes)
        }
    """), "bn.arch")
    rows = [row for row in cost.cost(prog, {}).layers if row.op == "batchnorm"]
    assert [row.flash_bytes for row in rows] == [4 * 4, 0, 2 * 4 * 4]
    assert [row.params for row in rows] == [8, 8, 8]


# --- latency and budgets -------------------------------------------------------------------


def test_latency_adds_per_operator_cycles_divided_by_the_clock() -> None:
    prog = compile_source(src("""
        arch one(input: image(2, 4, 4), classes = 5)
        network { conv2d(filters = 3, kernel = 3) relu flatten linear(classes) }
    """), "one.arch")
    rates = {"conv": 0.5, "pointwise": 1.0, "depthwise": 0.25, "linear": 0.2, "recurrent": 0.1}
    target = Target("t", "", "M4", 100.0, 2**16, 2**20, 0, 0,
                    Throughput(rates, elementwise_per_cycle=2.0, overhead_cycles=10.0), None, "")
    report = cost.cost(prog, {}, target)
    conv, linear = 16 * 3 * 2 * 9, 48 * 5
    cycles = [conv / 0.5 + 10, 48 / 2.0 + 10, 10, linear / 0.2 + 10]
    assert [row.latency_ms for row in report.layers] == pytest.approx(
        [c / 100e3 for c in cycles])
    assert report.latency_ms == pytest.approx(sum(cycles) / 100e3)


def test_latency_falls_back_to_macs_per_second_without_throughput(tmp_path: Path) -> None:
    (tmp_path / "board.toml").write_text(
        'core = "Cortex-M0+"\nclock_mhz = 48\nsram_kb = 32\nflash_kb = 256\n'
        'reserved_ram_kb = 4\nreserved_flash_kb = 16\nsource = "my notes"\n'
        "ops_per_second = 2e6\n")
    target = load_target(tmp_path / "board.toml")
    assert target.throughput is None
    prog = program("quickstart")
    report = cost.cost(prog, {}, target)
    assert report.latency_ms == pytest.approx(report.macs / 2e6 * 1e3)
    assert cost.cost(prog, {}).latency_ms is None


@pytest.mark.parametrize("name", [*SPACES])
@relaxed(10)
@given(data=st.data(), sparsity=st.floats(0.0, 0.95), quant=st.sampled_from([*cost.QUANTS]))
def test_fits_agrees_with_comparing_the_costs_to_the_budgets(
    name: str, data: st.DataObject, sparsity: float, quant: str
) -> None:
    prog = SPACES[name]
    pt = data.draw(points(prog))
    valid(prog, pt)
    report = cost.cost(prog, pt, quant=quant, sparsity=sparsity)
    for target in builtin_targets():
        fit = cost.fits(prog, pt, target, quant, sparsity)
        ram_ok = report.peak_ram_bytes <= target.ram_budget_bytes
        flash_ok = report.flash_bytes <= target.flash_budget_bytes
        assert fit.ok == bool(fit) == (ram_ok and flash_ok)
        assert (fit.ram_bytes, fit.flash_bytes) == (report.peak_ram_bytes, report.flash_bytes)
        assert fit.ram_budget_bytes == target.sram_bytes - target.reserved_ram_bytes
        assert ("peak RAM" in fit.reason) == (not ram_ok)
        assert ("flash" in fit.reason) == (not flash_ok)
        assert "\n" not in fit.reason and (fit.ok or " KB" in fit.reason)


def test_a_wide_network_on_64x64_images_fits_the_f746_but_not_the_f446() -> None:
    prog = bind(program("mbconv"), (3, 64, 64))
    pt = {"stage": 4, **{f"stage[{i}].width": 96 for i in range(1, 5)},
          **{f"stage[{i}].first.expand": 6 for i in range(1, 5)}}
    report = cost.cost(prog, pt)
    # stage 2 expands 96 channels x 6 at 16 x 16: its batch norm holds 576 x 16 x 16 in and out
    assert (report.peak_layer, report.peak_ram_bytes) == ("stage[2].first.batchnorm",
                                                          2 * 576 * 16 * 16)
    assert cost.fits(prog, pt, load_target("stm32f746"))
    fit = cost.fits(prog, pt, load_target("stm32f446"))
    assert not fit
    assert fit.reason == "does not fit stm32f446: peak RAM 288.0 KB > 112.0 KB budget"


# --- API errors, Space, CLI ------------------------------------------------------------------


def test_invalid_points_and_arguments_are_clear_errors() -> None:
    prog = program("quickstart")
    with pytest.raises(PointError, match="unknown parameter"):
        cost.cost(prog, {"layers": 2})
    small = compile_source(src("""
        arch small(input: image(1, 4, 4), classes = 2)
        network {
            conv2d(filters = 2, kernel = int[1..9], padding = "valid")
            flatten linear(classes)
        }
    """), "small.arch")
    with pytest.raises(PointError, match="smaller than the kernel"):
        cost.cost(small, {"conv2d.kernel": 9})
    with pytest.raises(UsageError, match="int8 or float32"):
        cost.cost(prog, {}, quant="int4")
    with pytest.raises(UsageError, match=r"\[0, 1\)"):
        cost.cost(prog, {}, sparsity=1.0)


def test_space_cost_and_fits_accept_a_target_name_and_validate() -> None:
    space = compile_file(EXAMPLE)
    report = space.cost({"layer": 2}, "nrf52840")
    assert report == cost.cost(space.program, {"layer": 2}, load_target("nrf52840"))
    assert space.fits({"layer": 2}, "nrf52840").ok
    for method in (space.cost, space.fits):
        with pytest.raises(PointError, match="layer = 9 is outside its domain"):
            method({"layer": 9}, "nrf52840")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_cost_prints_the_summary_and_marks_the_peak_layer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"layer": 2, "layer[2].kind": "separable"}))
    code, out, err = run(capsys, "cost", str(EXAMPLE), "--params", str(params),
                         "--target", "stm32f746")
    assert code == 0 and not err
    report = cost.cost(program("quickstart"), json.loads(params.read_text()),
                       load_target("stm32f746"))
    assert f"parameters  {report.params:,}" in out
    assert f"peak RAM    {report.peak_ram_bytes / 1024:.1f} KB" in out
    assert f"set by {report.peak_layer}" in out and "fits        yes" in out
    peak_lines = [line for line in out.splitlines() if line.endswith("<- peak RAM")]
    assert len(peak_lines) == 1 and peak_lines[0].startswith(report.peak_layer + " ")
    assert len([line for line in out.splitlines() if line.startswith("layer[")]) == 6


def test_cli_cost_json_is_the_full_report(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cost", str(FILES["ds_cnn"]), "--target", "nrf52840",
                       "--quant", "float32", "--sparsity", "0.5", "--json")
    assert code == 0
    data = json.loads(out)
    report = cost.cost(program("ds_cnn"), {}, load_target("nrf52840"), "float32", 0.5)
    assert data["flash_bytes"] == report.flash_bytes and data["macs"] == report.macs
    assert len(data["layers"]) == len(report.layers) and data["peak_layer"] == report.peak_layer
    assert data["fit"]["ok"] == cost.fit(report, load_target("nrf52840")).ok


def test_cli_cost_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    file = str(EXAMPLE)
    bad = tmp_path / "bad.json"
    bad.write_text('{"layer": 9}')
    code, out, err = run(capsys, "cost", file, "--params", str(bad), "--target", "nrf52840")
    assert code == 1 and not out and "layer = 9 is outside its domain" in err
    code, _, err = run(capsys, "cost", file, "--target", "esp32")
    assert code == 2 and "unknown target 'esp32'" in err
    assert all(t.name in err for t in builtin_targets())
    bad.write_text("[1, 2]")
    code, _, err = run(capsys, "cost", file, "--params", str(bad), "--target", "nrf52840")
    assert code == 2 and "JSON object" in err
    code, _, err = run(capsys, "cost", file, "--target", "nrf52840", "--sparsity", "1")
    assert code == 2 and "not a sparsity" in err


def test_cli_targets_lists_the_builtin_targets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "targets")
    assert code == 0
    for target in builtin_targets():
        line = next(line for line in out.splitlines() if line.startswith(target.name + " "))
        assert target.core in line and f"{target.clock_mhz:g} MHz" in line
        assert f"{target.sram_bytes // 1024} KB" in line and target.source in line
    assert "--target" in out and "KB = 1024 bytes" in out
