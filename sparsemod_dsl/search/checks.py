"""Checks of an experiment against its space, its data and the machine, before any training.

A search that cannot work is refused when it starts, naming the experiment file and the
key, rather than recording every trial as failed: a splitter without a `max_len` to cut
at, a loss that does not fit the data's labels, a `device` that torch cannot use.
"""

from __future__ import annotations

from ..errors import SparsemodError, UsageError
from ..lang import ir
from ..lang.infer import MAX_LEN
from .data import DataBundle
from .experiment import Experiment


class SearchError(SparsemodError):
    """The search cannot run (bad data binding, no feasible point found, ...)."""


class SearchSetupError(UsageError):
    """The experiment cannot run here: it asks for a device this machine lacks (exit 2)."""


def check_device(config: Experiment) -> None:
    """`device = "cuda"` (or `cuda:N`) needs a GPU that torch can use here, or GPUs
    reserved per trial on Ray (`execution.gpus_per_trial`); `cpu` and `auto` always run.

    Raises:
        SearchSetupError: naming the key, the device and what torch sees.
    """
    device = config.device
    if not device.startswith("cuda"):
        return
    execution = config.execution
    if execution.uses_ray and not execution.gpus_per_trial:
        raise SearchSetupError(
            f"{config.path}: device = {device!r} with Ray workers needs "
            "execution.gpus_per_trial (the GPUs each trial reserves; a worker sees only those)")
    if execution.gpus_per_trial:
        return  # the Ray cluster's GPUs, checked when the workers start (`rayexec`)
    import torch  # noqa: PLC0415  (only when a GPU is asked for)

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA (a CPU-only build)"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if index < count:
        return
    sees = (f"torch {torch.__version__} (built with {build}) sees {count} GPU"
            f"{'' if count == 1 else 's'}" + (f": cuda:0..cuda:{count - 1}" if count else
                                             ": torch.cuda.is_available() is False"))
    raise SearchSetupError(
        f"{config.path}: device = {device!r} asks for a GPU, but {sees}. Set device = "
        "\"cpu\", or \"auto\" to use a GPU only where there is one")


def check_splitter(config: Experiment, program: ir.Program, data: DataBundle) -> None:
    """`data.splitter` cuts sequences into chunks of a `train.max_len` parameter, which
    the space must declare. (Without the splitter, a declared max_len is pinned to the
    windows' length: `prepare.fit_space`.)"""
    if not config.data.splitter:
        return
    if all(p.name != MAX_LEN for p in program.parameters):
        raise SearchError(
            f"{config.path}: data.splitter is true but {config.arch.name} has "
            f"no `max_len` in its train section (the splitter cuts sequences into chunks "
            f"of train.max_len steps; declare it, or set data.splitter = false)"
        )
    if data.kind != "sequence":
        raise SearchError(f"{config.path}: data.splitter needs sequence data")


def check_loss(config: Experiment, program: ir.Program, data: DataBundle) -> None:
    """The network's declared loss is the data's: labels for `classes`, target
    vectors for `output: vector(N)` with `loss = mse`; on an anomaly set, an output
    of the input's size (the score is the reconstruction error)."""
    if program.loss != data.loss:
        wants = {"mse": "float target vectors (regression)",
                 "cross_entropy": "integer class labels"}
        raise SearchError(
            f"{config.path}: {config.arch.name} declares loss "
            f"{program.loss}, which needs {wants[program.loss]}, but "
            f"{config.data.dataset} has {wants[data.loss]}"
        )
    if data.anomaly and data.input_shape != (program.classes,):
        raise SearchError(
            f"{config.path}: {config.data.dataset} is an anomaly set, scored by "
            f"the reconstruction error, but {config.arch.name} outputs "
            f"{program.classes} values for an input of shape "
            f"{data.input_shape}: an autoencoder's output is its input's size")
