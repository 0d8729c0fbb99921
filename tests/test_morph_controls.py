"""`frozen` and `morph W` in the language steer the morphism operators."""

from __future__ import annotations

import collections
import random

from sparsemod_dsl.compiler import compile_source
from sparsemod_dsl.morph import DEFAULT_MORPHISMS, mutate
from sparsemod_dsl.point import active

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
