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
from typing import Any, Callable

import torch

from sparsemod_dsl.search.axstrategy import Strategy
from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.experiment import Experiment, load_experiment

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE = EXAMPLES / "digits" / "experiment.toml"


def digits(strategy: str, seed: int = 0, **stages: Any) -> Experiment:
    """The digits example with `strategy`, `seed` and `stages` (e.g. sobol=8) changed,
    its results in a fresh temporary directory."""
    return example(EXAMPLE, strategy, seed, **stages)


def example(path: Path, strategy: str, seed: int = 0, sections: dict[str, Any] | None = None,
            **stages: Any) -> Experiment:
    """The example experiment at `path` with `strategy`, `seed`, `stages` and the
    fields of other `sections` (e.g. {"target": {"ram_kb": 3}}) changed, its results
    in a fresh temporary directory."""
    base = load_experiment(path)
    results = Path(tempfile.mkdtemp(prefix=f"sparsemod-{strategy}-{seed}-"))
    changed = {name: dataclasses.replace(getattr(base, name), **fields)
               for name, fields in (sections or {}).items()}
    return dataclasses.replace(
        base, seed=seed, results=results, **changed,
        stages=dataclasses.replace(base.stages, strategy=strategy, **stages),
    )


def run(experiment: Experiment, strategy: Callable[..., Strategy] | None = None) -> Search:
    """Run a search quietly; returns the engine (journal, timings, strategy). `strategy`,
    if given, makes the strategy that replaces the experiment's (from the engine's
    program, objectives, pricer and seed): how a benchmark runs an outside optimiser."""
    engine = Search(experiment, report=lambda _: None)
    if strategy is not None:
        engine.strategy = strategy(engine.program, engine.objectives, engine.pricer,
                                   experiment.seed)
    engine.run()
    return engine


def machine() -> str:
    """What the numbers were measured on, for the header of a benchmark's output."""
    parts = (str(date.today()), platform.machine(), platform.processor(),
             f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    return " ".join(part for part in parts if part)
