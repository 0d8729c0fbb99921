"""A loaded dataset made ready for a space: its layout, its standardisation, and the
training settings that do not fit it.

- `relayout`: samples in a declared layout (`data.layout`, e.g. `NCT`) turned into the
  compiler's (C, H, W) images and (T, F) sequences;
- `check_input`: the data's sample shape against the `.arch` header's input (exit 2
  when they disagree in a way a wrong layout explains, or when a layout was declared);
- `standardize`: every channel (images) or feature (sequences, vectors) to mean 0 and
  standard deviation 1, with statistics from the train split only, applied to all three;
- `clip` and `clip_notes`: a batch size above the training set, or a `max_len` above the
  sequence length, cut to what the data has, with a note printed once per search;
- `fit_space`: without the splitter, a space's `train.max_len` pinned to the windows'
  length (every sample a whole window), with its note, and the clipping notes;
- `importable`: the experiment file's folder on the import path, for `module:function`;
- `load_prepared`: all of it for an experiment, as the search and `export` load data.

The contract in full is docs/data.md.
"""

from __future__ import annotations

import dataclasses
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import Dataset, TensorDataset

from ..errors import UsageError
from ..lang import ir
from ..lang.compiler import check_file
from ..lang.infer import MAX_LEN
from ..space import Space
from .data import DataBundle, DataError, _floats, _raised, load_dataset
from .experiment import Experiment
from .train import TrainConfig
from .windows import whole_windows

#: Declarable layouts: the kind they are for, and the permutation of a sample's axes
#: that gives the compiler's order ((C, H, W) for images, (T, F) for sequences).
LAYOUTS: dict[str, tuple[str, tuple[int, ...]]] = {
    "NCHW": ("image", (0, 1, 2)),
    "NHWC": ("image", (2, 0, 1)),
    "NTC": ("sequence", (0, 1)),
    "NCT": ("sequence", (1, 0)),
    "NF": ("vector", (0,)),
}
#: A standard deviation below this counts as a constant feature (divided by 1).
MIN_STD = 1e-8


class _Mapped(Dataset[Any]):
    """`dataset` with `function` applied to the x of every sample."""

    def __init__(self, dataset: Dataset[Any], function: Callable[[torch.Tensor], torch.Tensor]
                 ) -> None:
        self.dataset = dataset
        self.function = function

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        x, label = self.dataset[index]
        return self.function(_floats(x)), label


Function = Callable[[torch.Tensor], torch.Tensor]


def _mapped(data: DataBundle, function: Function, whole: Function, **changes: Any
            ) -> DataBundle:
    """`data` with `function` applied to every sample's x: at once (`whole`, on the
    stacked x) for a `TensorDataset`, as it is read for any other dataset."""
    def split(dataset: Dataset[Any]) -> Dataset[Any]:
        if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
            x, y = dataset.tensors
            return TensorDataset(whole(x.to(torch.float32)), y)
        return _Mapped(dataset, function)

    return dataclasses.replace(data, train=split(data.train), val=split(data.val),
                               test=split(data.test), **changes)


# --- layouts ---------------------------------------------------------------------------------


def relayout(data: DataBundle, layout: str | None) -> DataBundle:
    """`data` with samples in `layout` (None: already the compiler's order) reordered.

    Raises:
        UsageError: the layout is for another kind of sample (its number of axes).
    """
    if layout is None:
        return data
    kind, order = LAYOUTS[layout]
    if kind != data.kind:
        raise UsageError(f"data.layout {layout} is for {kind} samples of {len(order) + 1}-D "
                         f"arrays, but a sample has shape {data.input_shape} (a {data.kind})")
    if order == tuple(range(len(order))):
        return data
    shape = tuple(data.input_shape[axis] for axis in order)
    batch = (0, *(axis + 1 for axis in order))
    return _mapped(data, lambda x: x.permute(*order).contiguous(),
                   lambda x: x.permute(*batch).contiguous(), input_shape=shape)


def check_input(declared: ir.InputSpec, data: DataBundle, layout: str | None,
                where: str) -> None:
    """Stop (exit 2) when the data's samples do not have the `.arch` input's shape and
    that is a mistake: a layout was declared, or the same sizes come in another order
    (a (N, C, T) array read as C steps of T features). Otherwise the data's sizes bind
    the header's (stdlib spaces are written for one dataset and used with others)."""
    if declared.shape is None or declared.searched:
        return
    expected, received = tuple(declared.shape), tuple(data.input_shape)
    if declared.kind == data.kind and expected == received:
        return
    if layout is None and sorted(expected) != sorted(received):
        return
    name = "/".join(k for k, (kind, _) in LAYOUTS.items() if kind == declared.kind)
    raise UsageError(
        f"{where}: the .arch input is {declared.kind} {expected}, but a data sample is "
        f"{data.kind} {received} after data.layout {layout or 'default'}: set data.layout "
        f"({name}) to the order of the sample's axes")


# --- standardisation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Normalization:
    """Per-channel (images) or per-feature (sequences, vectors) mean and standard
    deviation of the train split: a network sees (x - mean) / std."""

    kind: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def _shape(self) -> tuple[int, ...]:
        return (-1, 1, 1) if self.kind == "image" else (-1,)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean).reshape(self._shape())
        return (x - mean) / torch.tensor(self.std).reshape(self._shape())

    def as_json(self) -> dict[str, Any]:
        """The record saved with a network (`networks/trial-ID.json`) and in `setup.json`."""
        axis = "channel" if self.kind == "image" else "feature"
        return {"per": axis, "mean": list(self.mean), "std": list(self.std)}


def fit_normalization(dataset: Dataset[Any], kind: str) -> Normalization:
    """The statistics of every sample of `dataset` (the train split), in float64.

    Raises:
        DataError: a sample cannot be read (the search stops before any training).
    """
    total = square = count = None
    for index in range(len(dataset)):  # type: ignore[arg-type]
        try:  # user code: the dataset's __getitem__
            x = _floats(dataset[index][0]).double()
        except (Exception, SystemExit) as error:
            raise DataError(f"standardising: reading train sample {index} failed: "
                            f"{_raised(error)} (set data.standardize = false to skip the "
                            "statistics)") from None
        values = x.reshape(x.shape[0], -1) if kind == "image" else x.reshape(-1, x.shape[-1]).T
        sums, squares = values.sum(1), (values ** 2).sum(1)
        total = sums if total is None else total + sums
        square = squares if square is None else square + squares
        count = values.shape[1] + (count or 0)
    if total is None or square is None or not count:
        raise DataError("standardisation needs a non-empty train split")
    mean = total / count
    std = (square / count - mean ** 2).clamp(min=0).sqrt()
    std = torch.where(std < MIN_STD, torch.ones_like(std), std)
    return Normalization(kind, tuple(mean.tolist()), tuple(std.tolist()))


def standardize(data: DataBundle) -> DataBundle:
    """`data` with every split standardised by the train split's statistics, which it keeps
    in `normalization`. Anomaly sets are left as they are: their targets are their inputs."""
    if data.anomaly:
        return data
    normalization = fit_normalization(data.train, data.kind)
    return _mapped(data, normalization, normalization, normalization=normalization)


# --- settings that do not fit the data --------------------------------------------------------


def _highest(program: ir.Program, name: str) -> float | None:
    for parameter in program.parameters:
        if parameter.name == name:
            domain = parameter.domain
            values = (domain.value,) if isinstance(domain, ir.FixedDomain) else \
                getattr(domain, "values", None)
            return float(max(values)) if values else float(getattr(domain, "high"))
    return None


def clip_notes(program: ir.Program, data: DataBundle) -> list[str]:
    """What `clip` will change, in words, for the notes a search prints once."""
    notes = []
    examples = len(data.train)  # type: ignore[arg-type]
    batch = _highest(program, "train.batch_size")
    if batch is not None and batch > examples:
        notes.append(f"train.batch_size goes up to {batch:g}, above the {examples} training "
                     f"examples: larger batch sizes are clipped to {examples}")
    max_len = _highest(program, "train.max_len")
    if max_len is not None and data.kind == "sequence" and max_len > data.input_shape[0]:
        steps = data.input_shape[0]
        notes.append(f"train.max_len goes up to {max_len:g}, above the {steps} steps of a "
                     f"sequence: longer chunks are clipped to {steps} (whole windows)")
    return notes


def clip(config: TrainConfig, data: DataBundle) -> TrainConfig:
    """`config` with a batch size of at most the training examples and, for sequences,
    a `max_len` of at most the steps of a sequence."""
    examples = len(data.train)  # type: ignore[arg-type]
    max_len = config.max_len
    if max_len is not None and data.kind == "sequence":
        max_len = min(max_len, data.input_shape[0])
    return dataclasses.replace(config, batch_size=min(config.batch_size, examples),
                               max_len=max_len)


def fit_space(space: Space, data: DataBundle, splitter: bool) -> tuple[Space, list[str]]:
    """`space` made to fit `data`, and the notes a search prints once: without the
    splitter, a sequence space's `train.max_len` is pinned to the windows' length
    (`whole_windows`); then what `clip` will change (`clip_notes`)."""
    notes = []
    declared = any(p.name == MAX_LEN for p in space.program.parameters)
    if declared and not splitter and data.kind == "sequence":
        steps = data.input_shape[0]
        space = Space(whole_windows(space.program, steps))
        notes.append(f"data.splitter is false: {MAX_LEN} is pinned to {steps}, the steps of "
                     "a window; every network sees whole windows and the error is counted "
                     "per window")
    return space, notes + clip_notes(space.program, data)


@contextmanager
def importable(folder: Path) -> Iterator[None]:
    """`folder` first on the import path within the `with` body, so that a
    `module:function` beside the experiment file imports without PYTHONPATH."""
    entry = str(Path(folder).resolve())
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        sys.path.remove(entry)


def load_prepared(experiment: Experiment) -> DataBundle:
    """The experiment's dataset in the compiler's layout, checked against the `.arch`
    input and standardised unless `data.standardize` is false. Call it inside
    `importable(experiment.path.parent)` for a dataset module beside the file.

    Raises:
        DataError: the dataset cannot be loaded.
        UsageError: the samples do not match the `.arch` input or the layout.
    """
    settings = experiment.data
    options = {**settings.options, **({"collate": settings.collate} if settings.collate else {})}
    data = relayout(load_dataset(settings.dataset, experiment.seed, options), settings.layout)
    declared = check_file(experiment.arch).program
    if declared is not None:
        check_input(declared.input, data, settings.layout, f"{experiment.path}: data.layout")
    return standardize(data) if settings.standardize else data
