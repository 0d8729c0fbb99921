"""Tests of the results directory: atomic writes, journal, CSV, networks, state, Pareto front."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsemod_dsl.search.experiment import (
    canonical_settings,
    experiment_hash,
    load_experiment,
)
from sparsemod_dsl.search.journal import Journal
from sparsemod_dsl.search.networks import (
    load_network_record,
    prune_networks,
    save_network,
    saved_networks,
)
from sparsemod_dsl.search.results import ResultsError, sha256_text, write_atomic
from sparsemod_dsl.search.state import (
    ResumeError,
    State,
    current_settings,
    extension,
    load_state,
    read_state,
    save_state,
    search_event,
)
from sparsemod_dsl.search.trials import (
    CSV_COLUMNS,
    OBJECTIVE_FIELDS,
    Trial,
    pareto_front,
    write_csv,
)

FIXTURE = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def started(trial: int, stage: str = "sobol", **params: Any) -> dict[str, Any]:
    """A started event of a trial at the point `params`."""
    return {"event": "started", "trial": trial, "stage": stage, "params": params, "parent": None}


def finished(trial: int, status: str = "completed", **metrics: Any) -> dict[str, Any]:
    """A finished event with the given status and measures."""
    return {"event": "finished", "trial": trial, "status": status, "reason": None, **metrics}


# --- atomic writes ------------------------------------------------------------------------


def test_write_atomic_text_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    write_atomic(path, "héllo\r\n")
    assert path.read_bytes() == "héllo\r\n".encode()
    write_atomic(str(path), b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["f.txt"]  # no temporary file left


def test_write_atomic_modes(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    write_atomic(tmp_path / "new", "x")  # a new file: as open() would make it
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o666 & ~umask
    os.chmod(tmp_path / "new", 0o640)
    write_atomic(tmp_path / "new", "y")  # a replaced file keeps its mode
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o640


def test_a_failed_write_leaves_the_old_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")

    def fail(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


# --- journal ------------------------------------------------------------------------------


def test_journal_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    journal = Journal(tmp_path / "journal.jsonl")
    assert journal.records() == [] and journal.trials() == []
    events = [{**started(0), "params": {"layer[1].filters": 8, "train.lr": 0.01}},
              finished(0, error=0.25, flash_bytes=2048, note="ünïcode")]
    for event in events:
        journal.append(event)
    assert len(synced) == 2
    lines = journal.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and all(json.loads(line)["time"] for line in lines)
    assert [{k: v for k, v in r.items() if k != "time"} for r in journal.records()] == events
    journal.append({**started(1), "time": "2026-01-01T00:00:00+00:00"})
    assert journal.records()[-1]["time"] == "2026-01-01T00:00:00+00:00"


def test_journal_rejects_malformed_events(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    for bad in ({"trial": 1}, {"event": "started", "trial": "1", "stage": "s", "params": {}},
                {"event": "started", "trial": 1, "params": {}},
                {"event": "finished", "trial": 1, "status": "done"},
                {"event": "finished", "trial": 1, "status": "completed", "error": float("nan")}):
        with pytest.raises(ValueError):
            journal.append(bad)
    assert not journal.path.exists() or journal.path.read_text() == ""


_COUNTS = ("flash_bytes", "ram_bytes", "macs")
_MEASURES = ("error", "latency_ms", "train_seconds", "sparsity", "test_error")
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5)
                     | st.floats(allow_nan=False, allow_infinity=False),
                     lambda inner: st.lists(inner, max_size=2)
                     | st.dictionaries(st.text(max_size=3), inner, max_size=2), max_leaves=4)


def _fits(field: str, value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return value is None
    return isinstance(value, int) or (field in _MEASURES and isinstance(value, float))


@FIXTURE
@given(field=st.sampled_from(_COUNTS + _MEASURES), value=_JSON)
def test_a_measure_of_the_wrong_type_is_a_damaged_line(tmp_path: Path, field: str,
                                                      value: Any) -> None:
    """A finished event with `"error": "x"` made `report` and `show` fail with an
    internal error; now reading the journal says which line and field."""
    path = tmp_path / "journal.jsonl"
    path.write_text(json.dumps(started(0)) + "\n" + json.dumps(finished(0, **{field: value}))
                    + "\n")
    if _fits(field, value):
        assert getattr(Journal(path).trials()[0], field, None) in (value, None)
        return
    with pytest.raises(ResultsError, match=rf"journal\.jsonl:2: not a journal event \(its "
                                           rf"'{field}' must be (a number|an integer) or null"):
        Journal(path).records()


def test_events_of_a_search_and_of_a_run_are_checked(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    for bad in ({"event": "search", "experiment_hash": "e", "arch_hash": "a"},
                {"event": "search", "experiment_hash": 1, "arch_hash": "a", "settings": {}},
                {"event": "run"}, {"event": "run", "seconds": "10"},
                {**started(0), "params": {"a": [1]}}, {**started(0), "parent": "1"}):
        with pytest.raises(ValueError):
            journal.append(bad)


def test_a_torn_last_line_is_ignored_then_cut(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(started(0))
    whole = journal.path.read_bytes()
    torn = json.dumps(finished(0)).encode()[:17]
    journal.path.write_bytes(whole + torn)  # the crash: half a line, no newline
    assert len(journal.records()) == 1
    assert journal.trials()[0].status == "interrupted"
    Journal(journal.path).append(finished(0, error=0.5))
    assert [r["event"] for r in journal.records()] == ["started", "finished"]
    assert journal.path.read_bytes().startswith(whole + b'{"event": "finished"')


def test_a_damaged_middle_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"event": "started", "trial": 0, "stage": "sobol", "params": {}}\n'
                    "garbage\n{}\n")
    with pytest.raises(ResultsError, match=r"journal\.jsonl:2: not a journal event"):
        Journal(path).records()


@FIXTURE
@given(texts=st.lists(st.text(max_size=20), min_size=1, max_size=6),
       cut=st.floats(0, 1, exclude_max=True))
def test_a_crash_at_any_byte_keeps_a_prefix(tmp_path: Path, texts: list[str], cut: float) -> None:
    path = tmp_path / "crash.jsonl"
    path.unlink(missing_ok=True)
    for text in texts:
        Journal(path).append({"event": "note", "text": text})
    data = path.read_bytes()
    path.write_bytes(data[: int(cut * len(data))])  # the crash
    kept = [r["text"] for r in Journal(path).records()]
    assert kept == texts[: len(kept)]
    Journal(path).append({"event": "note", "text": "after"})
    assert [r["text"] for r in Journal(path).records()] == [*kept, "after"]


def test_trials_merge_events(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    for event in [
        started(0, a=1), started(1, a=2),
        finished(0, error=0.1, flash_bytes=1000, ram_bytes=500, macs=9, latency_ms=1.5,
                 train_seconds=3.0, sparsity=0.4, val_error=0.12),
        {**finished(1, "infeasible"), "reason": "does not fit: RAM 70 KB > 64 KB"},
        {**started(2, "morph", a=3), "parent": 0, "changes": ["a: 1 -> 3"]},
        started(3, a=4),  # killed mid-trial
        {"event": "tested", "trial": 0, "test_error": 0.11},
        {"event": "stage", "stage": "bo"},  # not about one trial: ignored here
        started(4, a=5), started(4, a=6), finished(4, "failed", reason="CUDA out of memory"),
    ]:
        journal.append(event)
    trials = journal.trials()
    assert [(t.id, t.status) for t in trials] == [
        (0, "completed"), (1, "infeasible"), (2, "interrupted"), (3, "interrupted"), (4, "failed")
    ]
    first = trials[0]
    assert (first.error, first.flash_bytes, first.ram_bytes, first.macs, first.latency_ms,
            first.train_seconds, first.sparsity) == (0.1, 1000, 500, 9, 1.5, 3.0, 0.4)
    assert first.extra == {"val_error": 0.12, "test_error": 0.11}
    assert first.objective("flash") == 1000 and first.finished is not None
    assert trials[1].reason == "does not fit: RAM 70 KB > 64 KB"
    assert (trials[2].parent, trials[2].extra) == (0, {"changes": ["a: 1 -> 3"]})
    assert trials[4].params == {"a": 6}  # the re-run replaced the first attempt
    assert journal.trial(4) == trials[4]
    with pytest.raises(ResultsError, match="no trial 9"):
        journal.trial(9)
    journal.append(finished(7))
    with pytest.raises(ResultsError, match="trial 7, which never started"):
        journal.trials()


# --- CSV ------------------------------------------------------------------------------------


def test_csv_columns_and_units(tmp_path: Path) -> None:
    trials = [
        Trial(1, "bo", {"b": True, "a": 2}, 0, "infeasible", reason="too big"),
        Trial(0, "sobol", {"a": 1, "c": "x"}, None, "completed", error=0.125,
              flash_bytes=2048, ram_bytes=1536, macs=1000, latency_ms=2.5, train_seconds=10.25,
              sparsity=0.5),
    ]
    write_csv(trials, tmp_path / "trials.csv")
    with open(tmp_path / "trials.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [*CSV_COLUMNS, "a", "c", "b"]
    assert rows[0][:12] == ["id", "stage", "status", "reason", "error_pct", "flash_kb", "ram_kb",
                            "macs", "latency_ms", "train_seconds", "sparsity_pct", "parent"]
    assert rows[1] == ["0", "sobol", "completed", "", "12.5", "2.0", "1.5", "1000", "2.5",
                       "10.25", "50.0", "", "1", "x", ""]
    assert rows[2] == ["1", "bo", "infeasible", "too big", "", "", "", "", "", "", "", "0",
                       "2", "", "True"]


# --- networks -------------------------------------------------------------------------------


def test_network_save_load_prune(tmp_path: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    source = "arch a(input: image(1, 8, 8), classes = 2)\n"
    for trial in (1, 2, 3):
        save_network(tmp_path, trial, net.state_dict(), {"layer": trial}, source, {"val": 0.5})
    assert saved_networks(tmp_path) == [1, 2, 3]
    record = load_network_record(tmp_path, 2, arch_source=source)
    assert (record.trial, record.params, record.extra) == (2, {"layer": 2}, {"val": 0.5})
    assert record.arch_sha256 == sha256_text(source)
    assert record.state_dict.keys() == net.state_dict().keys()
    assert all(torch.equal(record.state_dict[k], v) for k, v in net.state_dict().items())
    with pytest.raises(ResultsError, match="another version of the .arch file"):
        load_network_record(tmp_path, 2, arch_source=source + "# edited\n")
    (tmp_path / "networks" / "trial-9.pt").write_bytes(b"orphan")  # a crash between the files
    assert prune_networks(tmp_path, {2}) == [1, 3, 9]
    assert sorted(p.name for p in (tmp_path / "networks").iterdir()) == [
        "trial-2.json", "trial-2.pt"
    ]
    with pytest.raises(ResultsError, match=r"no network of trial 1 is saved .* \(saved: 2\)"):
        load_network_record(tmp_path, 1)


def test_a_damaged_network_is_an_error(tmp_path: Path) -> None:
    save_network(tmp_path, 0, {"w": torch.zeros(2)}, {}, "", {})
    (tmp_path / "networks" / "trial-0.pt").write_bytes(b"not a torch file")
    with pytest.raises(ResultsError, match="trial-0: cannot read the saved network"):
        load_network_record(tmp_path, 0)


# --- state ----------------------------------------------------------------------------------


def test_state_round_trip(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    fresh = load_state(tmp_path / "new", "e" * 64, "a" * 64, {"seed": 0})
    assert fresh == State("e" * 64, "a" * 64, {"seed": 0})
    fresh.next_trial, fresh.progress, fresh.seconds = 5, {"sobol": 5}, 12.5
    save_state(tmp_path / "new", fresh)
    assert (tmp_path / "new" / "state.json").stat().st_size < 4096
    assert read_state(tmp_path / "new") == fresh


SEARCH = search_event(State("e" * 64, "a" * 64, {"seed": 0}))


@pytest.mark.parametrize("cache", ["missing", "stale", "damaged"])
def test_the_state_is_rebuilt_from_the_journal(tmp_path: Path, cache: str) -> None:
    """The journal is the truth: next_trial follows its last id whatever state.json says,
    so that no id is ever given twice (it was 0 with state.json deleted)."""
    journal = Journal(tmp_path / "journal.jsonl")
    for event in [SEARCH, started(0), finished(0), started(1), finished(1, "failed"),
                  {"event": "run", "seconds": 10.0}, started(2, "bo"), started(3, "bo"),
                  finished(3), started(2, "bo")]:  # 2 interrupted, then run again
        journal.append({**event, "time": "2026-11-29T12:00:00+00:00"})  # the last run: 0 s
    if cache != "missing":
        save_state(tmp_path, State("e" * 64, "a" * 64, {"seed": 0}, next_trial=1))
    if cache == "damaged":
        (tmp_path / "state.json").write_text("{")
    state = load_state(tmp_path, "e" * 64, "a" * 64, {"seed": 0}, journal.records())
    assert state == State("e" * 64, "a" * 64, {"seed": 0}, next_trial=4,
                          progress={"sobol": 2, "bo": 2}, seconds=10.0)
    with pytest.raises(ResumeError, match="the .arch source"):  # the journal's identity
        load_state(tmp_path, "e" * 64, "b" * 64, {"seed": 0}, journal.records())


def test_a_journal_without_its_first_event_keeps_the_state_identity(tmp_path: Path) -> None:
    """Journals of the earlier format: the identity and time come from state.json."""
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(started(0))
    save_state(tmp_path, State("e" * 64, "a" * 64, {"seed": 0}, seconds=7.0))
    state = load_state(tmp_path, "e" * 64, "a" * 64, {"seed": 0}, journal.records())
    assert (state.next_trial, state.seconds) == (1, 7.0)
    with pytest.raises(ResumeError):
        load_state(tmp_path, "f" * 64, "a" * 64, {"seed": 1}, journal.records())


def test_a_damaged_state_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    for text, wanted in [("{", "cannot read the search state"), ('{"format": 99}', "format 1"),
                         ('{"format": 1, "x": 2}', "not a search state")]:
        path.write_text(text)
        with pytest.raises(ResultsError, match=wanted):
            read_state(tmp_path)


def test_resume_says_what_changed(tmp_path: Path) -> None:
    (tmp_path / "space.arch").touch()
    path = tmp_path / "exp.toml"
    path.write_text('arch = "space.arch"\n[data]\ndataset = "digits"\n[stages]\nsobol = 12\n')
    first = load_experiment(path)
    save_state(first.results, State(experiment_hash(first), "a1", canonical_settings(first)))
    path.write_text(path.read_text().replace("sobol = 12", "sobol = 20\nepochs = [1, 5, 3]\n"
                                                           "[target]\nname = 'x'"))
    second = load_experiment(path)
    with pytest.raises(ResumeError) as raised:
        load_state(second.results, experiment_hash(second), "a2", canonical_settings(second))
    message = str(raised.value)  # a raised budget is no change that stops a resume
    assert ('stages.epochs: [5, 5, 3] -> [1, 5, 3]; target.name: unset -> "x"; the .arch '
            'source. Use a new results directory') in message
    assert "the stage budgets and [stopping] may change" in message
    with pytest.raises(ResumeError, match="changed since it started: the .arch source"):
        load_state(first.results, experiment_hash(first), "a2", canonical_settings(first))
    assert load_state(first.results, experiment_hash(first), "a1").arch_hash == "a1"


def test_raised_budgets_and_new_stopping_rules_resume_and_are_journalled(
        tmp_path: Path) -> None:
    """A directory of any age resumes when only extendable settings changed: its first
    event holds the settings (and the hash of them all, as before extending existed)."""
    (tmp_path / "space.arch").touch()
    path = tmp_path / "exp.toml"
    path.write_text('arch = "space.arch"\n[data]\ndataset = "digits"\n[stages]\nsobol = 12\n')
    first = load_experiment(path)
    old = search_event(State(experiment_hash(first), "a1", canonical_settings(first)))
    records = [{**old, "time": "2026-11-29T12:00:00+00:00"}]
    assert extension(records, canonical_settings(first)) is None  # unchanged: nothing to add
    path.write_text(path.read_text().replace("sobol = 12", "sobol = 20\nbo_batch = 2\n"
                                             "[stopping]\nmax_minutes = 5"))
    second = load_experiment(path)
    state = load_state(second.results, experiment_hash(second), "a1", canonical_settings(second),
                       records)
    assert state.settings == canonical_settings(second)
    event = extension(records, state.settings)
    assert event is not None and event["changes"] == [
        "stages.sobol: 12 -> 20", "stages.bo_batch: 4 -> 2", "stopping.window: unset -> 10",
        "stopping.max_minutes: unset -> 5.0"]
    assert current_settings([*records, event]) == (1, canonical_settings(second))
    assert extension([*records, event], canonical_settings(second)) is None


# --- Pareto front ---------------------------------------------------------------------------

_VALUE = st.none() | st.integers(0, 3)
_TRIAL = st.tuples(st.sampled_from(["completed", "completed", "failed", "interrupted"]),
                   _VALUE, _VALUE, _VALUE, _VALUE)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(_TRIAL, max_size=12),
       objectives=st.lists(st.sampled_from(["error", "flash", "ram", "latency"]), min_size=1,
                           max_size=4, unique=True))
def test_pareto_front_is_the_non_dominated_set(
    rows: list[tuple[str, int | None, int | None, int | None, int | None]], objectives: list[str]
) -> None:
    trials = [Trial(k, "sobol", {}, None, status, error=None if e is None else e / 4,
                    flash_bytes=f, ram_bytes=r, latency_ms=lat)
              for k, (status, e, f, r, lat) in enumerate(rows)]
    candidates = [t for t in trials if t.status == "completed"
                  and all(t.objective(o) is not None for o in objectives)]

    def dominated(t: Trial) -> bool:
        return any(all(s.objective(o) <= t.objective(o) for o in objectives)  # type: ignore[operator]
                   and any(s.objective(o) < t.objective(o) for o in objectives)  # type: ignore[operator]
                   for s in candidates)

    expected = [t.id for t in candidates if not dominated(t)]
    assert [t.id for t in pareto_front(trials, objectives)] == expected
    fields = [OBJECTIVE_FIELDS[o] for o in objectives]
    assert pareto_front(reversed(trials), fields) == pareto_front(trials, objectives)


def test_pareto_front_keeps_ties_and_skips_nan() -> None:
    twins = [Trial(k, "bo", {}, None, "completed", error=0.1, flash_bytes=10) for k in (3, 1)]
    nan = Trial(5, "bo", {}, None, "completed", error=float("nan"), flash_bytes=1)
    assert [t.id for t in pareto_front([*twins, nan], ["error", "flash"])] == [1, 3]
    with pytest.raises(ValueError, match="objectives must be some of"):
        pareto_front(twins, ["accuracy"])
