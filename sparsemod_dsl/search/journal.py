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


def _check_event(record: object) -> None:
    """Raise ValueError unless `record` is an event of the journal format."""
    if not isinstance(record, Mapping) or not isinstance(record.get("event"), str):
        raise ValueError("an event is a JSON object with an 'event' name")
    event = record["event"]
    trial = record.get("trial")
    if (event in ("started", "finished") or trial is not None) and type(trial) is not int:
        raise ValueError(f"a {event} event needs an integer 'trial'")
    if event == "started" and not (
        isinstance(record.get("stage"), str) and isinstance(record.get("params"), dict)
    ):
        raise ValueError("a started event needs a 'stage' string and a 'params' object")
    if event == "finished" and record.get("status") not in FINISHED:
        raise ValueError(f"a finished event's 'status' is one of {', '.join(FINISHED)}")


def _drop_torn_tail(fd: int) -> None:
    """Cut a last line that a crash left without its newline, so appends stay whole lines."""
    size = os.fstat(fd).st_size
    end = os.pread(fd, size, 0).rfind(b"\n") + 1
    if end < size:
        os.ftruncate(fd, end)
