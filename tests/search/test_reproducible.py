"""The same experiment file and seed give the same journal, trial for trial.

Two fresh `sparsemodc search` processes run the digits example (its space, data,
target and trainer; small stages) into two results directories; their journals must
agree in everything but wall-clock times.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from small_search import sparsemodc

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits"
#: Journal fields that measure wall-clock time, not what was found.
CLOCK = {"time", "train_seconds", "seconds"}


def experiment(folder: Path) -> Path:
    """The digits example with small stages (Sobol, BO with the exact strategy, morph),
    its results in `folder/results`."""
    text = (EXAMPLE / "experiment.toml").read_text()
    head, _, rest = text.partition("[stages]")
    stages = ("[stages]\nsobol = 3\nbo_rounds = 1\nbo_batch = 2\nmorph_rounds = 2\n"
              "morph_candidates = 4\nepochs = [1, 1, 1]\n\n")
    head = head.replace('arch = "sparse_cnn.arch"', f'arch = "{EXAMPLE / "sparse_cnn.arch"}"')
    head = head.replace('results = "../../results/digits"', 'results = "results"')
    path = folder / "experiment.toml"
    path.write_text(head + stages + rest[rest.index("[objectives]"):])
    return path


def events(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "results" / "journal.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in CLOCK} for line in lines]


def test_two_fresh_runs_of_the_same_experiment_write_the_same_journal(tmp_path: Path) -> None:
    runs = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        runs.append(subprocess.Popen(
            sparsemodc("search", str(experiment(tmp_path / name))), cwd=tmp_path / name,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for process in runs:
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0, out
    first, second = events(tmp_path / "first"), events(tmp_path / "second")
    trials = [e for e in first if e["event"] == "finished"]
    assert len(trials) >= 7 and any(e["status"] == "completed" for e in trials)
    assert first == second
