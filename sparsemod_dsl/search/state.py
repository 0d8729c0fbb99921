"""Where a search stands (`state.json`), and whether a results directory may be resumed.

The journal is the one source of truth: its first event (`SEARCH_EVENT`) says what
the directory is a search of (experiment and `.arch` hashes, canonical settings), an
`EXTEND_EVENT` each later change of the settings a search may change and go on
(`identity.EXTENDABLE`: stage budgets, stopping rules),
its trial events how far the search got, a `RUN_START_EVENT` begins every run and
a `RUN_EVENT` ends every run that was not killed, with its time. `load_state`
rebuilds the state from the journal, refuses to go on with a search of something
else (and says what changed), and never hands out a trial id the journal has used.
`state.json` is a cache of that state for readers; a missing, stale or damaged one
is rebuilt. A journal written before the first event
existed is resumed with its `state.json`'s identity.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import UsageError
from .identity import extendable
from .journal import RUN_EVENT, RUN_START_EVENT, SEARCH_EVENT
from .results import STATE, ResultsError, write_atomic

#: Version of the state format; a state of another version is not resumed.
FORMAT = 1
#: The journal event of a re-run whose extendable settings changed (raised budgets, other
#: stopping rules): what changed (`changes`) and the settings from then on (`settings`).
EXTEND_EVENT = "extended"


class ResumeError(UsageError):
    """A results directory that belongs to another experiment or `.arch` file (exit 2:
    the command asks for something the directory cannot give)."""


@dataclass
class State:
    """Where a search stands (`state.json`, a few KB), and what it is a search of.

    Attributes:
        experiment_hash: `experiment.experiment_hash` of the experiment file.
        arch_hash: sha256 of the `.arch` source (`sha256_text`).
        settings: the experiment's canonical settings, to say what changed on resume.
        next_trial: the id the next new trial gets: one more than the journal's last.
        progress: the trials started per stage, e.g. {"sobol": 12, "bo": 8}.
        seconds: wall-clock time spent searching, over all completed runs, in seconds.
    """

    experiment_hash: str
    arch_hash: str
    settings: dict[str, Any] = field(default_factory=dict)
    next_trial: int = 0
    progress: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def save_state(results_dir: Path | str, state: State) -> None:
    """Write `state.json` atomically (the results directory is created if needed)."""
    folder = Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / STATE, json.dumps({"format": FORMAT, **asdict(state)}, indent=1) + "\n")


def read_state(results_dir: Path | str) -> State | None:
    """The saved state as it is, or None when the directory holds none.

    Raises:
        ResultsError: `state.json` is unreadable or not a state of this format.
    """
    path = Path(results_dir) / STATE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ResultsError(f"{path}: cannot read the search state: {error}") from None
    if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
        raise ResultsError(f"{path}: not a search state of format {FORMAT}: start the search "
                           "in a new results directory")
    try:
        return State(**data)
    except TypeError as error:
        raise ResultsError(f"{path}: not a search state: {error}") from None


def search_event(state: State) -> dict[str, Any]:
    """The journal's first event: what `state` is a search of."""
    return {"event": SEARCH_EVENT, "format": FORMAT, "experiment_hash": state.experiment_hash,
            "arch_hash": state.arch_hash, "settings": state.settings}


def load_state(results_dir: Path | str, experiment_hash: str, arch_hash: str,
               settings: Mapping[str, Any] | None = None,
               records: Sequence[Mapping[str, Any]] = ()) -> State:
    """The state to go on from, rebuilt from the journal's `records`.

    Args:
        experiment_hash, arch_hash: what the search to run is a search of.
        settings: its canonical settings, kept in the state and compared with the
            saved ones to say what changed.
        records: the journal's events (`Journal.records`).

    Raises:
        ResumeError: the directory holds a search of another experiment or `.arch`
            source; the message says what changed.
        ResultsError: the journal has no `SEARCH_EVENT` and `state.json` is damaged.
    """
    first = next((r for r in records if r["event"] == SEARCH_EVENT), None)
    saved = _saved_search(first) if first is not None else read_state(results_dir)
    if saved is not None:
        _check_same_search(results_dir, saved, experiment_hash, arch_hash, settings)
    started = {r["trial"]: r["stage"] for r in records if r["event"] == "started"}
    return State(experiment_hash, arch_hash, dict(settings or {}),
                 next_trial=max(started, default=-1) + 1, progress=dict(Counter(started.values())),
                 seconds=spent_seconds(results_dir, records))


def spent_seconds(results_dir: Path | str, records: Sequence[Mapping[str, Any]]) -> float:
    """The seconds a search spent over all its runs, killed ones included.

    A run that ended normally counts the `seconds` of its `RUN_EVENT`; a run killed
    (or stopped by an error) before writing it counts from its first event to its last
    (to the second: the journal's times), so that the time of a resumed search is the
    time of every run. A journal without its first event adds `state.json`'s count.
    """
    seconds = _clock(records)[0]
    if not any(r["event"] == SEARCH_EVENT for r in records):
        saved = read_state(results_dir)
        seconds += saved.seconds if saved is not None else 0.0
    return seconds


def finish_seconds(records: Sequence[Mapping[str, Any]]) -> dict[int, float]:
    """The search time (as `spent_seconds` counts it, without the time between runs) at
    which each trial finished, by trial id: for plotting progress against time."""
    return _clock(records)[1]


def _clock(records: Sequence[Mapping[str, Any]]) -> tuple[float, dict[int, float]]:
    """The seconds of all runs together, and the search time at each `finished` event."""
    done, span, finished = 0.0, None, {}
    for record in records:
        if record["event"] == RUN_EVENT:
            done, span = done + float(record["seconds"]), None
            continue
        if record["event"] == RUN_START_EVENT and span is not None:  # the last run was killed
            done, span = done + span[1] - span[0], None
        moment = _moment(record.get("time"))
        if moment is not None:
            span = (span[0] if span else moment, moment)
            if record["event"] == "finished":
                finished[record["trial"]] = done + span[1] - span[0]
    return done + (span[1] - span[0] if span else 0.0), finished


def runs(records: Sequence[Mapping[str, Any]]) -> int:
    """How many runs the journal tells of: its `RUN_START_EVENT`s, or at least one."""
    return max(1, sum(r["event"] == RUN_START_EVENT for r in records)) if records else 0


def _moment(time: object) -> float | None:
    """An event's ISO 8601 `time` as a POSIX timestamp; None when absent or unreadable."""
    try:
        return datetime.fromisoformat(time).timestamp() if isinstance(time, str) else None
    except ValueError:
        return None


def _saved_search(event: Mapping[str, Any]) -> State:
    return State(event["experiment_hash"], event["arch_hash"], dict(event["settings"]))


def _check_same_search(results_dir: Path | str, saved: State, experiment_hash: str,
                       arch_hash: str, settings: Mapping[str, Any] | None) -> None:
    """Refuse a search of something else: a change of the `.arch` source or of a setting
    that earlier trials depend on (any but the `extendable` ones), naming it. Saved
    settings that are unknown (a very old `state.json`) count as changed."""
    changes = []
    if saved.experiment_hash != experiment_hash:
        changes = [text for key, text in _changes(saved.settings, settings or {}).items()
                   if not extendable(key)]
        if not saved.settings:
            changes = changes or ["the experiment settings"]
    if saved.arch_hash != arch_hash:
        changes.append("the .arch source")
    if changes:
        raise ResumeError(
            f"{results_dir} holds a search that this experiment cannot resume; changed since "
            f"it started: {'; '.join(changes)}. Use a new results directory (the `results` "
            "key of the experiment file), or restore the old settings to resume (the stage "
            "budgets and [stopping] may change: that extends the search)"
        )


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, str]:
    """Each dotted key whose setting differs -> `key: old -> new`."""
    before, after = _flatten(old), _flatten(new)
    keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
    return {k: f"{k}: {_show(before.get(k))} -> {_show(after.get(k))}" for k in keys}


def current_settings(records: Sequence[Mapping[str, Any]]) -> tuple[int, dict[str, Any]]:
    """Where the search's current settings begin (the index of its latest `SEARCH_EVENT`
    or `EXTEND_EVENT` in `records`; -1 for none) and what they are."""
    for index in range(len(records) - 1, -1, -1):
        if records[index]["event"] in (SEARCH_EVENT, EXTEND_EVENT):
            return index, dict(records[index]["settings"])
    return -1, {}


def extension(records: Sequence[Mapping[str, Any]],
              settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `EXTEND_EVENT` to journal when `settings` differ from the search's current ones
    (only extendable keys can: `load_state` refuses the others), or None."""
    index, current = current_settings(records)
    changes = list(_changes(current, settings).values()) if index >= 0 else []
    return {"event": EXTEND_EVENT, "changes": changes, "settings": dict(settings)} \
        if changes else None


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show(value: Any) -> str:
    return "unset" if value is None else json.dumps(value)
