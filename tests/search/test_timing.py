"""Honest timing: a search's time is the time of every run, killed runs included.

A run that ends normally writes a `run` event with its seconds; a run killed before
that counts from its `run_started` event to its last event (issue 16: the time of a
killed run was missing from "search time").
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sparsemod_dsl.search.journal import RUN_EVENT, RUN_START_EVENT, SEARCH_EVENT, Journal
from sparsemod_dsl.search.state import runs, spent_seconds

NOON = datetime(2026, 11, 29, 12, tzinfo=timezone.utc)


def at(second: int, event: str, **fields: Any) -> dict[str, Any]:
    """An event at `second` seconds past noon UTC, as the journal writes its time."""
    return {"event": event, "time": (NOON + timedelta(seconds=second)).isoformat(), **fields}


def trial(second: int, number: int) -> list[dict[str, Any]]:
    return [at(second, "started", trial=number, stage="sobol", params={}),
            at(second + 5, "finished", trial=number, status="completed")]


def test_a_killed_run_counts_up_to_its_last_event(tmp_path: Path) -> None:
    events = [at(0, SEARCH_EVENT, experiment_hash="e", arch_hash="a", settings={}),
              at(0, RUN_START_EVENT), *trial(1, 0), *trial(10, 1),  # killed at 15 s
              at(600, RUN_START_EVENT), *trial(601, 1), at(620, RUN_EVENT, seconds=20.5),
              at(900, RUN_START_EVENT), *trial(902, 2)]  # killed again, or still running
    journal = Journal(tmp_path / "journal.jsonl")
    for event in events:
        journal.append(event)
    records = journal.records()
    assert spent_seconds(tmp_path, records) == 15 + 20.5 + 7
    assert runs(records) == 3


@given(st.lists(st.tuples(st.integers(0, 50), st.booleans()), max_size=6))
def test_the_time_is_the_sum_of_the_runs(durations: list[tuple[int, bool]]) -> None:
    """Runs of any length, each killed or not, with hours between them that never count."""
    events: list[dict[str, Any]] = []
    for number, (seconds, killed) in enumerate(durations):
        start = 3600 * number
        events += [at(start, RUN_START_EVENT), *trial(start + seconds // 2, number)[:1],
                   at(start + seconds, "finished", trial=number, status="completed")]
        if not killed:
            events.append(at(start + seconds, RUN_EVENT, seconds=float(seconds)))
    assert spent_seconds(Path("/nonexistent"), events) == sum(s for s, _ in durations)
