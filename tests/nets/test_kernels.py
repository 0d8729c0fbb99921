"""Rectangular kernels and strides, dilation and causal padding, through every stage.

A pair `(height, width)` is a 2-D convolution's kernel, stride or dilation; each side is
a value of its own (searched sides are parameters `<layer>.kernel_h`, `_w`). conv1d
takes a dilation and `padding = "causal"`. Random layers of each kind are checked
against torch (output shapes, parameters, MACs), the generated builder and morphisms;
TFLite export is covered by `helpers.DEPLOY_SOURCES["deploy_kernels"]` (test_tflite).
"""

from __future__ import annotations

import copy
import importlib.util
import math
import random
from pathlib import Path

import pytest
import torch
from helpers import ROOT, deploy_program, program
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from sparsemod_dsl.errors import ArchError
from sparsemod_dsl.lang import ir
from sparsemod_dsl.lang import syntax as s
from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.lang.fmt import format_source
from sparsemod_dsl.lang.parser import parse
from sparsemod_dsl.nets import axspace, cost, morph, point
from sparsemod_dsl.nets.builder import build
from sparsemod_dsl.nets.codegen import builder_source
from sparsemod_dsl.nets.graph import deployed_graph
from sparsemod_dsl.space import compile_file

RELAXED = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _conv2d(kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
            padding: str, layer: str) -> str:
    pair = "({}, {})".format
    if layer == "dwconv2d":
        call = f"dwconv2d(kernel = {pair(*kernel)}, stride = {pair(*stride)}"
        call += f", dilation = {pair(*dilation)}, multiplier = 2"
    elif layer == "sepconv2d":  # no dilation
        call = f"sepconv2d(5, kernel = {pair(*kernel)}, stride = {pair(*stride)}"
    elif layer.endswith("pool"):  # no dilation, no padding
        return f"""
arch rect(input: image(3, 13, 11), classes = 4)
network {{
    {layer}(size = {pair(*kernel)}, stride = {pair(*stride)})
    flatten
    linear(classes)
}}
"""
    else:
        call = f"conv2d(5, kernel = {pair(*kernel)}, stride = {pair(*stride)}"
        call += f", dilation = {pair(*dilation)}"
    return f"""
arch rect(input: image(3, 13, 11), classes = 4)
network {{
    {call}, padding = "{padding}") batchnorm relu
    flatten
    linear(classes)
}}
"""


def _macs(net: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops() / 2


def _fused_parameters(net: torch.nn.Module) -> int:
    fused = copy.deepcopy(net).eval()
    fused.fuse_model()  # type: ignore[operator]
    return sum(p.numel() for p in fused.parameters())


sides = st.tuples(st.integers(1, 5), st.integers(1, 5))


@RELAXED
@given(kernel=sides, stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.sampled_from(["same", "valid"]),
       layer=st.sampled_from(["conv2d", "dwconv2d", "sepconv2d", "maxpool", "avgpool"]))
def test_rectangular_windows_match_torch(kernel: tuple[int, int], stride: tuple[int, int],
                                         dilation: tuple[int, int], padding: str,
                                         layer: str) -> None:
    text = _conv2d(kernel, stride, dilation, padding, layer)
    dilated = layer in ("conv2d", "dwconv2d")
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation if dilated else (1, 1))]
    pool = layer.endswith("pool")
    if (padding == "valid" or pool) and (spans[0] > 13 or spans[1] > 11):
        with pytest.raises(ArchError, match="is smaller than the (dilated )?(kernel|window)"):
            compile_source(text, "rect.arch")
        return
    prog = compile_source(text, "rect.arch")
    net = build(prog, {}).eval()
    x = torch.randn(1, 3, 13, 11)
    _, _, out = point.validate(prog, {}).shapes[0]
    with torch.no_grad():
        feature = net.layers[next(iter(net.layers))](x)
    assert tuple(feature.shape[1:]) == out.sizes()
    report = cost.cost(prog, {})
    assert report.params == _fused_parameters(net)
    assert report.macs == _macs(net, x)
    window = deployed_graph(prog, {}).ops[0]
    assert (window.window, window.stride) == (kernel, stride)


def test_a_pair_side_is_a_parameter_of_its_own() -> None:
    prog = compile_source("""
arch t(input: image(1, 20, 10), classes = 2)
network {
    stem: conv2d(4, kernel = (int[3..10], choice[1, 3, 4]), stride = (2, choice[1, 2]))
    global_avg_pool
    linear(classes)
}
""", "t.arch")
    names = [p.name for p in prog.searchable]
    assert names == ["stem.kernel_h", "stem.kernel_w", "stem.stride_w"]
    ax = axspace.search_space(prog).parameters
    assert {"stem__kernel_h", "stem__kernel_w", "stem__stride_w"} <= set(ax)
    stem = next(ir.layers(prog.network))
    assert stem.arg("kernel") == ir.Pair(ir.ParamRef("stem.kernel_h"),
                                          ir.ParamRef("stem.kernel_w"))
    assert stem.arg("stride") == ir.Pair(ir.Const(2), ir.ParamRef("stem.stride_w"))
    net = build(prog, {"stem.kernel_h": 10, "stem.kernel_w": 4, "stem.stride_w": 1})
    conv = net.layers["stem"].conv
    assert conv.kernel_size == (10, 4) and conv.stride == (2, 1)
    assert "kernel=(p['stem.kernel_h'], p['stem.kernel_w'])" in builder_source(prog)


def test_a_sequence_pools_with_one_number_not_a_pair() -> None:
    with pytest.raises(ArchError, match="'size' is a pair \\(height, width\\), but a sequence"):
        compile_source("""
arch t(input: sequence(8, 3), classes = 2)
network {
    maxpool(size = (2, 2))
    global_avg_pool
    linear(classes)
}
""", "t.arch")


def test_a_plain_number_is_still_a_square_kernel() -> None:
    prog = compile_source("""
arch t(input: image(1, 8, 8), classes = 2)
network {
    conv2d(4, 3, stride = 2)
    global_avg_pool
    linear(classes)
}
""", "t.arch")
    conv = build(prog, {}).layers["conv2d"].conv
    assert conv.kernel_size == (3, 3) and conv.stride == (2, 2) and conv.dilation == (1, 1)


CAUSAL = """
arch causal(input: sequence(24, 3), classes = 2)
network {
    conv1d(6, kernel = int[1..4], dilation = int[1..4], padding = "causal") relu
    conv1d(4, kernel = 3, dilation = 2, padding = "causal")
    global_avg_pool
    linear(classes)
}
"""


@RELAXED
@given(kernel=st.integers(1, 4), dilation=st.integers(1, 4), step=st.integers(0, 23))
def test_causal_outputs_never_see_a_later_step(kernel: int, dilation: int, step: int) -> None:
    prog = compile_source(CAUSAL, "causal.arch")
    pt = {"conv1d.kernel": kernel, "conv1d.dilation": dilation}
    net = build(prog, pt).eval()
    convs = torch.nn.Sequential(*[net.layers[k] for k in ("conv1d", "relu", "conv1d__2")])
    x = torch.randn(1, 24, 3)
    later = x.clone()
    later[:, step + 1:] += torch.randn_like(later[:, step + 1:])
    with torch.no_grad():
        a, b = convs(x), convs(later)
    assert a.shape == (1, 24, 4)
    assert torch.equal(a[:, :step + 1], b[:, :step + 1])
    graph = deployed_graph(prog, pt)
    pads = [op for op in graph.ops if op.code == "PAD"]
    assert [op.pads[2] for op in pads] == [(dilation * (kernel - 1), 0), (4, 0)]
    assert cost.cost(prog, pt).params == sum(p.numel() for p in net.parameters())


def test_dilation_spreads_the_kernel_in_the_deployed_graph() -> None:
    prog = deploy_program("deploy_kernels")
    pt = {"dilated.dilation_h": 2, "dilated.dilation_w": 1, "dwconv2d.dilation": 2}
    ops = {op.name: op for op in deployed_graph(prog, pt).ops}
    assert ops["dilated"].dilation == (2, 1) and ops["dilated"].window == (2, 3)
    assert ops["dwconv2d"].dilation == (2, 2) and ops["dwconv2d"].stride == (1, 2)


def test_mlperf_tiny_ds_cnn_has_the_published_parameter_count() -> None:
    """22,604 parameters, each batch norm folded into the convolution before it (as TFLite
    stores the deployed model); the built torch module holds the batch norms apart."""
    prog = program("ds_cnn")
    report = cost.cost(prog, {})
    assert report.params == 22_604
    # 10x4 stem, stride (2, 2): 25 x 5 x 64 outputs of 40 MACs; 4 separable layers
    assert report.macs == 25 * 5 * 64 * 40 + 4 * 25 * 5 * 64 * (9 + 64) + 64 * 12
    net = build(prog, {})
    assert net.layers["stem"].conv.kernel_size == (10, 4)
    assert _fused_parameters(net) == 22_604
    batch_norms = 9 * 2 * 64  # scale and shift of 9 batch norms (stem, 2 per layer)
    assert sum(p.numel() for p in net.parameters()) == 22_604 + batch_norms


def test_tcn_reference_point_has_its_parameter_count() -> None:
    """Bai et al.'s sequential MNIST TCN: 8 levels of 25 channels, kernel 7, a 1x1
    projection on the first level's skip path (66,510 as their code counts; "about 70K")."""
    prog = program("tcn")
    report = cost.cost(prog, {})
    first = (7 * 1 * 25 + 25) + (7 * 25 * 25 + 25) + (1 * 25 + 25)  # with the projection
    level, head = 2 * (7 * 25 * 25 + 25), 25 * 10 + 10
    assert report.params == first + 7 * level + head == 66_510
    net = build(prog, {})
    assert _fused_parameters(net) == 66_510
    dilations = [op.dilation[1] for op in deployed_graph(prog, {}).ops
                 if op.code == "CONV_2D" and op.window[1] == 7]
    assert dilations == [d for d in (1, 2, 4, 8, 16, 32, 64, 128) for _ in range(2)]
    projections = [op for op in deployed_graph(prog, {}).ops
                   if op.code == "CONV_2D" and op.window == (1, 1)]
    assert len(projections) == 1  # the first level's skip path only
    shallow = cost.cost(prog, {"level": 4})
    assert shallow.params == first + 3 * level + head


@pytest.mark.parametrize("seed", range(6))
def test_a_rectangular_side_grows_and_shrinks_like_a_square_kernel(seed: int) -> None:
    prog = program("ds_cnn")
    parent = build(prog, {})
    rng = random.Random(seed)
    side = rng.choice(["stem.kernel_h", "stem.kernel_w"])
    domain = prog.parameter(side).domain
    assert isinstance(domain, ir.IntDomain)
    value = 10 if side == "stem.kernel_h" else 4
    moved = rng.choice([v for v in (value - 1, value - 2) if v >= domain.low])
    child = build(prog, {side: moved})
    assert morph.inherit(child, parent.state_dict()) == len(parent.state_dict())
    theirs, mine = parent.layers["stem"].conv.weight, child.layers["stem"].conv.weight
    overlap = tuple(slice(0, min(a, b)) for a, b in zip(mine.shape, theirs.shape))
    assert torch.equal(mine[overlap], theirs[overlap])
    assert math.prod(mine.shape) < math.prod(theirs.shape)


def test_morph_moves_a_kernel_side_within_its_domain() -> None:
    prog = program("ds_cnn")
    rng = random.Random(0)
    seen: set[str] = set()
    for _ in range(400):
        mutation = morph.step_int(prog, {}, rng)
        moved = mutation.changes[0].split(":")[0] if mutation is not None else ""
        if mutation is not None and moved.startswith("stem.kernel"):
            seen.add(moved)
            assert point.validate(prog, mutation.point).ok
    assert seen == {"stem.kernel_h", "stem.kernel_w"}


def test_generated_builder_builds_what_the_runtime_builder_builds(tmp_path: Path) -> None:
    prog = deploy_program("deploy_kernels")
    file = tmp_path / "kernels_builder.py"
    file.write_text(builder_source(prog))
    spec = importlib.util.spec_from_file_location("kernels_builder", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = 0
    for pt in point.sample(prog, 12, seed=3):
        if not point.validate(prog, pt):
            continue
        runtime, generated = build(prog, pt).eval(), module.build(pt).eval()
        generated.load_state_dict(runtime.state_dict())
        x = torch.randn(2, 2, 14, 9)
        with torch.no_grad():
            assert torch.equal(runtime(x), generated(x))
        built += 1
    assert built >= 3


def test_the_mlperf_tiny_example_is_the_stdlib_reference_point() -> None:
    """examples/mlperf_tiny/kws_ds_cnn.arch (what the latency calibration prices) deploys
    as the default point of the stdlib's ds_cnn space: same operators, weights and MACs."""
    example = compile_file(ROOT / "examples" / "mlperf_tiny" / "kws_ds_cnn.arch")
    assert not example.searchable
    ours, theirs = deployed_graph(example.program, {}), deployed_graph(program("ds_cnn"), {})
    shape = [(op.code, op.weights, op.stride, op.macs) for op in ours.ops]
    assert shape == [(op.code, op.weights, op.stride, op.macs) for op in theirs.ops]
    assert ours.params == 22_604


def test_a_dilated_kernel_too_wide_for_its_input_blames_the_kernel() -> None:
    prog = compile_source("""
arch t(input: sequence(12, 3), classes = 2)
network {
    conv1d(4, kernel = int[2..5], dilation = 3, padding = "valid")
    global_avg_pool
    linear(classes)
}
""", "t.arch")
    check = point.validate(prog, {"conv1d.kernel": 5})
    assert not check.ok and "smaller than the dilated kernel 13" in check.reason
    assert check.parameters == ("conv1d.kernel",)
    assert point.validate(prog, {"conv1d.kernel": 4}).ok


def test_parentheses_around_one_value_are_not_a_pair() -> None:
    module = parse("network {\n    conv2d(8, (3), ((1 + 1) * 2, int[1..2] default 2))\n}\n")
    call = module.items[0].body.stmts[0]  # type: ignore[attr-defined]
    kernel, stride = (arg.value for arg in call.args[1:])
    assert isinstance(kernel, s.Number) and kernel.value == 3
    assert isinstance(stride, s.Pair) and isinstance(stride.items[0], s.BinOp)
    assert isinstance(stride.items[1], s.IntRange)
    assert format_source("network{conv2d(8,(3),((1+1)*2,int[1..2] default 2))}") == (
        "network {\n    conv2d(8, 3, ((1 + 1) * 2, int[1..2] default 2))\n}\n")
