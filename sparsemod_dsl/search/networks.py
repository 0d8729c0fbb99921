"""The saved networks of a results directory (`networks/trial-ID.pt` and `.json`).

The search keeps the float weights of the networks on its Pareto front, so that they
can be rebuilt and their morphism children can inherit their weights; each is tied
to its trial, point and `.arch` source by a small JSON record.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..lang.ir import Scalar
from .results import NETWORKS, ResultsError, sha256_text, write_atomic


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
