"""Searches stopped at any moment resume with no trial lost or run twice.

The journal is the truth: trial ids come from it (never from `state.json`, a cache),
every event is one whole line, and a trial that was running when the process died is
run again under its id. Here real `sparsemodc search` processes are SIGKILLed at
random moments of the small search of `small_search` (9 trials of one epoch), and
`state.json` is deleted on the way.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from small_search import importable, start, write_search

from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.experiment import load_experiment
from sparsemod_dsl.search.journal import RUN_EVENT, Journal
from sparsemod_dsl.search.state import runs, spent_seconds

#: How many times the search is killed before it may finish.
KILLS = 3
TRIALS = 9


def check(journal: Journal, kills: int) -> None:
    """A valid journal whose ids are 0..N-1, each started once (or once more per kill,
    for the trial the kill interrupted) and finished at most once."""
    records = journal.records()  # raises on a damaged line
    started = [r["trial"] for r in records if r["event"] == "started"]
    finished = [r["trial"] for r in records if r["event"] == "finished"]
    assert sorted(set(started)) == list(range(len(set(started))))
    assert len(started) - len(set(started)) <= kills
    assert len(finished) == len(set(finished)) and set(finished) <= set(started)


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Each kill waits for a random number of journal events (of the 20 a whole search
    writes), so that the kills spread over the stages, then a random fraction of a
    second more, so that they land inside a trial as well as between two."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    path = write_search(tmp_path)
    journal = Journal(tmp_path / "results" / "journal.jsonl")
    finished: dict[int, str | None] = {}
    for kill, events in enumerate(sorted(rng.sample(range(2, 2 * TRIALS), KILLS))):
        process = start(tmp_path, path)
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline and (
                len(journal.records()) < events):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        if kill == 1:  # the cache goes too: the journal alone must tell where things stand
            (tmp_path / "results" / "state.json").unlink(missing_ok=True)
        check(journal, kill + 1)
        for trial in journal.trials():  # a finished trial is never run again
            if trial.status != "interrupted":
                assert finished.setdefault(trial.id, trial.finished) == trial.finished, seed
    last = start(tmp_path, path)
    assert last.wait(timeout=300) == 0, (seed, sorted(tmp_path.glob("log-*.txt"))[-1].read_text())
    check(journal, KILLS)
    trials = journal.trials()
    assert [t.id for t in trials] == list(range(TRIALS)), seed
    assert all(t.status == "completed" for t in trials), [t.reason for t in trials]
    assert all(finished.get(t.id, t.finished) == t.finished for t in trials), seed


def test_deleting_state_json_mid_search_loses_no_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, a search resumed without `state.json` gave ids from 0 again and its new
    trials replaced the finished ones."""
    importable(tmp_path, monkeypatch)
    path = write_search(tmp_path)
    state = tmp_path / "results" / "state.json"
    lines: list[str] = []

    def stop_after_four(line: str) -> None:
        lines.append(line)
        if len(lines) == 4:
            os.remove(state)
            raise KeyboardInterrupt  # as Ctrl-C would

    with pytest.raises(KeyboardInterrupt):
        began = time.monotonic()
        Search(load_experiment(path), report=stop_after_four).run()
    interrupted = time.monotonic() - began
    journal = Journal(tmp_path / "results" / "journal.jsonl")
    first = journal.trials()
    assert [t.id for t in first] == [0, 1, 2, 3] and not state.exists()
    Search(load_experiment(path), report=lambda _: None).run()
    trials = journal.trials()
    assert [t.id for t in trials] == list(range(TRIALS))
    assert trials[:4] == first
    assert [r["trial"] for r in journal.records() if r["event"] == "started"] == list(range(9))
    assert state.exists()
    # the search time counts the interrupted run too (to the second of its journal times)
    records = journal.records()
    ended = sum(r["seconds"] for r in records if r["event"] == RUN_EVENT)
    assert runs(records) == 2
    assert spent_seconds(tmp_path / "results", records) == pytest.approx(
        ended + interrupted, abs=1.5)
