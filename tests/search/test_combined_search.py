"""A search over a space that uses issue 15's constructs together, end to end: a
searched resolution, a pair kernel through min(in_height/in_width), make_divisible
widths and repeat-index widths and strides, searched projection shortcuts inside a
repeat, and a MAC budget. Every trial (Sobol, BO and morph children alike) keeps to the
budget and trains at its own size.
"""

from __future__ import annotations

import pytest

from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.nets import cost
from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.experiment import load_experiment
from sparsemod_dsl.search.train import default_trainer

ARCH = '''\
arch combined(input: image(1, res, res), res = choice[6, 8] ordered, classes = 10)

train {
    learning_rate = float[0.003..0.02] log
}

network {
    width = choice[0.5, 1.0, 2.0] ordered
    conv2d(make_divisible(8 * width, 4), kernel = (min(3, in_height), min(5, in_width)))
    batchnorm relu
    repeat stage = int[1..2] as i {
        skip: residual(shortcut = choice["auto", "projection"]) {
            conv2d(make_divisible(8 * i * width, 4), 3, stride = min(2, i)) batchnorm relu
        }
    }
    global_avg_pool
    linear(classes)
}

constraint macs <= 40_000
'''
EXPERIMENT = '''\
arch = "combined.arch"
results = "results"
seed = 2
[data]
dataset = "digits"
[stages]
sobol = 4
bo_rounds = 1
bo_batch = 2
morph_rounds = 1
morph_candidates = 4
epochs = [1, 1, 1]
[training]
pruning = false
'''


def test_every_trial_keeps_to_the_budget_at_its_own_size(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("combined")
    (folder / "combined.arch").write_text(ARCH)
    (folder / "experiment.toml").write_text(EXPERIMENT)
    sizes: list[tuple[int, tuple[int, ...]]] = []

    def trainer(net, data, config):  # type: ignore[no-untyped-def]
        x, _ = data.train[0]
        sizes.append((net.point["res"], tuple(x.shape)))
        return default_trainer(net, data, config)

    engine = Search(load_experiment(folder / "experiment.toml"), trainer=trainer,
                    report=lambda line: None, fast=True)
    engine.run()
    trials = [t for t in engine.journal.trials() if t.status == "completed"]
    assert len(trials) >= 6
    prog = compile_source(ARCH, "combined.arch")
    assert all(cost.cost(prog, t.params).macs <= 40_000 for t in trials)
    assert all(shape == (1, res, res) for res, shape in sizes)
    assert {t.params["res"] for t in trials} == {6, 8}
    assert {t.params["stage"] for t in trials} == {1, 2}
