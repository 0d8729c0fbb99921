"""Training, pruning, quantisation and evaluation of one network of a search.

A trainer is any callable `(net, data, config) -> TrainResult` (the `Trainer`
protocol); `default_trainer` is SpArSe's recipe: Adam with a step learning-rate
schedule, global magnitude pruning raised gradually to `prune_threshold`, then
optional int8 quantisation and the validation error of the deployable model.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Protocol, get_args

import torch
from torch import nn
from torch.ao.nn import quantized as nnq
from torch.nn.utils import prune
from torch.utils.data import DataLoader, Dataset

from ..errors import SparsemodError
from ..nets import quantize
from ..nets.network import SparsemodNet
from .anomaly import anomaly_error
from .batching import loader, window_loader
from .data import DataBundle

Quantization = Literal["none", "post", "dynamic", "both"]
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)

#: Training batches that calibrate static int8 activation ranges.
CALIBRATION_BATCHES = 8
#: Examples per batch when evaluating (no gradients: memory is not the limit).
EVAL_BATCH = 256

_PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)
_QUANTIZED_WEIGHTED = (nnq.Conv1d, nnq.Conv2d, nnq.Linear)


class TrainingError(SparsemodError):
    """Training failed (the loss stopped being finite): the trial fails, the search goes on."""


class ConfigError(SparsemodError):
    """A training setting is out of range or names an unavailable device."""


@dataclass
class TrainConfig:
    """How to train one network.

    Attributes:
        epochs: passes over the training set (0 evaluates the untrained network).
        batch_size: examples per step (capped to the training set's size).
        learning_rate: Adam's learning rate.
        learning_gamma, learning_step: the learning rate is multiplied by
            `learning_gamma` every `learning_step` epochs.
        weight_decay: Adam's L2 weight decay.
        prune_threshold: the final fraction of conv/linear weights set to zero; None
            for no pruning.
        quantization: `none` (float), `post` (static int8), `dynamic` (int8 weights of
            LSTM/GRU/Linear) or `both` (static int8, then dynamic for what stays float).
        max_len: steps per sequence chunk (the sequence splitter), None for whole sequences.
        device: where to train: `cpu`, `cuda` (or `cuda:N`) or `auto`.
        seed: seeds the batch order, dropout and calibration.
        monitor: with an early-stopping rule (`earlystop`), called after each epoch
            with (epoch from 1, validation error); True asks the trainer to stop. The
            default trainer measures the validation error per epoch only when it is
            set; a trainer that ignores it never stops early.
    """

    epochs: int
    batch_size: int = 32
    learning_rate: float = 1e-3
    learning_gamma: float = 1.0
    learning_step: int = 1
    weight_decay: float = 0.0
    prune_threshold: float | None = None
    quantization: Quantization = "none"
    max_len: int | None = None
    device: str = "cpu"
    seed: int = 0
    monitor: Callable[[int, float], bool] | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 0, f"epochs must be at least 0, not {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, not {self.batch_size}"),
            (self.learning_rate > 0, f"learning_rate must be positive, not {self.learning_rate}"),
            (self.learning_step >= 1,
             f"learning_step must be at least 1, not {self.learning_step}"),
            (self.weight_decay >= 0, f"weight_decay must be at least 0, not {self.weight_decay}"),
            (self.prune_threshold is None or 0 <= self.prune_threshold < 1,
             f"prune_threshold must be in [0, 1), not {self.prune_threshold}"),
            (self.quantization in QUANTIZATIONS, f"quantization must be one of "
             f"{', '.join(QUANTIZATIONS)}, not '{self.quantization}'"),
            (self.max_len is None or self.max_len >= 1,
             f"max_len must be at least 1, not {self.max_len}"),
            (self.device in ("cpu", "auto") or self.device.startswith("cuda"),
             f"device must be cpu, cuda or auto, not '{self.device}'"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @classmethod
    def from_point(cls, point: Mapping[str, object], epochs: int, pruning: bool = True,
                   quantization: Quantization = "none", device: str = "cpu",
                   seed: int = 0) -> "TrainConfig":
        """The configuration at a point: its `train.*` values, defaults for the others.

        Args:
            point: readable parameter names -> values (`train.learning_rate`, ...).
            epochs: passes over the training set.
            pruning: prune to the point's `train.prune_threshold` (no pruning when
                False or when the space has no such parameter).
            quantization, device, seed: as in `TrainConfig`.
        """
        def value(key: str, kind: type, fallback: Any) -> Any:
            raw = point.get(f"train.{key}")
            return fallback if raw is None else kind(raw)

        default = cls(epochs=epochs)
        return cls(
            epochs=epochs,
            batch_size=value("batch_size", int, default.batch_size),
            learning_rate=value("learning_rate", float, default.learning_rate),
            learning_gamma=value("learning_gamma", float, default.learning_gamma),
            learning_step=value("learning_step", int, default.learning_step),
            weight_decay=value("weight_decay", float, default.weight_decay),
            prune_threshold=value("prune_threshold", float, None) if pruning else None,
            quantization=quantization,
            max_len=value("max_len", int, None),
            device=device,
            seed=seed,
        )


@dataclass
class TrainResult:
    """What training one network gave.

    Attributes:
        model: the deployable model (quantised when asked; on the CPU).
        float_model: the trained, pruned float network (on the CPU); its state dict is
            what gets saved and inherited.
        val_error: the validation error (`evaluate` with `data.measure`): the fraction
            (0..1) of validation examples `model` gets wrong, for `mse` data their mean
            squared error, or on an anomaly set 1 - the AUC of the reconstruction error.
        sparsity: the fraction of conv/linear weights of `float_model` that are zero.
        train_seconds: wall-clock seconds of the training epochs (pruning included, and
            the per-epoch validation of a `monitor`).
        epochs_run: the epochs completed.
        curve: the float network's validation error after each epoch (with a
            `monitor`; else empty).
        stopped: whether the monitor stopped the training before its last epoch (then
            `model` is the float network and `val_error` the curve's last error).
    """

    model: nn.Module
    float_model: SparsemodNet
    val_error: float
    sparsity: float
    train_seconds: float
    epochs_run: int
    curve: list[float] = field(default_factory=list)
    stopped: bool = False


class Trainer(Protocol):
    """The interface of a training loop: plug in your own to replace `default_trainer`.

    A trainer gets a freshly built (or inheriting) float network, the data and the
    configuration, and returns a `TrainResult`. It should train on `config.device`,
    take its batches from `batches` (which cuts sequences into `config.max_len` chunks
    and applies `data.collate`), make `model` with `deployable`, leave `float_model` on
    the CPU, and raise `TrainingError` when training diverges (the trial is recorded as
    failed). With an early-stopping rule, `config.monitor` is set: call it after each
    epoch with the validation error and, when it returns True, stop and return
    `stopped=True` with the `curve` (a trainer that ignores it is never stopped early).
    Any plain function with this signature will do, e.g. one that trains
    twice as long:

        def longer(net, data, config):
            return default_trainer(net, data, dataclasses.replace(config, epochs=2 * config.epochs))
    """

    def __call__(self, net: SparsemodNet, data: DataBundle, config: TrainConfig) -> TrainResult:
        ...


# --- measures ----------------------------------------------------------------------------------


def evaluate(model: nn.Module, examples: DataLoader[Any], loss: str = "cross_entropy") -> float:
    """The error of `model` on `examples` (in eval mode, on the model's device).

    When `examples` gives (chunks, y, window) batches (`batching.window_loader`), an
    example is a window, its output the mean of its chunks' outputs (logits).
    For `cross_entropy` (classification) the fraction (0..1) of examples it classifies
    wrongly; for `mse` (regression) the mean squared error over every output value of
    every example, in the squared units of the targets; for `auc` (anomaly detection,
    y: 0/1 flags) 1 - the ROC AUC of the reconstruction error (`anomaly`).
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    if loss == "auc":
        with torch.no_grad():
            return anomaly_error(lambda x: model(x.to(device)).cpu(), examples)[0]
    wrong = total = 0.0
    with torch.no_grad():
        for x, y, *windows in examples:
            out = model(x.to(device)).cpu()
            if windows:  # chunks of whole windows: a window's output is their mean
                counts = torch.bincount(windows[0], minlength=len(y)).unsqueeze(1)
                out = torch.zeros(len(y), out.shape[1]).index_add_(0, windows[0], out) / counts
            if loss == "mse":
                wrong += float(((out - y) ** 2).sum())
                total += y.numel()
            else:
                wrong += int((out.argmax(dim=1) != y).sum())
                total += len(y)
    if total == 0:
        raise TrainingError("nothing to evaluate: the loader gives no examples")
    return wrong / total


def sparsity(model: nn.Module) -> float:
    """The fraction of conv/linear weights (float or int8) that are exactly zero."""
    zeros = total = 0
    for module in model.modules():
        if isinstance(module, _PRUNABLE):
            weight = module.weight.detach()
        elif isinstance(module, _QUANTIZED_WEIGHTED):
            weight = module.weight().int_repr()  # type: ignore[no-untyped-call]
        else:
            continue
        zeros += int((weight == 0).sum())
        total += weight.numel()
    return zeros / total if total else 0.0


# --- the default trainer -----------------------------------------------------------------------


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' was asked for, but CUDA is not available")
    return torch.device(name)


class _GradualPruning:
    """Global L1 pruning of every conv/linear weight, raised to `threshold` over `epochs`.

    Each step prunes at the start of an epoch, so that the epoch's training repairs
    the damage (and refreshes batch-norm statistics): pruning a trained network after
    its last epoch instead costs digits nets 5 to 50 points of accuracy at 50-70%.
    """

    def __init__(self, net: nn.Module, threshold: float, epochs: int) -> None:
        self.weights = [(m, "weight") for m in net.modules() if isinstance(m, _PRUNABLE)]
        self.total = sum(m.weight.numel() for m, _ in self.weights)
        self.threshold = threshold
        self.epochs = epochs
        self.pruned = 0

    def start_epoch(self, epoch: int) -> None:
        """Prune to `threshold * epoch / epochs` of all weights: the sparsity that epoch
        `epoch` (from 1) ends with."""
        target = round(self.threshold * epoch / self.epochs * self.total)
        if target > self.pruned:
            # An int amount counts weights among those still unpruned: exact totals.
            prune.global_unstructured(self.weights, prune.L1Unstructured,
                                      amount=target - self.pruned)
            self.pruned = target

    def finish(self) -> None:
        """Make the zeros real weights (drop masks and hooks)."""
        for module, name in self.weights:
            if prune.is_pruned(module):
                prune.remove(module, name)  # type: ignore[no-untyped-call]


def _fit(net: SparsemodNet, batches: DataLoader[Any], config: TrainConfig,
         device: torch.device, loss_name: str = "cross_entropy",
         after_epoch: Callable[[int], bool] | None = None) -> int:
    """Train `net` in place for `config.epochs`, pruning a step further every epoch, or
    until `after_epoch(epoch)` says stop; returns the epochs trained."""
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate,
                                 weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, config.learning_step,
                                               config.learning_gamma)
    pruning = (_GradualPruning(net, config.prune_threshold, config.epochs)
               if config.prune_threshold and config.epochs else None)
    loss_function = nn.MSELoss() if loss_name == "mse" else nn.CrossEntropyLoss()
    trained = 0
    for epoch in range(1, config.epochs + 1):
        if pruning is not None:
            pruning.start_epoch(epoch)
        net.train()
        for step, (x, y) in enumerate(batches, 1):
            optimizer.zero_grad()
            loss = loss_function(net(x.to(device)), y.to(device))
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the training loss became {loss.item()} at epoch {epoch}, step {step} "
                    f"(learning rate {schedule.get_last_lr()[0]:g}); the network diverged")
            loss.backward()
            optimizer.step()
        schedule.step()
        trained = epoch
        if after_epoch is not None and after_epoch(epoch):
            break
    if pruning is not None:
        pruning.finish()
    return trained


def batches(dataset: Dataset[Any], data: DataBundle, config: TrainConfig,
            training: bool) -> DataLoader[Any]:
    """Batches of `dataset` (a split of `data`) as `config` asks: for training, shuffled
    from the seed without a short last batch; else `EVAL_BATCH` at a time, in order.
    Sequences are cut into `config.max_len` chunks (images ignore it, as the builder does);
    to evaluate, without a user collate, the chunks of each window stay together
    (`window_loader`), so that the error is counted per window, not per chunk.
    """
    max_len = config.max_len if data.kind == "sequence" else None
    if training:
        return loader(dataset, config.batch_size, True, config.seed, max_len, data.collate,
                      drop_last=True)
    if max_len is not None and data.collate is None:
        return window_loader(dataset, EVAL_BATCH, max_len)
    return loader(dataset, EVAL_BATCH, False, config.seed, max_len, data.collate)


def deployable(net: SparsemodNet, data: DataBundle, config: TrainConfig) -> nn.Module:
    """The model to deploy from a trained float `net`, on the CPU (`net` moves there too).

    `net` itself for `none`; else an int8 copy per `config.quantization`, static int8
    calibrated on the first `CALIBRATION_BATCHES` training batches of the seed. The same
    net, data and config give the same model, so a saved network can be quantised again
    (for its test error, say) exactly as it was when trained.
    """
    net.cpu().eval()
    if config.quantization == "none":
        return net
    if config.quantization == "dynamic":
        return quantize.dynamic_int8(net)
    first = itertools.islice(batches(data.train, data, config, training=True),
                             CALIBRATION_BATCHES)
    static = quantize.static_int8(net, [x for x, _ in first])
    return quantize.dynamic_int8(static) if config.quantization == "both" else static


def default_trainer(net: SparsemodNet, data: DataBundle, config: TrainConfig) -> TrainResult:
    """SpArSe's training recipe; implements `Trainer`.

    Adam (learning rate, weight decay) on the data's loss (cross-entropy, or the mean
    squared error for `mse` data) with a `StepLR` schedule stepped
    every epoch. With `prune_threshold`, global L1 unstructured pruning over the weights
    of every Conv1d/Conv2d/Linear (LSTM/GRU excluded) raises their sparsity gradually:
    after epoch e (from 1) `prune_threshold * e / epochs` of them are zero (each step
    pruned at the start of its epoch); the masks are then made permanent. Then
    `deployable` quantises as asked, and the validation error is that of the deployable
    model, on the CPU. `net` is trained in place and returned as `float_model`.
    Reproducible for a seed, given the same initial network (it seeds torch's global
    generator).

    With `config.monitor`, the float network's validation error is measured after each
    epoch (torch's random state kept, so a training that goes on is the same as without
    a monitor) and passed to it; when it says stop, training ends there, unquantised.

    Raises:
        TrainingError: the loss became NaN or infinite.
        ConfigError: CUDA was asked for but is not available.
    """
    device = _device(config.device)
    torch.manual_seed(config.seed)
    net.to(device)
    start = time.perf_counter()
    curve: list[float] = []
    trained = _fit(net, batches(data.train, data, config, training=True), config, device,
                   data.loss, _monitoring(net, data, config, curve))
    seconds = time.perf_counter() - start
    if trained < config.epochs:
        net.cpu()
        return TrainResult(net, net, curve[-1], sparsity(net), seconds, trained, curve, True)
    model = deployable(net, data, config)
    val_error = evaluate(model, batches(data.val, data, config, training=False), data.measure)
    return TrainResult(model, net, val_error, sparsity(net), seconds, config.epochs, curve)


def _monitoring(net: nn.Module, data: DataBundle, config: TrainConfig,
                curve: list[float]) -> Callable[[int], bool] | None:
    """With a monitor, what `_fit` calls after each epoch: the validation error appended
    to `curve` and passed to the monitor, leaving the training as it was (torch's random
    state, the weights pruning ranks)."""
    monitor = config.monitor
    if monitor is None:
        return None
    examples = batches(data.val, data, config, training=False)

    def after_epoch(epoch: int) -> bool:
        # Pruning ranks the masked weights as the last training step's forward pass left
        # them, which a validation pass would refresh: they are put back.
        masked = [(m, m.weight) for m in net.modules() if hasattr(m, "weight_orig")]
        with torch.random.fork_rng(devices=[]):
            curve.append(evaluate(net, examples, data.measure))
        for module, weight in masked:
            module.weight = weight
        return monitor(epoch, curve[-1])
    return after_epoch
