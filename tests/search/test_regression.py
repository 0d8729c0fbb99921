"""Regression and reconstruction heads end to end: `output: vector(N)` with `loss = mse`.

A real (tiny) search on the built-in `frames` reconstruction set: the trainer minimises
the mean squared error, the journal stores it, and the progress lines, trials.csv and
the report show it as an MSE in the data's units, not as a per cent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from sparsemod_dsl import compile_text
from sparsemod_dsl.cli.deploy import _test_line
from sparsemod_dsl.search.batching import loader
from sparsemod_dsl.search.data import DataError, load_dataset
from sparsemod_dsl.search.engine import Search, SearchError
from sparsemod_dsl.search.experiment import load_experiment
from sparsemod_dsl.search.export import export_trial
from sparsemod_dsl.search.frames import FRAME_NOISE, frames
from sparsemod_dsl.search.report import report, show
from sparsemod_dsl.search.train import evaluate

AUTOENCODER = '''\
"""A tiny autoencoder space for the frames set."""

arch tiny_ae(input: vector, output: vector, loss = mse)

train {
    learning_rate = float[0.003..0.02] log
}

network {
    width = choice[8, 16] ordered
    linear(width) batchnorm relu
    linear(choice[2, 4] ordered) relu
    linear(width) relu
    linear(outputs)
}
'''

STAGES = ("[stages]\nsobol = 2\nbo_rounds = 1\nbo_batch = 1\nmorph_rounds = 1\n"
          "morph_candidates = 4\nepochs = [2, 2, 2]\n")


def experiment(folder: Path, arch: str = AUTOENCODER) -> Path:
    (folder / "ae.arch").write_text(arch)
    path = folder / "experiment.toml"
    path.write_text('arch = "ae.arch"\nresults = "results"\nseed = 0\n\n'
                    f'[data]\ndataset = "frames"\noptions = {{ samples = 300, features = 32 }}'
                    f'\n\n{STAGES}\n[objectives]\nminimize = ["error", "flash"]\n\n'
                    '[target]\nname = "nrf52840"\n\n'
                    '[training]\npruning = false\nquantization = "post"\n')
    return path


def test_frames_is_its_own_target_with_the_documented_noise() -> None:
    x, y = frames(samples=50, features=16)
    assert x.shape == (50, 16) and torch.equal(x, y) and y.dtype == torch.float32
    data = load_dataset("frames", options={"samples": 100, "features": 16})
    assert (data.kind, data.input_shape, data.classes, data.loss) == ("vector", (16,), 16, "mse")
    assert len(data.train) + len(data.val) + len(data.test) == 100
    xb, yb = next(iter(loader(data.train, 8, False)))
    assert xb.shape == yb.shape == (8, 16) and yb.dtype == torch.float32
    with pytest.raises(ValueError, match="positive integer"):
        frames(samples=0)


def test_mse_evaluation_is_the_mean_over_every_value() -> None:
    data = load_dataset("frames", options={"samples": 100, "features": 16})
    batches = loader(data.val, 7, False)
    zero = torch.nn.Sequential(torch.nn.Linear(16, 16))
    torch.nn.init.zeros_(zero[0].weight)
    torch.nn.init.zeros_(zero[0].bias)
    expected = torch.stack([y for _, y in data.val]).pow(2).mean().item()
    assert evaluate(zero, batches, "mse") == pytest.approx(expected, rel=1e-5)
    identity = torch.nn.Identity()
    assert evaluate(identity, batches, "mse") == 0.0  # the target is the input


def test_a_reconstruction_search_runs_end_to_end(tmp_path: Path) -> None:
    lines: list[str] = []
    engine = Search(load_experiment(experiment(tmp_path)), report=lines.append, fast=True)
    engine.run()
    trials = engine.journal.trials()
    completed = [t for t in trials if t.status == "completed"]
    assert completed, [t.reason for t in trials]
    for t in completed:  # an MSE in the data's units: positive, above the noise floor's order
        assert 0.0 < t.error < 10.0 and t.extra["test_error"] > 0.0  # type: ignore[operator]
    best = min(t.error for t in completed)  # type: ignore[type-var]
    assert best < 1.0 and best > 0.1 * FRAME_NOISE**2  # type: ignore[operator]
    assert all("MSE" in line and "%" not in line.split(",")[0]
               for line, t in zip(lines, trials) if t.status == "completed")
    results = tmp_path / "results"
    setup = json.loads((results / "setup.json").read_text())
    assert (setup["loss"], setup["classes"], setup["input_shape"]) == ("mse", 32, [32])
    csv = (results / "trials.csv").read_text().splitlines()
    assert csv[0].split(",")[4] == "error_mse"
    first = next(line for line in csv[1:] if ",completed," in line)
    trial = next(t for t in completed if first.startswith(f"{t.id},"))
    assert float(first.split(",")[4]) == pytest.approx(trial.error, abs=1e-4)
    table, _ = report(results)
    assert "val MSE" in table and "test MSE" in table and "error %" not in table
    assert f"validation MSE {trial.error:.4g}" in show(results, trial.id)
    saved = int(next((results / "networks").glob("*.pt")).stem.split("-")[1])
    exported = export_trial(results, saved, "tflite")
    test_error = next(t for t in completed if t.id == saved).extra["test_error"]
    # the export standardises inside the network (raw input), the search before it: an
    # int8 activation may round the other way
    assert exported.loss == "mse" and exported.torch_error == pytest.approx(test_error, rel=1e-3)
    if exported.runtime_error is not None:  # TFLM installed: it reconstructs as torch does
        assert exported.runtime_error == pytest.approx(exported.torch_error, rel=0.05)
        assert "test MSE: torch int8" in _test_line(exported)


def test_the_loss_and_the_data_must_agree(tmp_path: Path) -> None:
    classifier = AUTOENCODER.replace("output: vector, loss = mse", "classes")
    with pytest.raises(SearchError, match="declares loss cross_entropy.*float target"):
        Search(load_experiment(experiment(tmp_path, arch=classifier)), fast=True)


def test_a_vector_network_is_compiled_for_the_data_and_built() -> None:
    space = compile_text(AUTOENCODER, input_shape=(32,), classes=32)
    assert space.program.loss == "mse" and space.program.input.kind == "vector"
    net = space.build({"width": 16})
    assert net(torch.zeros(3, 32)).shape == (3, 32)


USER_MODULE = '''
import torch
from torch.utils.data import TensorDataset


def targets(n=40):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 6, generator=g)
    data = TensorDataset(x, torch.cat([x, x.sum(1, keepdim=True)], dim=1))
    return data, data, data, 7


def mixed():
    floats = TensorDataset(torch.rand(8, 6), torch.rand(8, 7))
    ints = TensorDataset(torch.rand(8, 6), torch.zeros(8, dtype=torch.int64))
    return floats, ints, floats, 7
'''


def test_a_users_dataset_with_float_targets_is_a_regression_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "regdata.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    data = load_dataset("regdata:targets")
    assert (data.kind, data.input_shape, data.classes, data.loss) == ("vector", (6,), 7, "mse")
    x, y = next(iter(loader(data.train, 5, False)))
    assert x.shape == (5, 6) and y.shape == (5, 7) and y.dtype == torch.float32
    with pytest.raises(DataError, match="mix integer labels and float target vectors"):
        load_dataset("regdata:mixed")
    (tmp_path / "regdata3.py").write_text(USER_MODULE.replace("data, data, data, 7",
                                                              "data, data, data, 3"))
    with pytest.raises(DataError, match="a train target has 7 values, but classes is 3"):
        load_dataset("regdata3:targets")


def test_the_frames_example_compiles_for_its_data(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "frames", folder)
    experiment = folder / "experiment.toml"
    experiment.write_text(experiment.read_text().replace(
        'results = "../../results/frames"', 'results = "results"'))
    engine = Search(load_experiment(experiment), fast=True)
    program = engine.program
    assert (program.loss, program.input.shape, program.classes) == ("mse", (64,), 64)
    assert engine.data.loss == "mse" and len(engine.data.train) == 720
