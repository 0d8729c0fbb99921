"""The Optuna peers of benchmarks/search_quality.py (`benchmarks/peers.py`), without training.

Optuna is a benchmark-only dependency: these tests are skipped without it. A peer must
suggest only the parameters active at its point, each within its domain, propose only
untried points that fit, and tell Optuna what became of every suggestion.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import program

from sparsemod_dsl.nets.point import active, contains
from sparsemod_dsl.nets.targets import load_target
from sparsemod_dsl.search.pricing import Pricer, key
from sparsemod_dsl.search.trials import Trial

optuna = pytest.importorskip("optuna")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from peers import OptunaStrategy, suggest_point  # noqa: E402


@pytest.mark.parametrize("name", ["sparse_cnn", "sparse_cnn_rnn"])
def test_suggested_points_are_active_and_in_their_domains(name: str) -> None:
    space = program(name)
    domains = {p.name: p.domain for p in space.parameters}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        point = suggest_point(study.ask(), space)
        assert point == active(space, point)
        assert all(contains(domains[k], v) for k, v in point.items())


@pytest.mark.parametrize("peer", ["nsga2", "tpe"])
def test_a_peer_proposes_untried_fitting_points_and_tells_optuna(peer: str) -> None:
    space = program("sparse_cnn")
    pricer = Pricer(space, load_target("stm32f446"), "int8", True)
    strategy = OptunaStrategy(peer, space, ["error", "flash", "ram"], pricer, seed=0)
    seen: set[str] = set()
    for batch in range(3):
        points = strategy.initial(4) if batch == 0 else strategy.propose(4)
        assert len(points) == 4
        for k, point in enumerate(points):
            assert pricer.price(point).reason is None and key(point) not in seen
            seen.add(key(point))
            values = pricer.price(point).values
            status = "failed" if k == 3 else "completed"
            strategy.observe(Trial(4 * batch + k, "bo", point, None, status, error=0.5,
                                   flash_bytes=int(values["flash"]),
                                   ram_bytes=int(values["ram"])))
    states = [t.state for t in strategy.study.trials]
    told = optuna.trial.TrialState
    assert states.count(told.COMPLETE) >= 9 and states.count(told.FAIL) >= 3
    assert states.count(told.PRUNED) == strategy.pruned
    assert told.RUNNING not in states
