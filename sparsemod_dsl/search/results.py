"""The results directory of a search: journal, state, CSV table and saved networks.

A search may be killed at any moment and resumed, so every file here is written
atomically (`write_atomic`) or, for the journal, appended one whole line at a
time: a reader never sees half a file, and a record counts once its line ends
with a newline. The format is described in docs/results.md.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import pickle
import re
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import SparsemodError
from ..lang.ir import Scalar

JOURNAL = "journal.jsonl"
STATE = "state.json"
CSV = "trials.csv"
#: What the search recorded about its space, data and target, for `report` and `show`.
SETUP = "setup.json"
NETWORKS = "networks"

#: Version of the state format; a state of another version is not resumed.
FORMAT = 1
#: Statuses of a finished trial; a started trial that never finished is "interrupted".
FINISHED = ("completed", "infeasible", "failed")
#: Objective (as in the experiment file) -> the `Trial` field that measures it.
OBJECTIVE_FIELDS = {"error": "error", "flash": "flash_bytes", "ram": "ram_bytes",
                    "latency": "latency_ms"}

# The process umask, for the mode of new files (reading it means setting it).
_UMASK = os.umask(0)
os.umask(_UMASK)


class ResultsError(SparsemodError):
    """A results directory whose files are damaged or lack what was asked for."""


class ResumeError(SparsemodError):
    """A results directory that belongs to another experiment or `.arch` file."""


def write_atomic(path: Path | str, data: str | bytes) -> None:
    """Replace `path` with `data` so that readers never see a half-written file.

    Writes a temporary file in the same folder, fsyncs it and renames it over
    `path`; on any failure the old file is left as it was and the temporary
    file is removed. An existing file keeps its permissions.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_UMASK
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_text(text: str) -> str:
    """The hex sha256 of text encoded as UTF-8 (how `.arch` sources are identified)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def now() -> str:
    """The local time with its UTC offset, to the second, ISO 8601."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class Trial:
    """One trial as the journal tells it; metrics in bytes, ms, s and fractions."""

    id: int
    stage: str
    params: dict[str, Scalar]
    parent: int | None
    status: str
    started: str | None = None
    finished: str | None = None
    reason: str | None = None
    error: float | None = None
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    macs: int | None = None
    latency_ms: float | None = None
    train_seconds: float | None = None
    sparsity: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def objective(self, name: str) -> float | None:
        """The value of an objective named as in the experiment file (`flash`: bytes)."""
        value: float | None = getattr(self, OBJECTIVE_FIELDS[name])
        return value


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


def write_csv(trials: Iterable[Trial], path: Path | str) -> None:
    """The trials as a CSV table, one row each, in real units (%, KB = 1024 bytes, ms, s).

    Columns: the fixed ones of `CSV_COLUMNS`, then one per readable parameter
    (in order of first appearance); an inactive parameter's cell is empty.
    """
    trials = sorted(trials, key=lambda t: t.id)
    params = list(dict.fromkeys(name for t in trials for name in t.params))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *params])
    for t in trials:
        row = [t.id, t.stage, t.status, t.reason, _scaled(t.error, 100),
               _scaled(t.flash_bytes, 1 / 1024), _scaled(t.ram_bytes, 1 / 1024), t.macs,
               _scaled(t.latency_ms, 1), _scaled(t.train_seconds, 1),
               _scaled(t.sparsity, 100), t.parent]
        writer.writerow([*row, *(t.params.get(name) for name in params)])
    write_atomic(path, out.getvalue())


CSV_COLUMNS = ("id", "stage", "status", "reason", "error_pct", "flash_kb", "ram_kb", "macs",
               "latency_ms", "train_seconds", "sparsity_pct", "parent")


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else round(value * factor, 4)


def pareto_front(trials: Iterable[Trial], objectives: Sequence[str]) -> list[Trial]:
    """The completed trials that no other completed trial dominates, in id order.

    Args:
        objectives: minimised objectives, named as in the experiment file (`error`,
            `flash`, `ram`, `latency`) or as `Trial` fields (`flash_bytes`, ...).

    A trial dominates another when it is no worse in every objective and better in
    one; trials with equal objectives are all kept. A trial missing an objective
    (None or NaN) is not on the front.
    """
    names = [OBJECTIVE_FIELDS.get(o, o) for o in objectives]
    unknown = sorted(set(names) - set(OBJECTIVE_FIELDS.values()))
    if unknown or not names:
        raise ValueError(f"objectives must be some of {list(OBJECTIVE_FIELDS)}, got {objectives}")
    scored = []
    for trial in trials:
        values = [getattr(trial, n) for n in names]
        if trial.status == "completed" and all(v is not None and not math.isnan(v) for v in values):
            scored.append((trial, values))

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and a != b

    front = [t for t, v in scored if not any(dominates(w, v) for _, w in scored)]
    return sorted(front, key=lambda t: t.id)


@dataclass(frozen=True)
class NetworkRecord:
    """A saved network: its trial, point, `.arch` hash, extra facts and float weights."""

    trial: int
    params: dict[str, Scalar]
    arch_sha256: str
    extra: dict[str, Any]
    state_dict: dict[str, Any]


def _network_files(results_dir: Path | str, trial_id: int) -> tuple[Path, Path]:
    folder = Path(results_dir) / NETWORKS
    return folder / f"trial-{trial_id}.pt", folder / f"trial-{trial_id}.json"


def save_network(results_dir: Path | str, trial_id: int, state_dict: Mapping[str, Any],
                 params: Mapping[str, Scalar], arch_source: str,
                 extra: Mapping[str, Any]) -> None:
    """Save a trial's float weights (`networks/trial-ID.pt`) and record (`.json`).

    The weights are written first: a network is saved once its `.json` exists.
    """
    import torch  # noqa: PLC0415

    weights, record = _network_files(results_dir, trial_id)
    weights.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buffer)
    write_atomic(weights, buffer.getvalue())
    write_atomic(record, json.dumps({"trial": trial_id, "params": dict(params),
                                     "arch_sha256": sha256_text(arch_source),
                                     "extra": dict(extra)}, indent=1) + "\n")


def saved_networks(results_dir: Path | str) -> list[int]:
    """The ids of the trials whose networks are saved, ascending."""
    folder = Path(results_dir) / NETWORKS
    ids = (re.fullmatch(r"trial-(\d+)\.json", p.name) for p in folder.glob("trial-*.json"))
    return sorted(int(m.group(1)) for m in ids if m)


def load_network_record(results_dir: Path | str, trial_id: int,
                        arch_source: str | None = None) -> NetworkRecord:
    """The saved network of a trial.

    Raises:
        ResultsError: no network saved for that trial, or `arch_source` is given and
            is not the `.arch` source the network was built from.
    """
    import torch  # noqa: PLC0415

    weights, path = _network_files(results_dir, trial_id)
    if not path.exists():
        saved = ", ".join(map(str, saved_networks(results_dir))) or "none"
        raise ResultsError(f"no network of trial {trial_id} is saved in {path.parent} "
                           f"(saved: {saved})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        # weights_only: tensors are read, no code is unpickled
        state_dict = torch.load(weights, map_location="cpu", weights_only=True)
        record = NetworkRecord(trial_id, data["params"], data["arch_sha256"], data["extra"],
                               state_dict)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError
            ) as error:  # what json and torch raise for damaged files
        raise ResultsError(f"{path.with_suffix('')}: cannot read the saved network: "
                           f"{type(error).__name__}: {error}") from None
    if arch_source is not None and sha256_text(arch_source) != record.arch_sha256:
        raise ResultsError(f"trial {trial_id} was built from another version of the .arch "
                           "file: its network cannot be rebuilt from this one")
    return record


def prune_networks(results_dir: Path | str, keep_ids: Iterable[int]) -> list[int]:
    """Delete the saved networks of trials not in `keep_ids` (the Pareto front).

    Returns the ids deleted. The record goes first, so a crash leaves at worst a
    weights file without a record, which the next prune removes.
    """
    keep = set(keep_ids)
    deleted: set[int] = set()
    for suffix in (".json", ".pt"):
        for path in (Path(results_dir) / NETWORKS).glob(f"trial-*{suffix}"):
            match = re.fullmatch(rf"trial-(\d+){re.escape(suffix)}", path.name)
            if match and int(match.group(1)) not in keep:
                path.unlink()
                deleted.add(int(match.group(1)))
    return sorted(deleted)


@dataclass
class State:
    """Where a search stands (`state.json`, a few KB), and what it is a search of.

    Attributes:
        experiment_hash: `experiment.experiment_hash` of the experiment file.
        arch_hash: sha256 of the `.arch` source (`sha256_text`).
        settings: the experiment's canonical settings, to say what changed on resume.
        next_trial: the id the next new trial gets.
        progress: counters of the engine, e.g. {"sobol": 12, "bo_rounds": 2}.
        seconds: wall-clock time spent searching, over all runs, in seconds.
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


def load_state(results_dir: Path | str, experiment_hash: str, arch_hash: str,
               settings: Mapping[str, Any] | None = None) -> State:
    """The state to go on from: the saved one, or a fresh one in a new directory.

    Args:
        experiment_hash, arch_hash: what the search to run is a search of.
        settings: its canonical settings, kept in a fresh state and compared with a
            saved one's to say what changed.

    Raises:
        ResumeError: the directory holds a search of another experiment or `.arch`
            source; the message says what changed.
    """
    saved = read_state(results_dir)
    if saved is None:
        return State(experiment_hash, arch_hash, dict(settings or {}))
    changes = []
    if saved.experiment_hash != experiment_hash:
        old, new = _flatten(saved.settings), _flatten(settings or {})
        keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
        changes = [f"{k}: {_show(old.get(k))} -> {_show(new.get(k))}" for k in keys]
        changes = changes or ["the experiment settings"]
    if saved.arch_hash != arch_hash:
        changes.append("the .arch source")
    if changes:
        raise ResumeError(
            f"{results_dir} holds a search that this experiment cannot resume; changed since "
            f"it started: {'; '.join(changes)}. Use a new results directory (the `results` "
            "key of the experiment file), or restore the old settings to resume"
        )
    return saved


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
