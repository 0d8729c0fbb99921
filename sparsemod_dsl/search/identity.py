"""What a results directory is a search of: the experiment's identity and its hash.

A search's journal records the canonical settings of its experiment file and their
hash (`state.State`). Re-running a search compares them: the settings that only say
how many trials to train or when to stop (`EXTENDABLE`) may change, which extends the
search in its directory; any other change would make earlier trials measure something
else and is refused (`state.load_state`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .experiment import SECTIONS, Experiment

#: The settings a search may change and still go on in its results directory (dotted
#: keys, or a whole section): how many trials, and when to stop, not what trials measure.
EXTENDABLE = ("stages.sobol", "stages.bo_rounds", "stages.bo_batch", "stages.morph_rounds",
              "stages.morph_candidates", "stopping")


def canonical_settings(experiment: Experiment) -> dict[str, Any]:
    """What a search depends on, as JSON values: every section, and the seed.

    Left out: `name`, `results`, `device` and `[execution]` (where and how fast the
    search runs, not what it finds), `[final]` (the retraining after the search, which
    may be asked for when the search is over), `[scoring]`, `[stopping]` and
    `[early_stopping]` at their defaults (older results still resume) and `arch` (its
    source is hashed apart). A target file is named relative to the experiment file, so
    that moving both keeps the settings.
    """
    settings: dict[str, Any] = {"seed": experiment.seed}
    for section, cls in SECTIONS.items():
        value = getattr(experiment, section)
        if section not in ("final", "execution") and (
                section not in ("scoring", "stopping", "early_stopping") or value != cls()):
            settings[section] = asdict(value)
    name = experiment.target.name
    if name is not None and name.endswith(".toml"):
        relative = os.path.relpath(name, experiment.path.parent)
        settings["target"]["name"] = Path(relative).as_posix()
    loaded: dict[str, Any] = json.loads(json.dumps(settings, default=str))  # dates: ISO text
    return loaded


def extendable(key: str) -> bool:
    """Whether a dotted key of the canonical settings is one a search may change and go
    on (`EXTENDABLE`): raising a budget or changing a stopping rule extends the search."""
    return any(key == k or key.startswith(f"{k}.") for k in EXTENDABLE)


def experiment_hash(experiment: Experiment) -> str:
    """The hex sha256 of the canonical settings: equal hashes, same search."""
    text = json.dumps(canonical_settings(experiment), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
