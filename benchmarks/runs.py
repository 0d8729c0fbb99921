"""Shared by the search benchmarks: the digits example run with other settings.

Each run is a real search (`Search.run`): real Ax Sobol points, real training
on the digits data, real pruning and int8 quantisation, in its own results
directory; only the stages, the seed and the strategy differ from
examples/digits/experiment.toml.
"""

from __future__ import annotations

import dataclasses
import platform
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import torch

from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.experiment import Experiment, load_experiment

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits" / "experiment.toml"


def digits(strategy: str, seed: int = 0, **stages: Any) -> Experiment:
    """The digits example with `strategy`, `seed` and `stages` (e.g. sobol=8) changed,
    its results in a fresh temporary directory."""
    base = load_experiment(EXAMPLE)
    results = Path(tempfile.mkdtemp(prefix=f"sparsemod-{strategy}-{seed}-"))
    return dataclasses.replace(
        base, seed=seed, results=results,
        stages=dataclasses.replace(base.stages, strategy=strategy, **stages),
    )


def run(experiment: Experiment) -> Search:
    """Run a search quietly; returns the engine (journal, timings, strategy)."""
    engine = Search(experiment, report=lambda _: None)
    engine.run()
    return engine


def machine() -> str:
    """What the numbers were measured on, for the header of a benchmark's output."""
    parts = (str(date.today()), platform.machine(), platform.processor(),
             f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    return " ".join(part for part in parts if part)
