"""Where a search stands (`state.json`), and whether a results directory may be resumed.

The state says what the directory is a search of (experiment and `.arch` hashes,
canonical settings) and how far it got; `load_state` refuses to go on with a
search of something else, and says what changed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import SparsemodError
from .results import STATE, ResultsError, write_atomic

#: Version of the state format; a state of another version is not resumed.
FORMAT = 1


class ResumeError(SparsemodError):
    """A results directory that belongs to another experiment or `.arch` file."""


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
