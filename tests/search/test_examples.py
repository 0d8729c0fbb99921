"""The examples do what the README and docs/search.md promise (minutes, not seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.experiment import load_experiment
from sparsemod_dsl.search.trials import pareto_front

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_digits_example_finds_a_small_accurate_network(tmp_path: Path) -> None:
    folder = tmp_path / "digits"
    shutil.copytree(EXAMPLES / "digits", folder)
    experiment = folder / "experiment.toml"
    experiment.write_text(experiment.read_text().replace(
        'results = "../../results/digits"', 'results = "results"'))
    engine = Search(load_experiment(experiment), report=lambda line: None)
    front = engine.run()
    assert front == pareto_front(engine.journal.trials(), engine.objectives)
    small = [t for t in front if t.ram_bytes <= 16 * 1024 and t.flash_bytes <= 16 * 1024]
    assert any(t.extra["test_error"] < 0.10 for t in small), [
        (t.id, t.extra["test_error"], t.flash_bytes, t.ram_bytes) for t in front
    ]
