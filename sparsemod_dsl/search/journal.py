"""The journal of a search: the append-only log of trial events (`journal.jsonl`).

Every trial is told by its events (started, finished, and any others the engine
adds), one JSON object per line; `Journal` appends them crash-safely and merges
them back into `trials.Trial` records. It is the source of truth of a results
directory: the CSV table and the Pareto front are computed from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from .results import ResultsError
from .trials import FINISHED, Trial


def now() -> str:
    """The local time with its UTC offset, to the second, ISO 8601."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


#: The fields of a finished event that are `Trial` fields; its others go to `extra`.
RESULT_FIELDS = ("status", "reason", "error", "flash_bytes", "ram_bytes", "macs", "latency_ms",
                 "train_seconds", "sparsity")


class Journal:
    """The append-only JSON Lines log of trial events (`journal.jsonl`)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._repaired = False

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one event as one line, flushed and fsynced; adds `time` if absent.

        Raises:
            ValueError: not an event of the journal format (a bug of the caller).
        """
        try:
            _check_event(record)
        except ValueError as error:
            raise ValueError(f"{error}: {record!r}") from None
        line = json.dumps({**record, "time": record.get("time") or now()},
                          ensure_ascii=False, allow_nan=False) + "\n"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            if not self._repaired:
                _drop_torn_tail(fd)
                self._repaired = True
            data = line.encode("utf-8")
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        """Every complete event, in order (a torn last line, from a crash, is ignored).

        Raises:
            ResultsError: a complete line is not a JSON object.
        """
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        lines = text.split("\n")[:-1]  # the part after the last newline is not committed
        found = []
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                _check_event(record)
            except ValueError as error:  # JSONDecodeError is a ValueError
                raise ResultsError(f"{self.path}:{number}: not a journal event ({error}): "
                                   f"{line[:80]!r}") from None
            found.append(record)
        return found

    def trials(self) -> list[Trial]:
        """One `Trial` per id, in id order, merged from the events.

        A `started` event for an id already seen (a re-run) replaces that id's earlier
        events; a trial started but never finished is "interrupted". Any other event
        with a `trial` id adds its fields to that trial's `extra`.
        """
        trials: dict[int, Trial] = {}
        for number, record in enumerate(self.records(), 1):
            event, trial_id = record["event"], record.get("trial")
            rest = {k: v for k, v in record.items() if k not in ("event", "trial", "time")}
            if event == "started":
                extra = {k: v for k, v in rest.items() if k not in ("stage", "params", "parent")}
                trials[record["trial"]] = Trial(
                    id=record["trial"], stage=record["stage"], params=dict(record["params"]),
                    parent=record.get("parent"), status="interrupted",
                    started=record.get("time"), extra=extra,
                )
            elif trial_id is not None:
                if trial_id not in trials:
                    raise ResultsError(f"{self.path}:{number}: a {event} event of trial "
                                       f"{trial_id}, which never started")
                trial = trials[trial_id]
                if event == "finished":
                    measured = {k: rest.pop(k) for k in RESULT_FIELDS if k in rest}
                    trial = replace(trial, **measured, finished=record.get("time"))
                trials[trial_id] = replace(trial, extra={**trial.extra, **rest})
        return [trials[k] for k in sorted(trials)]

    def trial(self, trial_id: int) -> Trial:
        """The trial with this id (ResultsError if the journal has none)."""
        for trial in self.trials():
            if trial.id == trial_id:
                return trial
        raise ResultsError(f"{self.path}: no trial {trial_id}")


#: The journal event that says what a search is a search of; the first event of a journal.
SEARCH_EVENT = "search"
#: The journal event that ends a run of a search, with its wall-clock `seconds`.
RUN_EVENT = "run"
#: The journal event that begins a run, so that a run killed before its `RUN_EVENT`
#: still counts, up to its last event (`state.spent_seconds`).
RUN_START_EVENT = "run_started"
#: The fields each event must have.
_REQUIRED = {"started": ("trial", "stage", "params"), "finished": ("trial", "status"),
             SEARCH_EVENT: ("experiment_hash", "arch_hash", "settings"), RUN_EVENT: ("seconds",)}
_NUMBER = ("a number", (int, float))
_COUNT = ("an integer", (int,))
_TEXT = ("a string", (str,))
#: What the value of each known field is, when present (null allowed for measures).
_FIELDS: dict[str, tuple[tuple[str, tuple[type, ...]], bool]] = {
    "trial": (_COUNT, True), "stage": (_TEXT, False), "params": (("an object", (dict,)), False),
    "parent": (_COUNT, True), "changes": (("an array", (list,)), False),
    "epochs": (_COUNT, False), "status": (_TEXT, False), "reason": (_TEXT, True),
    "time": (_TEXT, True), "seconds": (_NUMBER, False), "format": (_COUNT, False),
    "experiment_hash": (_TEXT, False), "arch_hash": (_TEXT, False),
    "settings": (("an object", (dict,)), False),
    "network": (_COUNT, False), "seed": (_COUNT, False), "val_error": (_NUMBER, True),
    "curves": (("an array", (list,)), False), "epochs_run": (_COUNT, False),
    "scores": (("an array", (list,)), False), "test_scores": (("an array", (list,)), False),
    **{name: (_COUNT, True) for name in ("flash_bytes", "ram_bytes", "macs")},
    **{name: (_NUMBER, True) for name in ("error", "latency_ms", "train_seconds", "sparsity",
                                          "test_error")},
}


def _check_event(record: object) -> None:
    """Raise ValueError unless `record` is an event of the journal format, every known
    field of it of its type (so that readers never meet a string where a number goes)."""
    if not isinstance(record, Mapping) or not isinstance(record.get("event"), str):
        raise ValueError("an event is a JSON object with an 'event' name")
    event = record["event"]
    missing = [repr(k) for k in _REQUIRED.get(event, ()) if record.get(k) is None]
    if missing:
        raise ValueError(f"a {event} event needs {' and '.join(missing)}")
    for key, value in record.items():
        if key in _FIELDS:
            (kind, types), nullable = _FIELDS[key]
            if not (value is None and nullable) and (
                    isinstance(value, bool) or not isinstance(value, types)):
                raise ValueError(f"its '{key}' must be {kind}{' or null' if nullable else ''}, "
                                 f"not {json.dumps(value)[:40]}")
    params = record.get("params", {})
    if any(not isinstance(v, (str, int, float, bool)) for v in params.values()):
        raise ValueError("its 'params' must map names to numbers, strings or booleans")
    if event == "finished" and record["status"] not in FINISHED:
        raise ValueError(f"a finished event's 'status' is one of {', '.join(FINISHED)}")


def _drop_torn_tail(fd: int) -> None:
    """Cut a last line that a crash left without its newline, so appends stay whole lines."""
    size = os.fstat(fd).st_size
    end = os.pread(fd, size, 0).rfind(b"\n") + 1
    if end < size:
        os.ftruncate(fd, end)
