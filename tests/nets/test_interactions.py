"""The constructs of issue 15 together, on one space (`helpers.DEPLOY_SOURCES
["deploy_together"]`, a small MCU keyword-spotting space): a searched input height, a
pair kernel whose sides read `in_height`/`in_width` through `min()`, widths by
`make_divisible` and the repeat index, dilations `2 ** (i - 1)`, residuals with a
searched (projection) shortcut inside a repeat, a label on `choose`, and constraints on
RAM and MACs.

Checked here: fmt, the generated builder, parameters and MACs against torch, sampling
under the cost constraints, weight inheritance. TFLite Micro against torch int8, and the
cost model against TFLM's arena, are checked on this space by test_tflite (it runs every
deploy space); the ONNX export by test_onnx_export.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import torch
from helpers import DEPLOY_SOURCES, batch, deploy_program
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.lang.fmt import format_source
from sparsemod_dsl.lang.parser import parse
from sparsemod_dsl.nets import cost, point, sampling
from sparsemod_dsl.nets.budgets import failing_cost_constraint
from sparsemod_dsl.nets.builder import build
from sparsemod_dsl.nets.codegen import builder_source
from sparsemod_dsl.nets.graph import deployed_graph
from sparsemod_dsl.nets.morph import inherit
from sparsemod_dsl.nets.network import SparsemodNet
from sparsemod_dsl.nets.targets import load_target
from sparsemod_dsl.search.pricing import Pricer

NAME = "deploy_together"
TEXT = DEPLOY_SOURCES[NAME]
PROG = deploy_program(NAME)
TARGET = load_target("stm32f446")
RELAXED = settings(max_examples=12, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def fused_parameters(net: SparsemodNet) -> int:
    fused = copy.deepcopy(net).eval()
    fused.fuse_model()
    return sum(p.numel() for p in fused.parameters())


def conv_linear_macs(net: SparsemodNet, x: torch.Tensor) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.eval()(x)
    ops = counter.get_flop_counts()["Global"]
    return sum(n for op, n in ops.items()
               if str(op) in ("aten.convolution", "aten.addmm", "aten.mm")) / 2


def valid_point(seed: int) -> point.Point:
    """A valid point of the space, drawn at random (and repaired where it was invalid)."""
    (pt,) = sampling.find(PROG, 1, seed=seed)
    return pt


def test_the_space_uses_every_construct_and_names_its_parameters() -> None:
    names = [p.name for p in PROG.parameters]
    assert names == ["frames", "width", "stage", "stage[1].block.shortcut",
                     "stage[2].block.shortcut", "stage[3].block.shortcut", "level", "head",
                     "dropout.p"]
    assert PROG.input.searched == (None, "frames", None)
    assert len(PROG.cost_constraints) == 2


@RELAXED
@given(seed=st.integers(0, 2**32 - 1))
def test_kernels_dilations_and_shortcuts_follow_the_point(seed: int) -> None:
    pt = valid_point(seed)
    net = build(PROG, pt)
    stages, levels = int(pt["stage"]), int(pt["level"])  # type: ignore[call-overload]
    assert net.layers["stem"].conv.kernel_size == (min(10, int(pt["frames"])), 4)  # type: ignore
    convs = [op for op in deployed_graph(PROG, pt).ops
             if op.code in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    depthwise = [op.dilation for op in convs if op.code == "DEPTHWISE_CONV_2D"]
    assert depthwise == [(2 ** (i - 1), 2 ** (i - 1)) for i in range(1, stages + 1)]
    causal = [op.dilation[1] for op in convs if op.code == "CONV_2D" and op.window == (1, 3)]
    assert causal == [2 ** (j - 1) for j in range(1, levels + 1)]
    # stage 1 keeps the stem's width and size: "auto" is the identity there; later
    # stages halve the map and widen, so both kinds project
    projected = [i for i in range(1, stages + 1)
                 if i > 1 or pt[f"stage[{i}].block.shortcut"] == "projection"]
    assert len([op for op in convs if op.window == (1, 1)]) == len(projected)


@RELAXED
@given(seed=st.integers(0, 2**32 - 1))
def test_parameters_and_macs_are_those_torch_counts(seed: int) -> None:
    pt = valid_point(seed)
    report, net = cost.cost(PROG, pt), build(PROG, pt)
    assert report.params == fused_parameters(net)
    graph = deployed_graph(PROG, pt)
    macs = sum(op.macs for op in graph.ops
               if op.code in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))
    assert macs == conv_linear_macs(net, batch(PROG, pt, n=1))


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_sampled_points_keep_within_the_cost_constraints(seed: int) -> None:
    pricer = Pricer(PROG, TARGET, "int8", False)

    def accept(pt: point.Point) -> tuple[bool, tuple[str, ...]]:
        return pricer.price(pt).reason is None, ()

    for pt in sampling.find(PROG, 4, seed=seed, accept=accept):
        report = cost.cost(PROG, pt, TARGET)
        assert report.ram_bytes <= 10 * 1024 and report.macs <= 400_000
        assert failing_cost_constraint(PROG, pt, report) is None


def test_a_point_over_budget_is_named_by_its_constraint() -> None:
    big = {"frames": 49, "width": 100, "stage": 3, "level": 2, "head": "pooled"}
    pt = point.active(PROG, point.complete(PROG, big))
    reason = failing_cost_constraint(PROG, pt, cost.cost(PROG, pt, TARGET))
    assert reason is not None and ("ram = " in reason or "macs = " in reason)


def test_fmt_round_trips_a_file_using_every_construct() -> None:
    out = format_source(TEXT)
    assert format_source(out) == out
    assert parse(out) == parse(TEXT)
    again = compile_source(out, f"{NAME}.arch")
    assert [p.name for p in again.parameters] == [p.name for p in PROG.parameters]
    pt = point.complete(PROG, {"frames": 33, "stage": 3})
    assert cost.cost(again, pt) == cost.cost(PROG, pt)


def test_the_generated_builder_equals_the_runtime_builder(tmp_path: Path) -> None:
    path = tmp_path / "gen_together.py"
    path.write_text(builder_source(PROG))
    spec = importlib.util.spec_from_file_location("gen_together", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        for pt in sampling.find(PROG, 6, seed=3):
            runtime, generated = build(PROG, pt), module.build(pt)
            assert list(runtime.state_dict()) == list(generated.state_dict())
            generated.load_state_dict(runtime.state_dict())
            x = batch(PROG, pt, n=2)
            with torch.no_grad():
                assert torch.equal(runtime.eval()(x), generated.eval()(x))
    finally:
        sys.modules.pop(spec.name, None)


#: Searched height and width down to 1: kernels and dilations shrink with the map they
#: read (`in_height`, `in_width` through min() and max()), so every point can be built.
SHRINKING = compile_source('''
arch shrinking(input: image(1, h, w), h = int[1..12], w = int[1..12], classes = 3)

network {
    repeat layer = int[1..3] as i {
        conv2d(4 * i, kernel = (min(3, in_height), min(3, in_width)),
               dilation = (max(1, min(2 ** (i - 1), (in_height - 1) // 2)),
                           max(1, min(2 ** (i - 1), (in_width - 1) // 2))),
               padding = "valid") relu
    }
    global_avg_pool
    linear(classes)
}
''', "shrinking.arch")


@RELAXED
@given(h=st.integers(1, 12), w=st.integers(1, 12), layers=st.integers(1, 3))
def test_pair_kernels_and_dilations_read_the_searched_size(h: int, w: int, layers: int) -> None:
    pt = {"h": h, "w": w, "layer": layers}
    assert point.validate(SHRINKING, pt).ok
    net, sizes = build(SHRINKING, pt), [(h, w)]
    for i in range(1, layers + 1):
        height, width = sizes[-1]
        kernel = (min(3, height), min(3, width))
        dilation = (max(1, min(2 ** (i - 1), (height - 1) // 2)),
                    max(1, min(2 ** (i - 1), (width - 1) // 2)))
        conv = net.layers[f"layer__{i}__conv2d"].conv
        assert (conv.kernel_size, conv.dilation) == (kernel, dilation)
        sizes.append(tuple(n - d * (k - 1) for n, k, d in zip(sizes[-1], kernel, dilation)))
    assert cost.cost(SHRINKING, pt).params == fused_parameters(net)
    assert cost.cost(SHRINKING, pt).macs == conv_linear_macs(net, batch(SHRINKING, pt, n=1))


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_a_child_inherits_across_sizes_and_shortcuts(seed: int) -> None:
    """A new number of frames changes no weight; an identity skip made a projection starts
    as the identity, so the child computes what its parent did."""
    parent_point = valid_point(seed) | {"stage[1].block.shortcut": "auto"}
    parent = build(PROG, parent_point).eval()
    state = parent.state_dict()
    resized = parent_point | {"frames": 33 if parent_point["frames"] != 33 else 49}
    assert inherit(build(PROG, resized), state) == len(state)
    projected = build(PROG, parent_point | {"stage[1].block.shortcut": "projection"}).eval()
    inherit(projected, state)
    x = batch(PROG, parent_point, n=2)
    with torch.no_grad():
        assert torch.allclose(parent(x), projected(x), atol=1e-5)
