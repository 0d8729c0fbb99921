"""The cost models (`cost`) against the built PyTorch networks, and their API and CLI.

The cost model prices the deployed graph (`graph`: what TensorFlow Lite Micro runs);
tests/nets/test_tflite.py checks its flash and RAM against TFLM itself. Here, for
hypothesis-drawn points of every stdlib space, the example and the zoo (a space with
every layer and construct):

- the parameter count equals `sum(p.numel())` of the built module after torch's fusion
  (`fuse_model`: batch norm folded, as deployed), exactly;
- convolution and linear MACs equal torch's `FlopCounterMode` FLOPs / 2;
- the flash model is within 5% of the `.tflite` file the backend writes (the issue's bound);
- RAM: the live-tensor bound, the activation area and the arena, by hand on small
  networks, and the planner's invariants.

The forward-pass checks draw from a bounded part of each space (`SMALL`: at most
80 steps per sequence, 64 hidden units, 48 filters) and skip networks with more
than `helpers.MAX_WEIGHTS` weights.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytest
import torch
from helpers import (
    EXAMPLE,
    MAX_WEIGHTS,
    PROGRAM_FILES,
    PROGRAM_NAMES,
    input_sizes,
    program,
    run_cli,
    src,
    weights,
    zoo,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from sparsemod_dsl.errors import UsageError
from sparsemod_dsl.lang import ir
from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.nets import cost, point
from sparsemod_dsl.nets.builder import bind, build
from sparsemod_dsl.nets.deploy.int8 import Int8Graph, Int8Op, QParams
from sparsemod_dsl.nets.deploy.tflite import tflite_model
from sparsemod_dsl.nets.graph import deployed_graph
from sparsemod_dsl.nets.modules import FloatIsland, Recurrent
from sparsemod_dsl.nets.network import SparsemodNet
from sparsemod_dsl.nets.planner import buffers, greedy_area, lifetimes, live_bytes
from sparsemod_dsl.nets.point import PointError
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


def fused_parameters(net: SparsemodNet) -> int:
    """Parameters of the built module after torch folds its batch norms (eval mode)."""
    fused = copy.deepcopy(net).eval()
    fused.fuse_model()
    return sum(p.numel() for p in fused.parameters())


@pytest.mark.parametrize("name", [*SPACES])
@relaxed(30)
@given(data=st.data())
def test_parameters_equal_the_built_module_with_batch_norm_folded(
    name: str, data: st.DataObject
) -> None:
    prog = SPACES[name]
    pt = data.draw(points(prog))
    valid(prog, pt)
    assert cost.cost(prog, pt).params == fused_parameters(build(prog, pt))


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
    graph = deployed_graph(prog, pt)
    ir_macs = sum(op.macs for op in graph.ops
                  if op.mac_class not in ("recurrent", "") and op.emulates != "batchnorm")
    flops = conv_linear_flops(net, example(prog, pt))
    assert math.isclose(ir_macs, flops / 2, rel_tol=0.01), (ir_macs, flops / 2)


# --- RAM ---------------------------------------------------------------------------------------


PLAIN = """
arch plain(input: image(2, 10, 10), classes = 4)
network {
    conv2d(filters = 6, kernel = 3, padding = "valid") batchnorm relu
    maxpool(2)
    flatten
    linear(classes)
}
"""


def test_a_plain_network_holds_an_operators_input_and_output() -> None:
    report = cost.cost(compile_source(src(PLAIN), "plain.arch"), {})
    # conv 2x10x10 -> 6x8x8 (batch norm and ReLU fused), pool -> 6x4x4, reshape, FC
    assert [(row.op, row.folded) for row in report.layers] == [
        ("CONV_2D", ("batchnorm", "relu")), ("MAX_POOL_2D", ()), ("RESHAPE", ()),
        ("FULLY_CONNECTED", ())]
    assert [row.live_bytes for row in report.layers] == [
        200 + 384, 384 + 96, 96 + 96, 96 + 4]
    assert (report.live_bytes, report.peak_op) == (584, "conv2d")
    # TFLM's planner rounds buffers up to 16 bytes: 208 + 384
    assert report.activation_bytes == 592
    assert report.ram_bytes == report.activation_bytes + report.persistent_bytes


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
    # the depthwise part makes 8 channels from the kept input, the pointwise part 4 more
    assert rows["sepconv2d.depthwise"].live_bytes == x + 2 * x
    assert rows["sepconv2d"].folded == ("relu",)
    assert rows["sepconv2d"].live_bytes == x + 2 * x + x
    assert rows["residual"].live_bytes == 3 * x


@pytest.mark.parametrize("name", [n for n in SPACES if n != "zoo"])
@relaxed(20)
@given(data=st.data())
def test_the_memory_plan_overlaps_no_live_buffers_and_beats_no_bound(
    name: str, data: st.DataObject
) -> None:
    prog = SPACES[name]
    pt = data.draw(points(prog))
    valid(prog, pt)
    graph = deployed_graph(prog, pt)
    planned = buffers(graph)
    area = greedy_area(planned)
    assert live_bytes(planned) <= area <= sum(b.size for b in planned)
    assert all(b.size % 16 == 0 and b.first <= b.last for b in planned)
    assert set(lifetimes(graph)) == {t.index for t in graph.tensors}
    report = cost.price(graph)
    assert report.activation_bytes == area and report.live_bytes <= area
    assert report.live_bytes == max(row.live_bytes for row in report.layers)


# --- flash ------------------------------------------------------------------------------------


def dummy_int8(graph: Any) -> Int8Graph:
    """The graph with zero int8 numbers: files of the right sizes, without torch."""
    ops = []
    for op in graph.ops:
        if not op.weights:
            ops.append(Int8Op(op))
            continue
        channels = op.weights[-1] if op.code == "DEPTHWISE_CONV_2D" else op.weights[0]
        q = QParams(np.ones(channels, np.float32), np.zeros(channels, np.int64))
        bias = np.zeros(op.bias, np.int32) if op.bias else None
        ops.append(Int8Op(op, np.zeros(op.weights, np.int8), q, bias,
                          QParams(np.ones(op.bias, np.float32), np.zeros(op.bias, np.int64))
                          if op.bias else None))
    return Int8Graph(graph, tuple(QParams.of(1.0, 0) for _ in graph.tensors), tuple(ops))


@pytest.mark.parametrize("name", ["sparse_cnn", "sparse_cnn_seq", "ds_cnn", "mbconv",
                                  "quickstart"])
@relaxed(15)
@given(data=st.data())
def test_int8_flash_is_the_size_of_the_tflite_file(name: str, data: st.DataObject) -> None:
    prog = SPACES[name]
    pt = data.draw(points(prog))
    valid(prog, pt)
    graph = deployed_graph(prog, pt)
    written = len(tflite_model(dummy_int8(graph)))
    assert cost.price(graph).flash_bytes == pytest.approx(written, rel=0.05)


@pytest.mark.parametrize("name", [*SPACES])
@relaxed(10)
@given(data=st.data(), sparsities=st.lists(st.floats(0.0, 0.999), min_size=2, max_size=5))
def test_sparse_weights_lower_flash_and_never_raise_it_above_dense(
    name: str, data: st.DataObject, sparsities: list[float]
) -> None:
    prog = SPACES[name]
    pt = data.draw(points(prog))
    valid(prog, pt)
    for quant in cost.QUANTS:
        dense = cost.cost(prog, pt, quant=quant).flash_bytes
        flashes = [cost.cost(prog, pt, quant=quant, sparse_weights=s).flash_bytes
                   for s in sorted(sparsities)]
        assert all(f <= dense for f in flashes)
        assert flashes == sorted(flashes, reverse=True)


def test_sparse_weights_are_nonzeros_and_a_bit_mask_only_when_asked() -> None:
    prog = compile_source(src("""
        arch fc(input: image(1, 10, 10), classes = 10)
        network { flatten linear(units = 50, bias = false) linear(classes, bias = false) }
    """), "fc.arch")
    dense = cost.cost(prog, {})
    rows = [row for row in dense.layers if row.op == "FULLY_CONNECTED"]
    assert [row.flash_bytes for row in rows] == [100 * 50, 50 * 10]
    pruned = cost.cost(prog, {}, sparse_weights=0.9)
    rows = [row for row in pruned.layers if row.op == "FULLY_CONNECTED"]
    # 10 % nonzero int8 weights + a 1-bit mask per weight (5000 and 500 weights)
    assert [row.flash_bytes for row in rows] == [500 + 625, 50 + 63]
    assert dense.flash_bytes - pruned.flash_bytes > 3500
    # at 1/8 sparsity the mask costs more than it saves: dense stays
    assert cost.cost(prog, {}, sparse_weights=0.1).flash_bytes == dense.flash_bytes


def test_folded_batch_norms_cost_nothing_but_a_bias_where_the_conv_had_none() -> None:
    prog = compile_source(src("""
        arch bn(input: image(1, 6, 6), classes = 3)
        network {
            conv2d(filters = 4, kernel = 3, bias = false) batchnorm relu
            conv2d(filters = 4, kernel = 3) batchnorm
            maxpool(2) batchnorm
            flatten linear(classes)
        }
    """), "bn.arch")
    rows = cost.cost(prog, {}).layers
    assert [(row.op, row.params) for row in rows[:4]] == [
        ("CONV_2D", 4 * 9 + 4), ("CONV_2D", 4 * 36 + 4), ("MAX_POOL_2D", 0),
        ("DEPTHWISE_CONV_2D", 4 + 4)]  # the batch norm after pooling: a 1x1 depthwise
    assert rows[0].folded == ("batchnorm", "relu") and rows[3].folded == ()


# --- latency and budgets -------------------------------------------------------------------


def test_latency_adds_per_operator_cycles_divided_by_the_clock() -> None:
    prog = compile_source(src("""
        arch one(input: image(2, 4, 4), classes = 5)
        network { conv2d(filters = 3, kernel = 3) relu flatten linear(classes) }
    """), "one.arch")
    rates = {"conv": 0.5, "pointwise": 1.0, "depthwise": 0.25, "linear": 0.2, "recurrent": 0.1}
    target = Target("t", "", "M4", 100.0, 2**16, 2**20, 0, 0,
                    Throughput("cmsis-nn", rates, elementwise_per_cycle=2.0,
                               overhead_cycles=10.0), None, "")
    report = cost.cost(prog, {}, target)
    conv, linear = 16 * 3 * 2 * 9, 48 * 5
    # conv with the ReLU fused, a reshape moving 48 elements, the linear layer
    cycles = [conv / 0.5 + 10, 48 / 2.0 + 10, linear / 0.2 + 10]
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
@given(data=st.data(), sparse=st.floats(0.0, 0.95), quant=st.sampled_from([*cost.QUANTS]))
def test_fits_agrees_with_comparing_the_costs_to_the_budgets(
    name: str, data: st.DataObject, sparse: float, quant: str
) -> None:
    prog = SPACES[name]
    pt = data.draw(points(prog))
    valid(prog, pt)
    report = cost.cost(prog, pt, quant=quant, sparse_weights=sparse)
    for target in builtin_targets():
        fit = cost.fits(prog, pt, target, quant, sparse)
        ram_ok = report.ram_bytes <= target.ram_budget_bytes
        flash_ok = report.flash_bytes <= target.flash_budget_bytes
        assert fit.ok == bool(fit) == (ram_ok and flash_ok)
        assert (fit.ram_bytes, fit.flash_bytes) == (report.ram_bytes, report.flash_bytes)
        assert fit.ram_budget_bytes == target.sram_bytes - target.reserved_ram_bytes
        assert ("RAM (TFLM arena)" in fit.reason) == (not ram_ok)
        assert ("flash" in fit.reason) == (not flash_ok)
        assert "\n" not in fit.reason and (fit.ok or " KB" in fit.reason)


def test_a_wide_network_on_64x64_images_fits_the_f746_but_not_the_f446() -> None:
    prog = bind(program("mbconv"), (3, 64, 64))
    pt = {"stage": 4, **{f"stage[{i}].width": 96 for i in range(1, 5)},
          **{f"stage[{i}].first.expand": 6 for i in range(1, 5)}}
    report = cost.cost(prog, pt)
    # stage 2 expands 96 channels x 6 at 16 x 16 (batch norm and ReLU6 fused); its strided
    # depthwise convolution holds that expansion and its 8 x 8 output at once
    assert report.peak_op == "stage[2].first.dwconv2d"
    assert report.live_bytes == 576 * 16 * 16 + 576 * 8 * 8
    assert cost.fits(prog, pt, load_target("stm32f746"))
    fit = cost.fits(prog, pt, load_target("stm32f446"))
    assert not fit
    assert fit.reason == (f"does not fit stm32f446: RAM (TFLM arena) "
                          f"{report.ram_bytes / 1024:.1f} KB > 112.0 KB budget; flash "
                          f"{report.flash_bytes / 1024:.1f} KB > 448.0 KB budget")


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
        cost.cost(prog, {}, sparse_weights=1.0)


def test_space_cost_and_fits_accept_a_target_name_and_validate() -> None:
    space = compile_file(EXAMPLE)
    report = space.cost({"layer": 2}, "nrf52840")
    assert report == cost.cost(space.program, {"layer": 2}, load_target("nrf52840"))
    assert space.fits({"layer": 2}, "nrf52840").ok
    for method in (space.cost, space.fits):
        with pytest.raises(PointError, match="layer = 9 is outside its domain"):
            method({"layer": 9}, "nrf52840")



def test_cli_cost_prints_the_summary_and_marks_the_peak_operator(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"layer": 2, "layer[2].kind": "separable"}))
    code, out, err = run_cli(capsys, "cost", str(EXAMPLE), "--params", str(params),
                         "--target", "stm32f746")
    assert code == 0 and not err
    report = cost.cost(program("quickstart"), json.loads(params.read_text()),
                       load_target("stm32f746"))
    assert f"parameters  {report.params:,} (batch norm folded)" in out
    assert f"RAM         {report.ram_bytes / 1024:.1f} KB ({report.ram_bytes:,} bytes)" in out
    assert f"flash       {report.flash_bytes / 1024:.1f} KB" in out and ".tflite" in out
    assert f"activation area {report.activation_bytes / 1024:.1f} KB" in out
    assert f"set by {report.peak_op}" in out and "fits        yes" in out
    assert "runtime: TensorFlow Lite Micro" in out and "cmsis-nn kernels" in out
    peak_lines = [line for line in out.splitlines() if line.endswith("<- most live bytes")]
    assert len(peak_lines) == 1 and peak_lines[0].startswith(report.peak_op + " ")
    assert len([line for line in out.splitlines() if line.startswith("layer[")]) == len(
        [row for row in report.layers if row.name.startswith("layer[")])


def test_cli_cost_json_is_the_full_report(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "cost", str(FILES["ds_cnn"]), "--target", "nrf52840",
                       "--quant", "float32", "--sparse-weights", "0.5", "--json")
    assert code == 0
    data = json.loads(out)
    report = cost.cost(program("ds_cnn"), {}, load_target("nrf52840"), "float32", 0.5)
    assert data["flash_bytes"] == report.flash_bytes and data["macs"] == report.macs
    assert len(data["layers"]) == len(report.layers) and data["peak_op"] == report.peak_op
    assert data["ram_bytes"] == report.ram_bytes and data["runtime"] == cost.RUNTIME
    assert data["fit"]["ok"] == cost.fit(report, load_target("nrf52840")).ok


def test_cli_cost_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    file = str(EXAMPLE)
    bad = tmp_path / "bad.json"
    bad.write_text('{"layer": 9}')
    code, out, err = run_cli(capsys, "cost", file, "--params", str(bad), "--target", "nrf52840")
    assert code == 1 and not out and "layer = 9 is outside its domain" in err
    code, _, err = run_cli(capsys, "cost", file, "--target", "esp32")
    assert code == 2 and "unknown target 'esp32'" in err
    assert all(t.name in err for t in builtin_targets())
    bad.write_text("[1, 2]")
    code, _, err = run_cli(capsys, "cost", file, "--params", str(bad), "--target", "nrf52840")
    assert code == 2 and "JSON object" in err
    code, _, err = run_cli(capsys, "cost", file, "--target", "nrf52840", "--sparse-weights", "1")
    assert code == 2 and "not a sparsity" in err


def test_cli_targets_lists_the_builtin_targets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "targets")
    assert code == 0
    for target in builtin_targets():
        line = next(line for line in out.splitlines() if line.startswith(target.name + " "))
        assert target.core in line and f"{target.clock_mhz:g} MHz" in line
        assert f"{target.sram_bytes // 1024} KB" in line and target.source in line
        assert target.throughput is not None and target.throughput.engine in line
    assert "--target" in out and "KB = 1024 bytes" in out


def test_cli_cost_measure_runs_the_point_in_tflite_micro(
    capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tflite_micro", reason="needs the deploy extra (tflite-micro)")
    code, out, err = run_cli(capsys, "cost", str(EXAMPLE), "--target", "stm32f446", "--measure")
    assert code == 0, err
    table = out.split("measured by TensorFlow Lite Micro", 1)[1].splitlines()
    rows = {line.rsplit(None, 3)[0]: line.split()[-3:] for line in table[2:] if line.strip()}
    assert set(rows) == {"flash (.tflite file)", "arena total", "activation area",
                         "persistent data"}
    assert rows["activation area"][0] == rows["activation area"][1]
    for model, truth, _ in rows.values():
        model_bytes, tflm_bytes = (int(v.replace(",", "")) for v in (model, truth))
        assert model_bytes == pytest.approx(tflm_bytes, rel=0.05)
    code, _, err = run_cli(capsys, "cost", str(EXAMPLE), "--target", "stm32f446", "--measure",
                       "--quant", "float32")
    assert code == 2 and "int8" in err
