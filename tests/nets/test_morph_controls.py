"""`frozen` and `morph W` in the language steer the morphism operators."""

from __future__ import annotations

import collections
import random
from pathlib import Path

from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.nets.morph import DEFAULT_MORPHISMS, mutate
from sparsemod_dsl.nets.point import active

SPACE = '''
arch marked(input: image(1, 8, 8), classes = 3)

block stem(width = int[4..16] step 4) frozen {
    conv2d(width, kernel = choice[3, 5] ordered) relu
}

network {
    stem
    head: conv2d(filters = int[4..16] step 4 morph 3, kernel = 3) relu
    tail: conv2d(filters = int[4..16] step 4, kernel = 3) relu
    global_avg_pool
    linear(classes)
}
'''


def test_weights_come_from_the_parameter_then_its_block() -> None:
    program = compile_source(SPACE, "marked.arch")
    weights = {p.name: p.morph_weight for p in program.parameters}
    assert weights == {"width": 0.0, "conv2d.kernel": 0.0, "head.filters": 3.0,
                       "tail.filters": 1.0}


def test_frozen_parameters_never_change_and_weights_bias_the_choice() -> None:
    program = compile_source(SPACE, "marked.arch")
    parent = active(program, {})
    rng = random.Random(0)
    changed: collections.Counter[str] = collections.Counter()
    for _ in range(400):
        mutation = mutate(program, parent, rng, DEFAULT_MORPHISMS)
        if mutation is None:  # only step_int applies here; mutate may draw others 20 times
            continue
        assert mutation.point["width"] == parent["width"]
        assert mutation.point["conv2d.kernel"] == parent["conv2d.kernel"]
        changed.update(k for k in parent if mutation.point[k] != parent[k])
    assert sum(changed.values()) > 300
    # head.filters has three times the weight of tail.filters: expect ~3x the picks
    assert 2.0 < changed["head.filters"] / changed["tail.filters"] < 4.5, changed


def test_an_added_repetition_starts_as_the_identity() -> None:
    """Net2Net-style deepening: the new conv-BN-ReLU of add_repeat (same width as its
    neighbour, whose values it copies) leaves the parent's function unchanged."""
    import torch

    from sparsemod_dsl.nets.builder import build
    from sparsemod_dsl.nets.morph import add_repeat, inherit

    source = (Path(__file__).resolve().parents[2] / "examples" / "quickstart.arch").read_text()
    program = compile_source(source, "quickstart.arch")
    for kind, kernel in (("plain", 3), ("separable", 5)):
        parent_point = active(program, {"layer": 1, "layer[1].kind": kind,
                                        "layer[1].kernel": kernel, "layer[1].filters": 8})
        mutation = add_repeat(program, parent_point, random.Random(0))
        assert mutation is not None and mutation.point["layer"] == 2
        torch.manual_seed(0)
        parent = build(program, parent_point).eval()
        child = build(program, mutation.point).eval()
        inherit(child, parent.state_dict())
        x = torch.rand(4, 1, 8, 8)
        with torch.no_grad():
            assert torch.allclose(child(x), parent(x), atol=1e-5), kind
