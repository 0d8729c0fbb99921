"""Robust scoring: the mean of k trainings or k folds, and the final retraining.

The searches are the tiny digits searches of `test_search` (a second or so per
training); a kill during the final retraining is simulated in process by a trainer that
raises `KeyboardInterrupt` (not an `Exception`: nothing catches it, as nothing catches a
kill), and done for real to a `sparsemodc search` process of `small_search`.
"""

from __future__ import annotations

import random
import re
import signal
import time
from pathlib import Path
from statistics import fmean

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from small_search import start, write_search
from test_search import experiment, search
from torch.utils.data import TensorDataset

from sparsemod_dsl.search.data import DataBundle, DataError
from sparsemod_dsl.search.experiment import (
    ExperimentError,
    FinalSettings,
    load_experiment,
)
from sparsemod_dsl.search.final import FINAL_EVENT, FIRST_FINAL_SEED, final_data
from sparsemod_dsl.search.identity import canonical_settings
from sparsemod_dsl.search.journal import Journal
from sparsemod_dsl.search.report import report
from sparsemod_dsl.search.scoring import SEED_STRIDE, folds
from sparsemod_dsl.search.train import default_trainer

TWO_POINTS = "[stages]\nsobol = 2\nbo_rounds = 0\nmorph_rounds = 0\nepochs = [1, 1, 1]\n"


def bundle(n: int = 10, anomaly: bool = False) -> DataBundle:
    data = TensorDataset(torch.arange(float(n)).reshape(n, 1), torch.zeros(n, dtype=torch.long))
    return DataBundle(data, TensorDataset(data.tensors[0][:4] + 100, data.tensors[1][:4]),
                      data, 2, "vector", (1,), anomaly=anomaly)


def test_the_objective_of_three_repeats_is_the_mean_of_three_recorded_errors(
        tmp_path: Path) -> None:
    engine, _ = search(experiment(tmp_path, stages=TWO_POINTS,
                                  scoring="[scoring]\nrepeats = 3\n"))
    trials = engine.journal.trials()
    assert len(trials) == 2 and all(t.status == "completed" for t in trials)
    for trial in trials:
        scores, tests = trial.extra["scores"], trial.extra["test_scores"]
        assert len(scores) == len(tests) == 3
        assert trial.error == pytest.approx(fmean(scores))
        assert trial.extra["test_error"] == pytest.approx(fmean(tests))
    assert engine.state.settings["scoring"] == {"repeats": 3, "folds": 0}


def test_three_folds_are_three_recorded_trainings_on_disjoint_validation_parts(
        tmp_path: Path) -> None:
    engine, _ = search(experiment(tmp_path, stages=TWO_POINTS, scoring="[scoring]\nfolds = 3\n"))
    for trial in engine.journal.trials():
        assert len(trial.extra["scores"]) == 3
        assert trial.error == pytest.approx(fmean(trial.extra["scores"]))
    parts = folds(bundle(), 3, seed=5)
    vals = [sorted(float(parts[i].val[j][0]) for j in range(len(parts[i].val))) for i in range(3)]
    pooled = sorted(v for part in vals for v in part)
    assert pooled == [*map(float, range(10)), 100.0, 101.0, 102.0, 103.0]
    for part, val in zip(parts, vals):
        train = {float(part.train[j][0]) for j in range(len(part.train))}
        assert not train & set(val) and len(train) + len(val) == 14
        assert part.test is parts[0].test
    assert [len(v) for v in vals] == [len(p.val) for p in folds(bundle(), 3, seed=5)]


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 40), st.integers(0, 8), st.integers(2, 10), st.integers(0, 2**32 - 1))
def test_folds_partition_train_and_validation(n: int, n_val: int, k: int, seed: int) -> None:
    """Each example of train + validation is validated on in exactly one fold and
    trained on in the others; the same seed gives the same folds."""
    data = bundle(n)
    data.val = TensorDataset(torch.arange(n_val) + 100.0, torch.zeros(n_val, dtype=torch.long))
    if n + n_val < k:
        return
    parts = folds(data, k, seed)
    values = [[sorted(float(d[j][0]) for j in range(len(d))) for d in (p.train, p.val)]
              for p in parts]
    every = sorted([*map(float, range(n)), *(100.0 + v for v in range(n_val))])
    assert sorted(v for _, val in values for v in val) == every
    assert all(sorted(train + val) == every for train, val in values)
    assert max(len(val) for _, val in values) - min(len(val) for _, val in values) <= 1
    assert [p.val.indices for p in folds(data, k, seed)] == [p.val.indices for p in parts]


def test_folds_refuse_anomaly_sets_and_too_few_examples() -> None:
    with pytest.raises(DataError, match="anomaly"):
        folds(bundle(anomaly=True), 3, 0)
    with pytest.raises(DataError, match="only 14 examples"):
        folds(bundle(), 20, 0)
    with pytest.raises(DataError, match="anomaly"):
        final_data(bundle(anomaly=True), load_final(True))


def load_final(on_validation: bool) -> FinalSettings:
    return FinalSettings(seeds=2, train_on_validation=on_validation)


def test_final_data_pools_train_and_validation() -> None:
    data = bundle()
    assert final_data(data, load_final(False)) is data
    assert len(final_data(data, load_final(True)).train) == 14


@pytest.mark.parametrize("scoring, problem", [
    ("[scoring]\nrepeats = 3\nfolds = 3\n", "exclude each other"),
    ("[scoring]\nfolds = 1\n", "scoring.folds must be 0 (off) or in 2..100, found 1"),
    ("[scoring]\nrepeats = 0\n", "scoring.repeats must be in 1..100"),
    ("[final]\nseeds = -1\n", "final.seeds must be in 0..100"),
    ("[final]\ntrain_on_validation = 1\n", "final.train_on_validation must be a boolean"),
])
def test_bad_scoring_and_final_settings(tmp_path: Path, scoring: str, problem: str) -> None:
    with pytest.raises(ExperimentError, match=re.escape(problem)):
        load_experiment(experiment(tmp_path, scoring=scoring))


def test_default_scoring_and_any_final_keep_the_settings_of_older_searches(
        tmp_path: Path) -> None:
    """Results written before [scoring] and [final] existed still resume; [final] may be
    added to a finished search."""
    plain = canonical_settings(load_experiment(experiment(tmp_path)))
    final = load_experiment(experiment(tmp_path, scoring="[final]\nseeds = 4\n"))
    assert "scoring" not in plain and "final" not in plain
    assert canonical_settings(final) == plain and final.final.seeds == 4


FINAL = "[final]\nseeds = 3\n"


def test_the_pareto_networks_are_retrained_and_the_report_shows_mean_and_spread(
        tmp_path: Path) -> None:
    engine, lines = search(experiment(tmp_path, stages=TWO_POINTS, final=FINAL))
    front = {t.id for t in engine._finish()}
    events = [r for r in engine.journal.records() if r["event"] == FINAL_EVENT]
    assert sorted((e["network"], e["seed"]) for e in events) == \
        [(n, s) for n in sorted(front) for s in range(3)]
    assert all(0 <= e["test_error"] <= 1 and e["epochs"] == 1 for e in events)
    assert sum(line.startswith("final: trial") for line in lines) == len(events)
    text, _ = report(tmp_path / "results")
    table = text[text.index("final retraining"):].splitlines()
    assert "mean test error %" in table[2] and "std" in table[2] and "search test" in table[2]
    assert len(table) == 3 + len(front)
    for row in table[3:]:
        cells = row.split()
        errors = [e["test_error"] for e in events if e["network"] == int(cells[0])]
        assert float(cells[4]) == pytest.approx(100 * fmean(errors), abs=0.051)
        assert cells[-1] == "3" and cells[1] == "train"


def test_final_retraining_on_train_and_validation(tmp_path: Path) -> None:
    engine, _ = search(experiment(tmp_path, stages=TWO_POINTS,
                                  final="[final]\nseeds = 1\ntrain_on_validation = true\n"
                                        "epochs = 2\n"))
    events = [r for r in engine.journal.records() if r["event"] == FINAL_EVENT]
    assert events and all(e["on_validation"] and e["val_error"] is None and e["epochs"] == 2
                          for e in events)
    assert "train+val" in report(tmp_path / "results")[0]


def test_a_kill_during_the_final_retraining_loses_and_duplicates_nothing(
        tmp_path: Path) -> None:
    path = experiment(tmp_path, stages=TWO_POINTS, final=FINAL)
    seeds: list[int] = []

    def killed_at_the_second_retraining(net, data, config):  # type: ignore[no-untyped-def]
        final = config.seed >= FIRST_FINAL_SEED * SEED_STRIDE
        if final and sum(s >= FIRST_FINAL_SEED * SEED_STRIDE for s in seeds) == 1:
            raise KeyboardInterrupt
        seeds.append(config.seed)
        return default_trainer(net, data, config)

    with pytest.raises(KeyboardInterrupt):
        search(path, trainer=killed_at_the_second_retraining)
    journal = Journal(tmp_path / "results" / "journal.jsonl")
    assert len([r for r in journal.records() if r["event"] == FINAL_EVENT]) == 1
    trained: list[int] = []

    def counting(net, data, config):  # type: ignore[no-untyped-def]
        trained.append(config.seed)
        return default_trainer(net, data, config)

    engine, _ = search(path, trainer=counting)
    events = [r for r in engine.journal.records() if r["event"] == FINAL_EVENT]
    front = {t.id for t in engine._finish()}
    keys = [(e["network"], e["seed"]) for e in events]
    assert sorted(keys) == [(n, s) for n in sorted(front) for s in range(3)]
    assert len(trained) == 3 * len(front) - 1  # the retrainings left, and no trial again
    assert all(s >= FIRST_FINAL_SEED * SEED_STRIDE for s in trained)
    again, _ = search(path, trainer=counting)
    assert len(trained) == 3 * len(front) - 1


def test_a_sigkill_during_the_final_retraining_loses_and_duplicates_nothing(
        tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    stages = "[stages]\nsobol = 2\nbo_rounds = 0\nmorph_rounds = 0\nepochs = [1, 1, 1]\n"
    # enough retrainings that a kill 0-0.3 s after the second one ends falls among them
    path = write_search(tmp_path, stages=stages + "\n[final]\nseeds = 30\n")
    journal = Journal(tmp_path / "results" / "journal.jsonl")

    def finals() -> list[tuple[int, int]]:
        return [(r["network"], r["seed"]) for r in journal.records()
                if r["event"] == FINAL_EVENT]

    process = start(tmp_path, path)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and len(finals()) < 2:
        time.sleep(0.01)
    time.sleep(random.Random(seed).uniform(0.0, 0.3))
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = finals()
    assert len(before) == len(set(before)) >= 2, seed
    trials = journal.trials()
    last = start(tmp_path, path)
    assert last.wait(timeout=300) == 0, sorted(tmp_path.glob("log-*.txt"))[-1].read_text()
    assert "mean test error %" in sorted(tmp_path.glob("log-*.txt"))[-1].read_text()  # the CLI
    after = finals()
    networks = sorted({n for n, _ in after})
    assert after[:len(before)] == before and len(after) == len(set(after)), seed
    assert len(before) < len(after), "the kill came after the last retraining"
    assert sorted(after) == [(n, s) for n in networks for s in range(30)], seed
    assert journal.trials() == trials  # no trial trained again
