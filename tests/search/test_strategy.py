"""The optimisation strategies, without training: observations are made up.

The default (`exact`) strategy must only ever propose untried points that
validate and fit the target, choose them by expected hypervolume improvement,
be reproducible, and work without an error objective; the factory must refuse
unknown names.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import program

from sparsemod_dsl.nets.cost import cost
from sparsemod_dsl.nets.point import Point, sample, validate
from sparsemod_dsl.nets.targets import load_target
from sparsemod_dsl.search.exactstrategy import FAST_POOL, ExactStrategy, chance_error
from sparsemod_dsl.search.hypervolume import expected_improvement
from sparsemod_dsl.search.pricing import Pricer, key
from sparsemod_dsl.search.strategy import make_strategy
from sparsemod_dsl.search.trials import Trial

OBJECTIVES = ["error", "flash", "ram"]


def pricer(name: str = "sparse_cnn", ram_kb: float | None = None) -> Pricer:
    import dataclasses

    target = load_target("stm32f446")
    if ram_kb is not None:
        target = dataclasses.replace(target, sram_bytes=int(ram_kb * 1024), reserved_ram_bytes=0)
    return Pricer(program(name), target, "int8", True)


def made_up_error(values: dict[str, float]) -> float:
    """Bigger networks err less: enough structure for the GP to find."""
    return float(0.05 + 0.8 * np.exp(-(values["flash"] + values["ram"]) / 30_000))


def observe(strategy: ExactStrategy, points: list[Point], first: int = 0) -> None:
    for k, point in enumerate(points):
        values = strategy.pricer.price(point).values
        strategy.observe(Trial(first + k, "bo", point, None, "completed",
                               error=made_up_error(values), flash_bytes=int(values["flash"]),
                               ram_bytes=int(values["ram"])))


def exact(name: str = "sparse_cnn", objectives: list[str] = OBJECTIVES, seed: int = 0,
          ram_kb: float | None = None) -> ExactStrategy:
    strategy = make_strategy("exact", program(name), objectives, pricer(name, ram_kb), seed,
                             fast=True)
    assert isinstance(strategy, ExactStrategy)
    return strategy


def test_the_pricer_agrees_with_the_cost_model() -> None:
    check = pricer()
    for point in sample(check.program, 20, 3):
        priced = check.price(point)
        if not validate(check.program, point):
            assert priced.reason == validate(check.program, point).reason
            continue
        report = cost(check.program, point, check.target, "int8", check.sparsity(point))
        assert priced.values["flash"] == report.flash_bytes
        assert priced.values["ram"] == report.ram_bytes
        if priced.reason is not None:
            assert priced.reason.startswith("does not fit stm32f446")


@pytest.mark.parametrize("name", ["sparse_cnn", "sparse_cnn_rnn"])
def test_only_untried_feasible_points_are_proposed(name: str) -> None:
    strategy = exact(name)
    first = strategy.initial(6)
    assert len(first) == 6
    observe(strategy, first)
    for batch in range(2):
        points = strategy.propose(3)
        assert len(points) == 3 and len({key(p) for p in points}) == 3
        for point in points:
            assert strategy.pricer.price(point).reason is None
            assert key(point) not in {key(p) for p in first}
        observe(strategy, points, first=6 + 3 * batch)
        first += points


def test_the_first_choice_has_the_highest_expected_improvement() -> None:
    """The first point of a batch is the pool's argmax of the closed-form EHVI, which
    `scores` reports for any points."""
    strategy = exact()
    observe(strategy, strategy.initial(8))
    chosen = strategy.propose(1)[0]
    rivals = [p for p in sample(strategy.program, 40, 11)
              if strategy.pricer.price(p).reason is None][:10]
    scores = strategy.scores([chosen, *rivals])
    assert scores[0] >= max(scores[1:]) - 1e-12
    assert all(s >= 0.0 for s in scores)


def test_scores_are_the_expected_hypervolume_improvement() -> None:
    strategy = exact()
    observe(strategy, strategy.initial(8))
    candidates = [p for p in sample(strategy.program, 30, 5)
                  if strategy.pricer.price(p).reason is None][:5]
    got = strategy.scores(candidates)
    mean, std = strategy.model.predict(
        strategy.model_inputs(candidates, [strategy.pricer.price(p) for p in candidates]))
    exact_costs = np.array([[strategy.pricer.price(p).values[o] for o in ("flash", "ram")]
                            for p in candidates])
    target = strategy.pricer.target
    assert target is not None
    ref = np.array([chance_error(strategy.program), target.flash_budget_bytes,
                    target.ram_budget_bytes])
    assert np.allclose(got, expected_improvement(np.array(strategy.values), ref, mean, std,
                                                 exact_costs))
    assert strategy.scores([{"block.count": 99}]) == [float("-inf")]  # invalid: never chosen


def test_proposals_are_reproducible() -> None:
    runs = []
    for _ in range(2):
        strategy = exact(seed=4)
        observe(strategy, strategy.initial(6))
        runs.append(strategy.propose(2))
        observe(strategy, runs[-1], first=6)
        runs.append(strategy.propose(2))  # from the kept candidates too
    assert runs[:2] == runs[2:]


def test_a_later_batch_scores_the_kept_candidates_and_prices_fewer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Candidates stay from one batch to the next (`PoolSize.kept`): never a tried or
    just-proposed one, and the later batch draws and prices far fewer new ones."""
    strategy = exact()
    observe(strategy, strategy.initial(6))
    calls = []
    price = Pricer.price
    monkeypatch.setattr(Pricer, "price", lambda self, p: calls.append(1) or price(self, p))
    seen = list(strategy.fitting)
    for batch in range(3):
        before = len(calls)
        points = strategy.propose(2)
        priced = len(calls) - before
        assert len(points) == 2 and all(strategy.pricer.price(p).reason is None for p in points)
        assert not {key(p) for p in points} & {key(p) for p in seen}
        assert strategy.kept and not strategy.kept.keys() & {key(p) for p in points + seen}
        if batch == 0:
            first = priced
        else:
            assert priced < first / 2
        observe(strategy, points, first=6 + 2 * batch)
        seen += points


def test_without_an_error_objective_nothing_is_modelled() -> None:
    strategy = exact(objectives=["flash", "ram"])
    observe(strategy, strategy.initial(3))
    points = strategy.propose(2)
    assert len(points) == 2 and strategy.model.fits == 0


def test_a_budget_nothing_meets_yields_no_points_and_a_reason() -> None:
    strategy = exact(ram_kb=0.25)
    assert strategy.initial(2) == []
    assert strategy.last_rejection is not None and "RAM (TFLM arena)" in strategy.last_rejection


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'bogus'"):
        make_strategy("bogus", program("sparse_cnn"), OBJECTIVES, pricer(), 0)


def test_fast_pool_is_smaller() -> None:
    assert exact().pool_size == FAST_POOL


def test_latency_is_an_exact_objective_too() -> None:
    strategy = exact(objectives=["error", "flash", "ram", "latency"])
    assert strategy.exact == ["flash", "ram", "latency"]
    first = strategy.initial(4)
    for k, point in enumerate(first):
        values = strategy.pricer.price(point).values
        strategy.observe(Trial(k, "bo", point, None, "completed", error=made_up_error(values),
                               flash_bytes=int(values["flash"]), ram_bytes=int(values["ram"]),
                               latency_ms=values["latency"]))
    points = strategy.propose(2)
    assert len(points) == 2 and all(strategy.pricer.price(p).values["latency"] > 0
                                    for p in points)


def test_a_failing_error_model_falls_back_to_sobol_points(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The search goes on when the GP cannot be fitted, and says so."""
    strategy = exact()
    said: list[str] = []
    strategy.report = said.append
    observe(strategy, strategy.initial(4))

    def broken(*_: object) -> None:
        raise RuntimeError("matrix not positive definite")

    monkeypatch.setattr(strategy.model, "update", broken)
    points = strategy.propose(2)
    assert len(points) == 2 and all(strategy.pricer.price(p).reason is None for p in points)
    assert said == ["the error model failed (RuntimeError: matrix not positive definite); "
                    "drawing Sobol points instead"]
