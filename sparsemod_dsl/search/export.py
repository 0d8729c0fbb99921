"""Export a network of a search, and check it on the experiment's test data.

`export_trial(results, trial, format)` rebuilds the float network a search saved for a
trial, quantises it exactly as the search did (`train.deployable`: the same calibration
batches of the same seed, static int8), writes the files of the asked format
(`nets.deploy.export`), and runs the exported model in its runtime (TensorFlow Lite Micro for
`tflite` and `c`, onnxruntime for the ONNX formats) on the experiment's test split, next
to torch's model, so that `sparsemodc export` prints the accuracy the device will have.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import UsageError
from ..nets.deploy import tflm
from ..nets.deploy.export import Exported, export_int8, export_onnx, run_tflm
from ..nets.deploy.standardize import standardized_net, standardized_program
from .anomaly import anomaly_error
from .experiment import load_experiment
from .journal import Journal
from .networks import load_network_record
from .prepare import clip, importable, load_prepared
from .report import setup
from .resize import resized
from .results import JOURNAL, SETUP
from .runner import trial_seed
from .train import CALIBRATION_BATCHES, TrainConfig, batches, deployable, evaluate
from .windows import setup_space


@dataclass(frozen=True)
class TrialExport:
    """An export with the test error of torch's model (`reference`: "torch int8"
    for TFLite, "torch float" for ONNX) and of the runtime's: a fraction (0..1) of
    examples wrong, for `loss` mse the mean squared error in the targets' units, or for
    `auc` (an anomaly set) 1 - the ROC AUC of the reconstruction error."""

    exported: Exported
    reference: str
    runtime: str | None
    torch_error: float | None
    runtime_error: float | None
    examples: int
    loss: str = "cross_entropy"
    #: Whether the model standardises its raw input itself (its first operator).
    standardized: bool = False


def _errors(predict: Any, examples: DataLoader[Any], loss: str) -> tuple[float, int]:
    if loss == "auc":
        return anomaly_error(predict, examples)
    wrong = total = count = 0.0
    for x, y, *windows in examples:
        out = np.asarray(predict(x))
        if windows:  # chunks of whole windows (`batching.window_loader`): their mean
            out = np.stack([out[windows[0].numpy() == w].mean(0) for w in range(len(y))])
        if loss == "mse":
            wrong += float(((out - y.numpy()) ** 2).sum())
            total += y.numel()
        else:
            wrong += int((out.argmax(axis=1) != y.numpy()).sum())
            total += len(y)
        count += len(y)
    return wrong / max(total, 1), int(count)


def export_trial(results: Path, trial_id: int, format: str, name: str | None = None
                 ) -> TrialExport:
    """Export the saved network of `trial_id` and measure it on the test split.

    Raises:
        UsageError: not a results directory, no such trial, or no saved network.
        ExportError: the network cannot be exported in `format`.
    """
    info = setup(results)
    trial = Journal(results / JOURNAL).trial(trial_id)
    if trial.status != "completed":
        raise UsageError(f"trial {trial_id} is {trial.status}, not completed: nothing to export")
    arch = Path(info["arch"])
    record = load_network_record(results, trial_id, arch.read_text(encoding="utf-8"))
    if not info.get("experiment"):
        raise UsageError(f"{results / SETUP}: names no experiment file: cannot reload the data")
    experiment = load_experiment(info["experiment"])
    raw = dataclasses.replace(experiment.data, standardize=False)
    with importable(experiment.path.parent):  # raw: the exported model standardises
        data = load_prepared(dataclasses.replace(experiment, data=raw))
    space = setup_space(info)
    program = space.program
    net = space.build(trial.params)
    net.load_state_dict(record.state_dict)
    normalization = info.get("normalization")
    if normalization:
        net = standardized_net(program, trial.params, net, normalization["mean"],
                               normalization["std"])
        program = standardized_program(program)
    data = resized(data, space.trace_input(trial.params))  # a searched input resolution
    config = clip(TrainConfig.from_point(trial.params, 0, False, "post", "cpu",
                                         trial_seed(experiment, trial_id)), data)
    test = batches(data.test, data, config, training=False)
    name = name or f"{space.name}_trial{trial_id}"
    if format in ("onnx", "onnx-int8"):
        train = batches(data.train, data, config, training=True)
        calibration = [x for (x, _), _ in zip(train, range(CALIBRATION_BATCHES))]
        exported = export_onnx(net, space.trace_input(trial.params), format, name, calibration)
        from ..nets.deploy.onnx_export import run_onnx  # noqa: PLC0415 (onnxruntime loads on use)

        net.eval()
        with torch.no_grad():
            torch_error = evaluate(net, test, data.measure)
        model = exported.model
        assert model is not None
        runtime_error, count = _errors(lambda x: run_onnx(model, x.numpy()), test, data.measure)
        return TrialExport(exported, "torch float", "onnxruntime", torch_error, runtime_error,
                           count, data.measure, bool(normalization))
    int8 = deployable(net, data, dataclasses.replace(config, quantization="post"))
    exported = export_int8(program, trial.params, int8, format, name)
    torch_error = evaluate(int8, test, data.measure)
    if not tflm.available():
        return TrialExport(exported, "torch int8", None, torch_error, None, 0, data.measure,
                           bool(normalization))
    runtime_error, count = _errors(lambda x: run_tflm(exported, x), test, data.measure)
    return TrialExport(exported, "torch int8", "TensorFlow Lite Micro", torch_error,
                       runtime_error, count, data.measure, bool(normalization))
