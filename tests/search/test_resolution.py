"""A search over a space that searches its input resolution, end to end.

The digits are 8x8; the space takes them at 6x6 or 8x8 (`res = choice[6, 8]`). Each
trial trains at its own size (the trainer sees data resized to it), the journal records
the size as the parameter `res`, and an exported network takes that size.
"""

from __future__ import annotations

import pytest
import torch

from sparsemod_dsl.nets.network import SparsemodNet
from sparsemod_dsl.search.data import DataBundle, load_dataset
from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.experiment import load_experiment
from sparsemod_dsl.search.export import export_trial
from sparsemod_dsl.search.networks import saved_networks
from sparsemod_dsl.search.resize import Resizer, resize_images, resized
from sparsemod_dsl.search.train import TrainConfig, TrainResult, default_trainer

ARCH = '''\
arch tiny_res(input: image(1, res, res), res = choice[6, 8] ordered, classes = 10)

train {
    learning_rate = float[0.003..0.02] log
}

network {
    conv2d(filters = int[4..8] step 4, kernel = 3) batchnorm relu
    global_avg_pool
    linear(classes)
}
'''
EXPERIMENT = '''\
arch = "tiny_res.arch"
results = "results"
seed = 1
[data]
dataset = "digits"
[stages]
sobol = 4
bo_rounds = 0
morph_rounds = 1
epochs = [1, 1, 1]
[training]
pruning = false
'''


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> tuple[Search, list[tuple[int, tuple]]]:
    """A finished search, with the (res, first training batch's shape) of each trial."""
    folder = tmp_path_factory.mktemp("res")
    (folder / "tiny_res.arch").write_text(ARCH)
    (folder / "experiment.toml").write_text(EXPERIMENT)
    seen: list[tuple[int, tuple]] = []

    def trainer(net: SparsemodNet, data: DataBundle, config: TrainConfig) -> TrainResult:
        x, _ = data.train[0]
        seen.append((net.point["res"], tuple(x.shape)))
        return default_trainer(net, data, config)

    engine = Search(load_experiment(folder / "experiment.toml"), trainer=trainer,
                    report=lambda line: None, fast=True)
    engine.run()
    return engine, seen


def test_each_trial_trains_at_its_resolution(search: tuple[Search, list]) -> None:
    engine, seen = search
    trials = engine.journal.trials()
    assert trials and all(t.status == "completed" for t in trials)
    assert {t.params["res"] for t in trials} == {6, 8}  # the journal records the size
    assert all(shape == (1, res, res) for res, shape in seen)
    assert len(seen) == len(trials)


def test_an_exported_network_takes_its_trials_resolution(search: tuple[Search, list]) -> None:
    pytest.importorskip("tflite_micro", reason="needs the deploy extra (tflite-micro)")
    engine, _ = search
    trial = engine.journal.trial(saved_networks(engine.results)[0])
    res = trial.params["res"]
    exported = export_trial(engine.results, trial.id, "tflite")
    assert exported.runtime_error is not None  # TFLM ran on the test split resized to res
    assert abs(exported.runtime_error - exported.torch_error) <= 0.01
    graph = exported.exported.int8.graph
    assert graph.tensors[graph.input].shape == (1, res, res, 1)


def test_resizing_is_bilinear_with_antialiasing_once_per_size() -> None:
    data = load_dataset("digits", 0)
    resizer = Resizer(data)
    six = resizer((1, 6, 6))
    assert six is resizer((1, 6, 6)) and resizer((1, 8, 8)) is data
    x, _ = six.train[0]
    assert tuple(x.shape) == (1, 6, 6) and six.input_shape == (1, 6, 6)
    flat = torch.ones(2, 1, 8, 8)
    assert torch.allclose(resize_images(flat, (3, 3)), torch.ones(2, 1, 3, 3))
    with pytest.raises(Exception, match="3-channel"):
        resized(data, (3, 6, 6))


def test_an_onnx_export_takes_its_trials_resolution(search: tuple[Search, list]) -> None:
    onnx = pytest.importorskip("onnx")
    engine, _ = search
    trial = engine.journal.trial(saved_networks(engine.results)[0])
    res = trial.params["res"]
    exported = export_trial(engine.results, trial.id, "onnx")
    assert exported.runtime_error is not None
    (data,) = exported.exported.files.values()
    dims = onnx.load_from_string(data).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims][1:] == [1, res, res]
