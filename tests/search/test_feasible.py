"""No lost stages: under a budget that few random points meet, every stage trains the
number of networks it asks for (`search.feasible`), reproducibly for a seed.

The space's smallest networks fit a 2 KB flash budget and its others do not: the
first test measures that fewer than 2% of random points fit. The strategies are
tested without training; the searches train on digits with one epoch per network.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from pathlib import Path

import pytest

from sparsemod_dsl import cli
from sparsemod_dsl.nets.point import active, draw
from sparsemod_dsl.nets.targets import load_target
from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.experiment import load_experiment
from sparsemod_dsl.search.feasible import repaired
from sparsemod_dsl.search.pricing import Pricer, key
from sparsemod_dsl.search.strategy import make_strategy
from sparsemod_dsl.space import compile_text

TIGHT = '''\
"""Up to three convolutions of up to 32 filters: few of its networks fit 2 KB of flash."""

arch tight(input: image(1, 8, 8), classes = 10)

train {
    batch_size = choice[32, 64] ordered
    learning_rate = float[0.003..0.02] log
}

network {
    repeat layer = int[1..3] {
        conv2d(filters = int[2..32] step 2, kernel = choice[1, 3] ordered) batchnorm relu
    }
    optional pool {
        maxpool(2)
    }
    global_avg_pool
    linear(classes)
}
'''
FLASH_KB = 2.0
OBJECTIVES = ["error", "flash", "ram"]


def pricer(flash_kb: float = FLASH_KB) -> Pricer:
    program = compile_text(TIGHT, input_shape=(1, 8, 8), classes=10).program
    target = dataclasses.replace(load_target("stm32f446"), flash_bytes=int(flash_kb * 1024),
                                 reserved_flash_bytes=0)
    return Pricer(program, target, "int8", False)


def test_fewer_than_two_percent_of_random_points_fit() -> None:
    check = pricer()
    rng = random.Random(0)
    points = [active(check.program, {p.name: draw(p.domain, rng) for p in check.program.parameters})
              for _ in range(1000)]
    fits = sum(check.price(p).reason is None for p in points)
    assert 0 < fits < 20, fits


@pytest.mark.parametrize("strategy", ["exact", "sobol", "gp"])
def test_every_strategy_draws_its_points_from_the_feasible_region(strategy: str) -> None:
    runs = []
    for _ in range(2):  # reproducible for a seed
        chooser = make_strategy(strategy, pricer().program, OBJECTIVES, pricer(), 3, fast=True)
        points = chooser.initial(12)
        assert len({key(p) for p in points}) == 12
        assert all(chooser.pricer.price(p).reason is None for p in points)
        runs.append(points)
    assert runs[0] == runs[1]


def test_a_budget_nothing_meets_says_why_and_how_hard_it_looked() -> None:
    chooser = make_strategy("sobol", pricer().program, OBJECTIVES, pricer(1.0), 0, fast=True)
    for _ in range(2):  # a second empty call says the same, not nested
        assert chooser.initial(2) == []
        why = chooser.last_rejection or ""
        assert why.startswith("no untried point fits after 80 Sobol points, 200 repaired "
                              "random draws and 0 mutations of fitting points; the last "
                              "rejected: does not fit stm32f446: flash "), why
        assert why.endswith("KB > 1.0 KB budget") and why.count("no untried") == 1, why


def test_proposals_that_do_not_fit_are_repaired_into_ones_that_do() -> None:
    chooser = make_strategy("gp", pricer().program, OBJECTIVES, pricer(), 0, fast=True)
    rng = random.Random(1)
    program = chooser.program
    big = [p for p in ({q.name: draw(q.domain, rng) for q in program.parameters}
                       for _ in range(40)) if chooser.pricer.price(active(program, p)).reason][:8]
    fixed = repaired(chooser, [active(program, p) for p in big])
    assert len(fixed) == len(big) == 8
    assert sum(chooser.pricer.price(p).reason is None for p in fixed) == 8


def tight_search(folder: Path, strategy: str, stages: str) -> Search:
    folder.mkdir()
    (folder / "tight.arch").write_text(TIGHT)
    path = folder / "experiment.toml"
    path.write_text(
        'arch = "tight.arch"\nname = "tight"\nresults = "results"\nseed = 2\n'
        '[data]\ndataset = "digits"\n'
        f'[stages]\nstrategy = "{strategy}"\n{stages}epochs = [1, 1, 1]\n'
        '[objectives]\nminimize = ["error", "flash", "ram"]\n'
        '[training]\npruning = false\nquantization = "post"\n'
        f'[target]\nname = "stm32f446"\nflash_kb = {FLASH_KB}\n')
    engine = Search(load_experiment(path), report=lambda _: None, fast=True)
    engine.run()
    return engine


@pytest.mark.parametrize("strategy", ["exact", "sobol"])
def test_every_stage_trains_its_full_count(tmp_path: Path, strategy: str) -> None:
    engine = tight_search(tmp_path / strategy, strategy,
                          "sobol = 4\nbo_rounds = 1\nbo_batch = 2\nmorph_rounds = 2\n"
                          "morph_candidates = 4\n")
    trials = engine.journal.trials()
    assert Counter(t.stage for t in trials) == {"sobol": 4, "bo": 2, "morph": 2}
    assert all(t.status == "completed" for t in trials), [t.reason for t in trials]
    assert all(t.flash_bytes <= FLASH_KB * 1024 for t in trials)  # type: ignore[operator]


def test_a_search_under_a_tight_budget_is_reproducible(tmp_path: Path) -> None:
    stages = "sobol = 3\nbo_rounds = 0\nmorph_rounds = 0\n"
    first, second = (tight_search(tmp_path / name, "exact", stages) for name in ("a", "b"))
    assert [t.params for t in first.journal.trials()] == \
        [t.params for t in second.journal.trials()]


def test_sparsemodc_search_exits_1_naming_the_budget_nothing_meets(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tight.arch").write_text(TIGHT)
    path = tmp_path / "experiment.toml"
    path.write_text('arch = "tight.arch"\nresults = "results"\n[data]\ndataset = "digits"\n'
                    '[target]\nname = "stm32f446"\nflash_kb = 1.0\n')
    assert cli.main(["search", str(path)]) == 1
    err = capsys.readouterr().err
    assert "no network of tight.arch can be trained: stage sobol" in err, err
    assert "KB > 1.0 KB budget" in err and "Loosen the budget" in err and "Traceback" not in err
