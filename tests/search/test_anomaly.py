"""Anomaly detection (MLPerf Tiny AD style): the AUC objective end to end.

The ROC AUC against a brute-force count of pairs (ties count one half), the built-in
`frame_anomalies` set and a user's anomaly set, and a real tiny search on it whose
progress lines, trials.csv, report, `show` and export read "AUC", never 1 - AUC.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_regression import AUTOENCODER, experiment

from sparsemod_dsl import cli
from sparsemod_dsl.cli.deploy import _test_line
from sparsemod_dsl.search.anomaly import AnomalyError, anomaly_error, roc_auc
from sparsemod_dsl.search.batching import loader
from sparsemod_dsl.search.data import DataError, load_dataset
from sparsemod_dsl.search.engine import Search, SearchError
from sparsemod_dsl.search.experiment import load_experiment
from sparsemod_dsl.search.export import export_trial
from sparsemod_dsl.search.frames import frame_anomalies, frames
from sparsemod_dsl.search.journal import Journal
from sparsemod_dsl.search.objective import error_phrase, show_error
from sparsemod_dsl.search.report import report, show
from sparsemod_dsl.search.train import evaluate


def pairs_auc(scores: list[float], flags: list[int]) -> float:
    """The AUC by definition: over every (anomalous, normal) pair, 1 when the anomalous
    score is higher, 1/2 on a tie."""
    wins = [1.0 if a > n else 0.5 if a == n else 0.0
            for (a, fa), (n, fn) in itertools.product(zip(scores, flags), repeat=2)
            if fa == 1 and fn == 0]
    return sum(wins) / len(wins)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1)), min_size=2, max_size=40)
       .filter(lambda rows: len({f for _, f in rows}) == 2))
def test_auc_is_the_pair_count_with_ties_as_halves(rows: list[tuple[int, int]]) -> None:
    scores = [float(s) for s, _ in rows]  # few distinct values: many ties
    flags = [f for _, f in rows]
    assert roc_auc(scores, flags) == pytest.approx(pairs_auc(scores, flags), abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=4, max_size=30))
def test_auc_of_ranked_and_reversed_scores(scores: list[float]) -> None:
    flags = [i % 2 for i in range(len(scores))]
    assert roc_auc(scores, flags) + roc_auc([-s for s in scores], flags) == pytest.approx(1.0)
    ordered = sorted(set(scores))
    if len(ordered) >= 2:  # every anomaly above every normal example: 1
        split = [ordered[-1]] * 2 + [ordered[0]] * 2
        assert roc_auc(split, [1, 1, 0, 0]) == 1.0 and roc_auc(split, [0, 0, 1, 1]) == 0.0
    assert roc_auc(np.full(len(scores), 3.0), flags) == 0.5  # all tied: chance


@pytest.mark.parametrize("scores, flags, message", [
    ([0.1, 0.2], [0, 2], r"must be 0 \(normal\) or 1 \(anomalous\), found \[2\]"),
    ([0.1, 0.2], [1, 1], "there are 0 normal and 2 anomalous"),
    ([0.1, float("nan")], [0, 1], "NaN"),
    ([0.1, 0.2, 0.3], [0, 1], "3 scores but 2 anomaly flags"),
])
def test_auc_says_what_it_cannot_score(scores: list[float], flags: list[int],
                                       message: str) -> None:
    with pytest.raises(AnomalyError, match=message):
        roc_auc(scores, flags)


def test_auc_reads_as_auc() -> None:
    assert show_error(0.069, "auc") == "0.931" and error_phrase(0.069, "auc") == "AUC 0.931"
    assert error_phrase(0.125) == "error 12.5%" and error_phrase(0.0123, "mse") == "MSE 0.0123"


def test_frame_anomalies_trains_on_normal_frames_and_tests_on_both() -> None:
    x, flags = frame_anomalies(samples=200, features=16)
    assert x.shape == (200, 16) and flags.dtype == torch.int64 and int(flags.sum()) == 50
    data = load_dataset("frame_anomalies", options={"samples": 200, "features": 16})
    assert (data.kind, data.input_shape, data.classes, data.loss, data.measure) == (
        "vector", (16,), 16, "mse", "auc")
    assert all(torch.equal(xi, yi) for xi, yi in data.train)  # its own target
    assert len(data.train) == 90  # the normal 60% of 150 normal frames
    for split in (data.val, data.test):
        assert sorted({int(y) for _, y in split}) == [0, 1]
        assert sum(int(y) for _, y in split) == 10
    assert torch.equal(frames(10, 8)[0], frames(10, 8)[0])
    with pytest.raises(ValueError, match="fraction between 0 and 1"):
        frame_anomalies(anomalies=1.0)
    with pytest.raises(ValueError, match="make 2 anomalous frames: each kind needs at least 4"):
        frame_anomalies(samples=20, anomalies=0.1)


def test_a_reconstruction_is_scored_by_its_auc() -> None:
    data = load_dataset("frame_anomalies", options={"samples": 400, "features": 32})
    x = torch.stack([xi for xi, _ in data.train])
    mean = x.mean(0)
    _, _, v = torch.pca_lowrank(x - mean, q=4, center=False)

    class Principal(torch.nn.Module):  # the best 4-dimensional bottleneck
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return (z - mean) @ v @ v.T + mean

    batches = loader(data.val, 16, False)
    assert evaluate(torch.nn.Identity(), batches, "auc") == 0.5  # every score 0: a tie
    assert evaluate(Principal(), batches, "auc") < 0.1  # AUC above 0.9
    error, count = anomaly_error(lambda z: Principal()(z).numpy(), batches)
    assert error == pytest.approx(evaluate(Principal(), batches, "auc")) and count == 80


USER_MODULE = '''
import torch
from torch.utils.data import TensorDataset


def machine(n=40, width=6):
    x = torch.rand(n, 6, generator=torch.Generator().manual_seed(0))
    flags = torch.arange(n) % 2
    return TensorDataset(x, x[:, :width].clone()), TensorDataset(x, flags), \\
        TensorDataset(x, flags), width


def mixed():
    x = torch.rand(8, 6)
    return TensorDataset(x, torch.arange(8) % 2), TensorDataset(x, x.clone()), \
        TensorDataset(x, x.clone()), 6
'''


def test_a_users_anomaly_set_has_targets_to_train_and_flags_to_test(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "addata.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    data = load_dataset("addata:machine")
    assert (data.loss, data.anomaly, data.measure, data.classes) == ("mse", True, "auc", 6)
    x, y = next(iter(loader(data.val, 5, False)))
    assert y.dtype == torch.int64 and y.tolist() == [0, 1, 0, 1, 0]
    (tmp_path / "ad.arch").write_text(AUTOENCODER)
    path = tmp_path / "experiment.toml"
    path.write_text('arch = "ad.arch"\n[data]\ndataset = "addata:machine"\n'
                    'options = { width = 4 }\n')
    with pytest.raises(SearchError, match="anomaly set.*outputs 4 values for an input of "
                       r"shape \(6,\)"):
        Search(load_experiment(path), fast=True)
    with pytest.raises(DataError, match="anomaly detection: float targets to train"):
        load_dataset("addata:mixed")


def anomaly_experiment(folder: Path) -> Path:
    """The tiny reconstruction search of test_regression, on `frame_anomalies`."""
    path = experiment(folder)
    path.write_text(path.read_text().replace('dataset = "frames"',
                                             'dataset = "frame_anomalies"'))
    return path


def test_an_anomaly_search_reads_auc_from_progress_to_export(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["search", str(anomaly_experiment(tmp_path))]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if re.match(r"trial +\d+ \[", line)]
    assert "val AUC" in out and "test AUC" in out  # the final Pareto table
    results = tmp_path / "results"
    trials = Journal(results / "journal.jsonl").trials()
    completed = [t for t in trials if t.status == "completed"]
    assert completed, [t.reason for t in trials]
    for t in completed:  # the journal stores 1 - AUC, in 0..1
        assert 0.0 <= t.error <= 1.0 and 0.0 <= t.extra["test_error"] <= 1.0  # type: ignore
    shown = {int(line.split()[1]): line for line in lines}  # the progress lines
    assert sorted(shown) == [t.id for t in trials]
    assert all(f"] AUC {1 - t.error:.3f}, flash" in shown[t.id]  # type: ignore[operator]
               for t in completed)
    assert json.loads((results / "setup.json").read_text())["measure"] == "auc"
    csv = (results / "trials.csv").read_text().splitlines()
    assert csv[0].split(",")[4] == "auc"
    first = next(line for line in csv[1:] if ",completed," in line)
    trial = next(t for t in completed if first.startswith(f"{t.id},"))
    assert float(first.split(",")[4]) == pytest.approx(1 - trial.error, abs=1e-6)  # type: ignore
    table, _ = report(results)
    assert "val AUC" in table and "test AUC" in table and "MSE" not in table
    assert f"validation AUC {1 - trial.error:.3f}" in show(results, trial.id)  # type: ignore
    saved = int(next((results / "networks").glob("*.pt")).stem.split("-")[1])
    exported = export_trial(results, saved, "tflite")
    test_error = next(t for t in completed if t.id == saved).extra["test_error"]
    assert exported.loss == "auc" and exported.torch_error == pytest.approx(test_error)
    if exported.runtime_error is None:
        pytest.skip("the TFLM check needs the deploy extra (tflite-micro)")
    assert exported.runtime_error == pytest.approx(exported.torch_error, abs=0.03)
    assert _test_line(exported).startswith(
        f"  test AUC: torch int8 {1 - exported.torch_error:.3f}, TensorFlow Lite Micro ")
    assert cli.main(["export", str(results), "--trial", str(saved), "-o",
                     str(tmp_path / "out")]) == 0
    assert "test AUC: torch int8 0." in capsys.readouterr().out


def test_the_anomaly_example_compiles_for_its_data(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    folder = tmp_path / "examples"
    for name in ("anomaly", "frames"):
        shutil.copytree(examples / name, folder / name)
    path = folder / "anomaly" / "experiment.toml"
    path.write_text(path.read_text().replace('results = "../../results/anomaly"',
                                             'results = "results"'))
    engine = Search(load_experiment(path), fast=True)
    assert (engine.program.loss, engine.program.classes, engine.data.measure) == (
        "mse", 64, "auc")
    assert (len(engine.data.train), len(engine.data.val), len(engine.data.test)) == (
        540, 240, 240)
