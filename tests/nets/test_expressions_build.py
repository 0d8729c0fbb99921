"""The expressions of issue 15 through the networks: the runtime builder, the generated
builder (`codegen`, which embeds `lang/functions.py`), the cost model and the Ax space.

The space uses every new name: `make_divisible` of a width multiplier, `round`, `floor`
and `ceil`, the repeat index and kernels shrunk to the feature map with `in_height`,
`in_width` (images) and `in_length` (sequences).
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from helpers import batch, src
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsemod_dsl.lang import ir
from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.nets import cost, point
from sparsemod_dsl.nets.axspace import search_space
from sparsemod_dsl.nets.builder import build
from sparsemod_dsl.nets.codegen import builder_source

IMAGE = compile_source(src("""
    arch shrinking(input: image(3, 20, 14), classes = 5)

    network {
        width = choice[0.35, 0.5, 0.75, 1.0] ordered
        conv2d(make_divisible(16 * width, 8), 3, stride = 2) batchnorm relu
        repeat stage = int[1..3] as i {
            k = choice[3, 5, 7]
            conv2d(make_divisible(16 * width * i, 8), kernel = min(k, in_height, in_width),
                   padding = "valid") relu
        }
        conv2d(round(in_channels * 1.5), kernel = ceil(width * 2)) relu
        conv2d(max(4, floor(in_channels / 3)), 1)
        global_avg_pool
        linear(classes)
    }
"""), "shrinking.arch")

SEQUENCE = compile_source(src("""
    arch taps(input: sequence(12, 6), classes = 3)

    network {
        repeat layer = int[1..3] as i {
            taps = choice[3, 5, 9]
            conv1d(filters = 2 ** (i + 1), kernel = min(taps, in_length), padding = "valid",
                   stride = 2 ** max(0, i - 2)) relu
        }
        global_avg_pool
        linear(classes)
    }
"""), "taps.arch")

SPACES = {"image": IMAGE, "sequence": SEQUENCE}


def _generated(prog: ir.Program, folder: Path, name: str):  # type: ignore[no-untyped-def]
    path = folder / f"gen_expr_{name}.py"
    path.write_text(builder_source(prog))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def _points(prog: ir.Program) -> list[point.Point]:
    points = [pt for seed in range(4) for pt in point.sample(prog, 5, seed)]
    return [pt for pt in points if point.validate(prog, pt).ok]


def test_every_sampled_point_is_valid() -> None:
    """The kernels shrink to the feature map, so no point fails for its kernel."""
    for prog in SPACES.values():
        points = point.sample(prog, 100, seed=7)
        assert all(point.validate(prog, pt).ok for pt in points)


@pytest.mark.parametrize("name", [*SPACES])
def test_generated_and_runtime_builders_agree(name: str, tmp_path: Path) -> None:
    prog = SPACES[name]
    module = _generated(prog, tmp_path, name)
    points = _points(prog)
    assert len(points) >= 10
    for pt in points:
        runtime, generated = build(prog, pt), module.build(pt)
        ours, theirs = runtime.state_dict(), generated.state_dict()
        assert [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in theirs.items()]
        generated.load_state_dict(ours)
        x = batch(prog, pt, n=2)
        with torch.no_grad():
            assert torch.equal(runtime.eval()(x), generated.eval()(x))


def _fused_parameters(net: torch.nn.Module) -> int:
    fused = copy.deepcopy(net).eval()
    fused.fuse_model()  # type: ignore[operator]
    return sum(p.numel() for p in fused.parameters())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from([*SPACES]), seed=st.integers(0, 10_000))
def test_parameters_equal_the_built_module(name: str, seed: int) -> None:
    prog = SPACES[name]
    (pt,) = point.sample(prog, 1, seed)
    assert cost.cost(prog, pt).params == _fused_parameters(build(prog, pt))


def test_the_width_multiplier_gives_the_mobilenet_widths() -> None:
    widths = {}
    for width in (0.35, 0.5, 0.75, 1.0):
        net = build(IMAGE, {"width": width, "stage": 1})
        widths[width] = next(m.out_channels for m in net.modules()
                             if isinstance(m, torch.nn.Conv2d))
    assert widths == {0.35: 8, 0.5: 8, 0.75: 16, 1.0: 16}


def test_the_ax_space_holds_only_parameters() -> None:
    names = {p.name for p in search_space(IMAGE).parameters.values()}
    assert "width" in names and not any("in_height" in n or n == "i" for n in names)


@pytest.mark.parametrize("name", [*SPACES])
def test_mutated_points_build_and_inherit_the_parents_weights(name: str) -> None:
    """Morphisms change parameters; derived widths and shrunk kernels follow, and the
    child keeps every tensor of the parent that exists in it (whole or overlapping)."""
    import random

    from sparsemod_dsl.nets.morph import inherit, mutate

    prog = SPACES[name]
    rng = random.Random(5)
    children = 0
    for parent_point in _points(prog)[:6]:
        mutation = mutate(prog, parent_point, rng)
        if mutation is None:
            continue
        parent, child = build(prog, parent_point), build(prog, mutation.point)
        shared = set(parent.state_dict()) & set(child.state_dict())
        assert inherit(child, parent.state_dict()) >= len(shared) > 0
        x = batch(prog, mutation.point, n=2)
        with torch.no_grad():
            assert child.eval()(x).shape == (2, prog.classes)
        children += 1
    assert children >= 3
