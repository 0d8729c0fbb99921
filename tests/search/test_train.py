"""Training, pruning, quantisation and evaluation (`train`).

The digits tests train the quickstart example at one small point: two 16-filter 5x5
layers (the second depthwise separable, so pruning covers composite layers), batch 16,
learning rate 0.01 multiplied by 0.6 after every epoch, 4 epochs (about a second).
Measured over seeds 0..5: 4-9% validation error in float, 6-11% pruned to 50%, int8
within a point of float; an untrained network: about 90%.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import pytest
import torch
from helpers import EXAMPLE
from torch import nn
from torch.ao.nn import quantized as nnq
from torch.ao.nn.quantized import dynamic as nnqd

import sparsemod_dsl as sm
from sparsemod_dsl.nets.int8_kernels import Int8Linear
from sparsemod_dsl.nets.modules import FloatIsland
from sparsemod_dsl.nets.network import SparsemodNet
from sparsemod_dsl.search.batching import loader
from sparsemod_dsl.search.data import DataBundle, load_dataset
from sparsemod_dsl.search.train import (
    ConfigError,
    Quantization,
    TrainConfig,
    Trainer,
    TrainingError,
    TrainResult,
    _GradualPruning,
    batches,
    default_trainer,
    deployable,
    evaluate,
    sparsity,
)
from sparsemod_dsl.space import Space

POINT: dict[str, object] = {
    "layer": 2,
    "layer[1].filters": 16, "layer[1].kernel": 5, "layer[1].kind": "plain",
    "layer[2].filters": 16, "layer[2].kernel": 5, "layer[2].kind": "separable",
    "train.batch_size": 16, "train.learning_rate": 0.01, "train.prune_threshold": 0.5,
}

SEQUENCE_NET = """
arch seq(input: sequence(100, 8), classes = 4)
network {
    conv1d(filters = 8, kernel = 5) relu
    maxpool(4)
    lstm(hidden = 8)
    linear(classes)
}
"""


@lru_cache(maxsize=None)
def quickstart() -> Space:
    return sm.compile_file(EXAMPLE)


@lru_cache(maxsize=None)
def digits() -> DataBundle:
    return load_dataset("digits")


@lru_cache(maxsize=None)
def sequences() -> DataBundle:
    return load_dataset("sequences")


def config(epochs: int = 4, pruning: bool = False, **changes: object) -> TrainConfig:
    """The configuration at POINT, the learning rate decaying by 0.6 every epoch."""
    base = TrainConfig.from_point(POINT, epochs, pruning)
    return dataclasses.replace(base, learning_gamma=0.6, **changes)


def train_digits(cfg: TrainConfig, init_seed: int = 0) -> TrainResult:
    torch.manual_seed(init_seed)
    return default_trainer(quickstart().build(POINT), digits(), cfg)


@lru_cache(maxsize=None)
def trained() -> TrainResult:
    return train_digits(config())


# --- configuration -------------------------------------------------------------------------------


def test_from_point_takes_train_values() -> None:
    cfg = TrainConfig.from_point(POINT, epochs=3, pruning=True, quantization="post",
                                 device="auto", seed=7)
    assert (cfg.batch_size, cfg.learning_rate, cfg.prune_threshold) == (16, 0.01, 0.5)
    assert (cfg.learning_gamma, cfg.learning_step, cfg.weight_decay, cfg.max_len) == (
        1.0, 1, 0.0, None)
    assert (cfg.epochs, cfg.quantization, cfg.device, cfg.seed) == (3, "post", "auto", 7)


def test_from_point_without_pruning_or_train_values() -> None:
    assert TrainConfig.from_point(POINT, epochs=1, pruning=False).prune_threshold is None
    assert TrainConfig.from_point({}, epochs=1, pruning=True) == TrainConfig(epochs=1)


def test_from_point_converts_numpy_values_and_reads_max_len() -> None:
    import numpy as np

    cfg = TrainConfig.from_point({"train.max_len": np.int64(50),
                                  "train.learning_gamma": np.float32(0.5)}, epochs=1)
    assert cfg.max_len == 50 and type(cfg.max_len) is int and cfg.learning_gamma == 0.5


@pytest.mark.parametrize("changes, message", [
    ({"quantization": "int4"}, "quantization must be one of none, post, dynamic, both"),
    ({"device": "tpu"}, "device must be cpu, cuda or auto"),
    ({"prune_threshold": 1.0}, r"prune_threshold must be in \[0, 1\)"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"epochs": -1}, "epochs must be at least 0"),
])
def test_bad_settings_are_config_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{"epochs": 1, **changes})


# --- training on digits --------------------------------------------------------------------------


def test_training_reaches_low_error_on_digits() -> None:
    result = trained()
    untrained = train_digits(config(epochs=0))
    assert untrained.val_error > 0.5
    assert result.val_error < 0.2 < untrained.val_error
    assert result.epochs_run == 4 and result.train_seconds > 0
    assert result.model is result.float_model and result.sparsity == 0.0
    assert next(result.float_model.parameters()).device.type == "cpu"


def test_training_is_reproducible_for_a_seed() -> None:
    again = train_digits(config())
    assert again.val_error == trained().val_error
    for (key, a), b in zip(trained().float_model.state_dict().items(),
                           again.float_model.state_dict().values()):
        assert torch.equal(a, b), key
    other = train_digits(config(seed=1))
    assert not torch.equal(other.float_model.layers.linear.weight,
                           again.float_model.layers.linear.weight)


def test_pruning_reaches_the_threshold_gradually() -> None:
    torch.manual_seed(0)
    net = quickstart().build(POINT)
    pruning = _GradualPruning(net, threshold=0.6, epochs=3)
    assert len(pruning.weights) == 4  # conv, depthwise, pointwise, linear
    for epoch in (1, 2, 3):
        pruning.start_epoch(epoch)
        assert sparsity(net) == pytest.approx(0.2 * epoch, abs=1e-3)
    pruning.finish()
    assert sparsity(net) == pytest.approx(0.6, abs=1e-3)
    assert not any(name.endswith(("_orig", "_mask")) for name in net.state_dict())


def test_pruned_training_keeps_real_zeros() -> None:
    result = train_digits(config(pruning=True))
    assert result.sparsity == pytest.approx(0.5, abs=0.01)
    assert sparsity(result.float_model) == result.sparsity
    assert result.val_error < 0.2
    assert not any("_mask" in name for name in result.float_model.state_dict())


def test_a_static_int8_model_of_digits() -> None:
    cfg = config(epochs=2, pruning=True, quantization="post")
    result = train_digits(cfg)
    kinds = {type(m) for m in result.model.modules()}
    assert not kinds & {nn.Conv2d, nn.Linear}
    assert any(issubclass(k, nnq.Conv2d) for k in kinds) and nnq.Linear in kinds
    assert isinstance(result.float_model, SparsemodNet)
    assert isinstance(result.float_model.layers.linear, nn.Linear)
    assert sparsity(result.model) >= result.sparsity - 1e-9  # int8 rounding adds zeros
    x, _ = digits().val.tensors
    assert result.model(x[:5]).shape == (5, 10)
    again = deployable(result.float_model, digits(), cfg)  # e.g. for a saved network
    assert torch.equal(again(x), result.model(x))


@pytest.mark.parametrize("scheme, conv, recurrent, head", [
    ("none", nn.Conv1d, nn.LSTM, nn.Linear),
    ("post", nnq.Conv1d, nn.LSTM, Int8Linear),
    ("dynamic", nn.Conv1d, nnqd.LSTM, nnqd.Linear),
    ("both", nnq.Conv1d, nnqd.LSTM, Int8Linear),
])
def test_quantisation_schemes(scheme: Quantization, conv: type, recurrent: type,
                              head: type) -> None:
    torch.manual_seed(0)
    net = sm.compile_text(SEQUENCE_NET).build({})
    result = default_trainer(net, sequences(), TrainConfig(epochs=1, quantization=scheme))
    model = result.model
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nnq.Conv1d))]
    assert len(convs) == 1 and isinstance(convs[0], conv)
    island = next(m for m in model.modules() if isinstance(m, FloatIsland))
    assert type(island.inner.rnn) is recurrent
    assert type(model.layers.linear) is head
    x, _ = sequences().val.tensors
    assert model(x[:3]).shape == (3, 4)
    assert 0.0 <= result.val_error <= 1.0


def test_max_len_chunks_reach_the_network() -> None:
    space = sm.compile_text("""
        arch chunks(input: sequence(100, 8), classes = 4)
        train {
            max_len = 25
        }
        network {
            flatten
            linear(classes)
        }
        """)
    net = space.build({})
    assert net.layers.linear.in_features == 25 * 8
    cfg = TrainConfig.from_point(space.active({}), epochs=1)
    assert cfg.max_len == 25
    assert 0.0 <= default_trainer(net, sequences(), cfg).val_error <= 1.0


def test_images_ignore_max_len() -> None:
    x, _ = next(iter(batches(digits().val, digits(), TrainConfig(epochs=1, max_len=3), False)))
    assert x.shape == (256, 1, 8, 8)


# --- failures, the protocol, the measures -------------------------------------------------------


def test_a_nan_loss_is_a_training_error() -> None:
    torch.manual_seed(0)
    net = quickstart().build(POINT)
    with torch.no_grad():
        net.layers.linear.weight[0, 0] = float("nan")
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 1, step 1"):
        default_trainer(net, digits(), config())


def test_an_absurd_learning_rate_is_a_training_error() -> None:
    with pytest.raises(TrainingError, match="the network diverged"):
        train_digits(config(epochs=2, learning_rate=1e30))


def test_a_user_function_is_a_trainer() -> None:
    def half_the_epochs(net: SparsemodNet, data: DataBundle, cfg: TrainConfig) -> TrainResult:
        return default_trainer(net, data, dataclasses.replace(cfg, epochs=cfg.epochs // 2))

    trainer: Trainer = half_the_epochs  # mypy checks the protocol here
    torch.manual_seed(0)
    result = trainer(quickstart().build(POINT), digits(), config(epochs=2))
    assert result.epochs_run == 1


def test_evaluate_counts_wrong_examples() -> None:
    class Always(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[0.0, 1.0]]).repeat(len(x), 1)

    data = [(torch.zeros(3), label) for label in (1, 1, 0, 1)]
    assert evaluate(Always(), loader(data, 3, shuffle=False)) == 0.25


def test_sparsity_counts_conv_and_linear_weights() -> None:
    conv, lstm = nn.Conv2d(1, 2, 3), nn.LSTM(4, 4)
    with torch.no_grad():
        conv.weight.zero_()  # 18 of 18 + 6 weights
        lstm.get_parameter("weight_ih_l0").zero_()  # recurrent weights do not count
    assert sparsity(nn.Sequential(conv, lstm, nn.Linear(6, 1))) == pytest.approx(18 / 24)


# --- devices -------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("scheme", ["none", "post"])
def test_training_on_cuda(scheme: Quantization) -> None:
    result = train_digits(config(pruning=True, device="cuda", quantization=scheme))
    assert result.val_error < 0.2 and result.sparsity == pytest.approx(0.5, abs=0.01)
    assert {p.device.type for p in result.float_model.parameters()} == {"cpu"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        train_digits(config(epochs=0, device="cuda"))
