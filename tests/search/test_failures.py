"""Failing trials never abort a search; a broken data binding stops it before training.

Each test runs `sparsemodc search` in process on the small search of `small_search`
(48 random images, one epoch per network), with a dataset or trainer of `smalldata`
that misbehaves as user code can.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import run_cli
from small_search import importable, write_search

from sparsemod_dsl.search.journal import Journal

ONE_STAGE = "[stages]\nsobol = 3\nbo_rounds = 0\nmorph_rounds = 0\nepochs = [1, 1, 1]\n"


def journal(folder: Path) -> Journal:
    return Journal(folder / "results" / "journal.jsonl")


def test_a_trainer_failing_every_third_trial_never_stops_the_search(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    importable(tmp_path, monkeypatch)
    path = write_search(tmp_path, trainer="every_third")
    code, out, err = run_cli(capsys, "search", str(path))
    assert code == 0, err
    trials = journal(tmp_path).trials()
    assert [t.stage for t in trials] == ["sobol"] * 3 + ["bo"] * 4 + ["morph"] * 2
    failed = [t.id for t in trials if t.status == "failed"]
    assert failed == [2, 5, 8]
    assert trials[5].reason == "TypeError: simulated failure of trial 5"
    assert all(t.status == "completed" for t in trials if t.id not in failed)
    assert "9 trials: 6 trained, 0 infeasible, 3 failed" in out
    assert re.search(r"time: \d+ s, of which \d+ s training and [\d.]+ s choosing points "
                     r"\(sobol strategy\)", out), out


@pytest.mark.parametrize("trainer, reason", [
    ("returns_none", "the trainer returned NoneType, not a TrainResult"),
    ("type_error", "TypeError: default_trainer() takes 3 positional arguments but 4 were given"),
    ("calls_exit", "the trainer or the data called sys.exit(4)"),
])
def test_a_stage_whose_every_trial_fails_stops_the_search(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        trainer: str, reason: str) -> None:
    """Whatever the trainer raises (SystemExit included) is the trial's failure; a
    stage with nothing but failures stops the search with the reason, exit 1."""
    importable(tmp_path, monkeypatch)
    code, _, err = run_cli(capsys, "search", str(write_search(tmp_path, trainer=trainer,
                                                              stages=ONE_STAGE)))
    assert code == 1, err
    assert err.startswith("sparsemodc: error: every network of stage sobol failed (3 of 3); "
                          f"the last because: {reason}. The failed trials are in ")
    assert "Traceback" not in err
    trials = journal(tmp_path).trials()
    assert [(t.id, t.status, t.reason) for t in trials] == [(i, "failed", reason) for i in range(3)]


@pytest.mark.parametrize("how, reason", [
    ("label", "IndexError: Target 7 is out of bounds."),
])
def test_data_that_breaks_in_a_later_batch_fails_the_trials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        how: str, reason: str) -> None:
    """Sample 0 is checked before the search; a later sample raising, or a label out
    of range, shows only in training: the trials fail with the reason."""
    importable(tmp_path, monkeypatch)
    path = write_search(tmp_path, dataset="broken", options=f'how = "{how}"', stages=ONE_STAGE)
    code, _, err = run_cli(capsys, "search", str(path))
    assert code == 1 and "every network of stage sobol failed" in err, err
    trials = journal(tmp_path).trials()
    assert len(trials) == 3 and all(reason in (t.reason or "") for t in trials), trials


@pytest.mark.parametrize("dataset, trainer, message", [
    ("exits", None, "data.dataset: smalldata:exits: the dataset function failed: it called "
                    "sys.exit(3)"),
    ("broken", None, "data.dataset: smalldata:broken: reading the first sample of the train set "
                     "failed: IndexError: no sample 0"),
    # a later sample: standardising reads the whole train split before training
    ("broken:index", None, "data.dataset: standardising: reading train sample 1 failed: "
                           "IndexError: no sample 1 (set data.standardize = false to skip "
                           "the statistics)"),
    ("images", "missing", "training.trainer: smalldata:missing: 'smalldata' has no attribute "
                          "'missing'"),
])
def test_a_broken_data_binding_stops_before_training_naming_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        dataset: str, trainer: str | None, message: str) -> None:
    importable(tmp_path, monkeypatch)
    dataset, _, how = dataset.partition(":")  # broken:HOW: how the dataset breaks
    options = f'how = "{how or "first"}"' if dataset == "broken" else ""
    path = write_search(tmp_path, dataset=dataset, trainer=trainer, options=options)
    code, out, err = run_cli(capsys, "search", str(path))
    assert (code, out) == (1, "")
    assert err == f"sparsemodc: error: {path}: {message}\n"
    assert not journal(tmp_path).path.exists()  # nothing was trained
