"""Data made ready for a space (`search/prepare.py`): standardisation from the train
split, declared layouts, a dataset module beside the experiment file, clipped training
settings, and window-level scoring with the sequence splitter (issue 16, items 1-2)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

from sparsemod_dsl import cli
from sparsemod_dsl.search.batching import window_loader
from sparsemod_dsl.search.data import DataBundle, load_dataset
from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.experiment import LAYOUT_NAMES, load_experiment
from sparsemod_dsl.search.prepare import (
    LAYOUTS,
    clip,
    fit_normalization,
    relayout,
    standardize,
)
from sparsemod_dsl.search.train import TrainConfig, batches, evaluate

EXAMPLES = Path(__file__).parents[2] / "examples"

#: 40 training windows of 100 steps x 6 channels, 4 classes, as (N, C, T) arrays: the
#: shape of the IMU gesture set of issue 16. Class c is a wave of frequency (c + 1) / 25
#: on every channel, around a per-channel level far from 0 (what standardising removes).
GESTURES = '''\
import numpy as np
import torch
from torch.utils.data import TensorDataset


def windows(n, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    t = np.arange(100)
    wave = np.sin(2 * np.pi * (labels[:, None] + 1) / 25 * t + rng.uniform(0, 6, (n, 1)))
    x = wave[:, None, :] * 0.5 + 40.0 + 10.0 * np.arange(6)[None, :, None]
    x = x + 0.1 * rng.standard_normal(x.shape)
    return TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(labels))


def load(seed=0):
    return windows(40, seed), windows(20, seed + 1), windows(20, seed + 2), 4
'''

GESTURE_ARCH = '''\
arch gestures(input: sequence(100, 6), classes = 4)

train {
    batch_size = choice[16, 256] ordered
    learning_rate = float[0.005..0.02] log
    max_len = choice[50, 79, 128] ordered
}

network {
    conv1d(filters = int[4..8] step 4, kernel = 5) relu
    global_avg_pool
    linear(classes)
}
'''


def gesture_experiment(folder: Path, module: str, layout: str | None) -> Path:
    """A search of `GESTURE_ARCH` on the `GESTURES` module written beside it as `module`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(GESTURES)
    (folder / "gestures.arch").write_text(GESTURE_ARCH)
    path = folder / "experiment.toml"
    path.write_text(
        f'arch = "gestures.arch"\nresults = "results"\n\n[data]\ndataset = "{module}:load"\n'
        f'splitter = true\n{f"layout = {layout!r}" if layout else ""}\n\n'
        "[stages]\nsobol = 2\nbo_rounds = 0\nmorph_rounds = 0\nepochs = [2, 1, 1]\n"
        'strategy = "sobol"\n\n[objectives]\nminimize = ["error", "flash", "ram"]\n\n'
        '[training]\npruning = false\nquantization = "none"\n')
    return path


def test_a_dataset_module_beside_the_experiment_imports_and_the_search_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    experiment = gesture_experiment(tmp_path / "exp", "sm_gestures_beside", "NCT")
    assert cli.main(["search", str(experiment)]) == 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "note: train.batch_size goes up to 256, above the 40 training examples" in text
    assert "note: train.max_len goes up to 128, above the 100 steps of a sequence" in text
    setup = json.loads((tmp_path / "exp" / "results" / "setup.json").read_text())
    assert setup["input_shape"] == [100, 6] and setup["normalization"]["per"] == "feature"
    assert setup["normalization"]["mean"] == pytest.approx(
        [40.0 + 10 * c for c in range(6)], abs=0.1)
    record = json.loads((tmp_path / "exp" / "results" / "networks" / "trial-0.json")
                        .read_text())
    assert record["extra"]["normalization"] == setup["normalization"]


def test_a_wrong_layout_exits_2_naming_both_shapes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    experiment = gesture_experiment(tmp_path, "sm_gestures_no_layout", None)
    assert cli.main(["search", str(experiment)]) == 2
    err = capsys.readouterr().err
    assert "the .arch input is sequence (100, 6), but a data sample is sequence (6, 100)" in err
    assert "set data.layout (NTC/NCT)" in err


def test_a_layout_for_another_kind_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    experiment = gesture_experiment(tmp_path, "sm_gestures_image_layout", "NHWC")
    assert cli.main(["search", str(experiment)]) == 2
    assert "data.layout NHWC is for image samples" in capsys.readouterr().err


def test_the_layouts_the_experiment_takes_are_those_prepare_knows() -> None:
    assert set(LAYOUT_NAMES) == set(LAYOUTS)


def search_of(example: str, tmp_path: Path, **data: Any) -> Search:
    experiment = load_experiment(EXAMPLES / example / "experiment.toml")
    return Search(dataclasses.replace(
        experiment, results=tmp_path / "results",
        data=dataclasses.replace(experiment.data, **data)), report=lambda _: None)


def test_the_digits_example_is_standardised_per_channel_from_its_train_split(
        tmp_path: Path) -> None:
    search = search_of("digits", tmp_path)
    norm = search.data.normalization
    raw = load_dataset("digits", search.config.seed)
    pixels = torch.stack([x for x, _ in raw.train])
    assert norm.kind == "image" and len(norm.mean) == 1
    assert norm.mean[0] == pytest.approx(float(pixels.mean()), rel=1e-5)
    assert norm.std[0] == pytest.approx(float(pixels.std(unbiased=False)), rel=1e-4)
    train = torch.stack([x for x, _ in search.data.train])
    assert float(train.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(train.std(unbiased=False)) == pytest.approx(1.0, rel=1e-4)
    x0, label0 = search.data.test[0]
    assert torch.allclose(x0, (raw.test[0][0] - norm.mean[0]) / norm.std[0])
    assert label0 == raw.test[0][1]


def test_standardisation_can_be_turned_off(tmp_path: Path) -> None:
    search = search_of("digits", tmp_path, standardize=False)
    assert search.data.normalization is None
    assert float(search.data.train[0][0].min()) >= 0.0


def test_the_sequences_example_scores_whole_windows(tmp_path: Path) -> None:
    search = search_of("sequences", tmp_path)
    assert search.data.normalization.kind == "sequence"
    config = TrainConfig(epochs=0, max_len=75)
    val = batches(search.data.val, search.data, config, training=False)
    windows = sum(len(y) for _, y, _ in val)
    chunks = sum(len(x) for x, _, _ in val)
    assert windows == len(search.data.val) and chunks == 2 * windows  # steps 0-75, 25-100


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300), st.integers(1, 200), st.integers(1, 150))
def test_clipping_keeps_batches_and_chunks_within_the_data(batch: int, max_len: int,
                                                            steps: int) -> None:
    data = load_dataset("sequences", 0, {"samples": 40, "steps": steps, "features": 2})
    clipped = clip(TrainConfig(epochs=1, batch_size=batch, max_len=max_len), data)
    assert clipped.batch_size == min(batch, len(data.train))
    assert clipped.max_len == min(max_len, steps)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=6), st.integers(1, 4))
def test_a_window_is_scored_by_the_mean_of_its_chunks_logits(steps: list[int],
                                                              max_len: int) -> None:
    """A 'network' whose logits for a chunk are its values: a window is right when its
    chunks' mean logit picks its label, however the chunks fall into batches."""
    gen = torch.Generator().manual_seed(sum(steps))
    windows = [(torch.randn(t, 2, generator=gen), i % 2) for i, t in enumerate(steps)]

    class Mean(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum(1)

    model = Mean()
    expected = 0
    for x, label in windows:
        chunk_list = []
        starts = list(range(0, max(len(x) - max_len, 0) + 1, max_len))
        if len(x) > max_len and starts[-1] + max_len < len(x):
            starts.append(len(x) - max_len)
        for start in starts:
            chunk = x[start:start + max_len]
            chunk_list.append(nn.functional.pad(chunk, (0, 0, 0, max_len - len(chunk))))
        logits = model(torch.stack(chunk_list)).mean(0)
        expected += int(logits.argmax() != label)
    for size in (1, 3, 64):
        error = evaluate(model, window_loader(windows, size, max_len))
        assert error == pytest.approx(expected / len(windows))


def test_standardising_an_anomaly_set_leaves_it_alone() -> None:
    data = load_dataset("frame_anomalies", 0, {"samples": 80})
    assert standardize(data) is data


def test_a_constant_feature_is_divided_by_one() -> None:
    norm = fit_normalization([(torch.tensor([[1.0, 5.0], [3.0, 5.0]]), 0)], "sequence")
    assert norm.mean == (2.0, 5.0) and norm.std == (1.0, 1.0)


def test_any_dataset_is_relaid_and_standardised_as_a_tensor_dataset_is() -> None:
    """A list of samples is mapped as it is read; a TensorDataset at once: same values."""
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(12, 5, 7, generator=gen) * 4 + 2, torch.arange(12) % 2
    tensors = TensorDataset(x, y)
    listed = [(x[i], int(y[i])) for i in range(12)]

    def bundle(dataset: Any) -> DataBundle:
        return DataBundle(dataset, dataset, dataset, 2, "sequence", (5, 7))

    fast, slow = (standardize(relayout(bundle(d), "NCT")) for d in (tensors, listed))
    assert fast.input_shape == slow.input_shape == (7, 5)
    assert fast.normalization == pytest.approx(slow.normalization)
    for i in range(12):
        assert torch.allclose(fast.test[i][0], slow.test[i][0], atol=1e-5)
    assert fast.test[0][0].shape == (7, 5)
