"""Datasets and loaders for training the networks of a search.

`load_dataset(spec)` gives a `DataBundle` (train/val/test splits, classes, input kind
and shape) for a built-in set or a user's `module:function`:

- `digits`: scikit-learn's 8x8 handwritten digits (1797 images, 10 classes, shipped
  with scikit-learn, no download) as (1, 8, 8) float32 images in [0, 1];
- `sequences`: a synthetic 4-class set of noisy multichannel waves (made here,
  reproducible), 1200 sequences of 100 steps x 8 features;
- `frames`: a synthetic reconstruction set (`frames.py`): 1200 vectors of 64 features,
  each its own target (an autoencoder's task, trained with mse);
- `frame_anomalies`: the same, a quarter anomalous: an anomaly set (`anomaly`, AUC);
- `package.module:function`: returns `(train, val, test, classes)` torch datasets whose
  samples are `(x, label)`; a 3-D x is an image (C, H, W), a 2-D x a sequence (T, F),
  a 1-D x a vector (N). For regression, labels are float vectors of `classes` values;
  for anomaly detection, train labels are those and val/test labels 0/1 anomaly flags.

Built-in sets are split 60/20/20, stratified by class, with the seed. Batching (the
sequence splitter, collates) is `batching.py`; standardisation, layouts and clipping
`prepare.py`; the whole contract is docs/data.md.
"""

from __future__ import annotations

import importlib
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from ..errors import SparsemodError
from .frames import frame_anomalies, frames

Kind = Literal["image", "sequence", "vector"]
#: The kind of input a sample's x is, by its number of dimensions.
KINDS: dict[int, Kind] = {3: "image", 2: "sequence", 1: "vector"}
Collate = Callable[..., Any]

#: Fractions of each class in the train and validation splits (the rest is the test split).
SPLIT = (0.6, 0.2)

#: The `sequences` set: cycles per step of its two wave frequencies (periods of 20 and 8
#: steps, so a chunk of 20 steps still tells them apart) and its noise level.
WAVE_FREQUENCIES = (1 / 20, 1 / 8)
WAVE_NOISE = 1.0
#: The most values (samples x steps x features) the `sequences` set makes: 400 MB of float32.
MAX_SEQUENCE_VALUES = 10**8


class DataError(SparsemodError):
    """A dataset or collate cannot be loaded or used; the message names it and says why."""


@dataclass
class DataBundle:
    """The splits of a dataset and what a network needs to know about it.

    Attributes:
        train, val, test: datasets of `(x, label)` samples.
        classes: the size of a network's output: the number of classes (labels are
            0 .. classes - 1), or for regression the length of the target vectors.
        kind: `image`, `sequence` or `vector`.
        input_shape: (C, H, W) for images, (T, F) for sequences (T: the steps of the
            first sample, before any `max_len` splitting), (N,) for vectors.
        collate: a user function that makes batches, or None for stacking.
        loss: `cross_entropy` (integer labels) or `mse` (float target vectors).
        anomaly: the val and test labels are anomaly flags (`anomaly`), not targets.
        normalization: the standardisation applied to every split (`prepare.standardize`),
            or None for raw samples.
    """

    train: Dataset[Any]
    val: Dataset[Any]
    test: Dataset[Any]
    classes: int
    kind: Kind
    input_shape: tuple[int, ...]
    collate: Collate | None = None
    loss: str = "cross_entropy"
    anomaly: bool = False
    normalization: Any = None

    @property
    def measure(self) -> str:
        """How the error is measured (`objective`): the loss, or `auc` for anomalies."""
        return "auc" if self.anomaly else self.loss


# --- references to user code -----------------------------------------------------------------


def resolve(spec: str) -> Callable[..., Any]:
    """The function a `package.module:function` reference names.

    Raises:
        DataError: a malformed reference, a module that fails to import, a missing
            attribute or one that is not callable.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise DataError(f"{spec}: not a built-in dataset ({', '.join(BUILTIN)}) nor a "
                        "'package.module:function' reference")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise DataError(f"{spec}: cannot import '{module_name}' ({error})") from None
    except (Exception, SystemExit) as error:  # the user's module itself is broken
        raise DataError(f"{spec}: importing '{module_name}' failed: {_raised(error)}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise DataError(f"{spec}: '{module_name}' has no attribute '{attr}'")
        target = getattr(target, part)
    if not callable(target):
        raise DataError(f"{spec}: '{attr}' is a {type(target).__name__}, not a function")
    return target  # type: ignore[no-any-return]


def _accepts(function: Callable[..., Any], keyword: str) -> bool:
    """True when `function` takes `keyword` (by name or through **kwargs)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any((p.name == keyword and p.kind != p.POSITIONAL_ONLY) or p.kind == p.VAR_KEYWORD
               for p in parameters)


def _floats(x: Any) -> torch.Tensor:
    """`x` (a tensor, an array or nested lists) as a float32 tensor."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float32)
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def _call(function: Callable[..., Any], spec: str, seed: int,
          options: Mapping[str, Any]) -> Any:
    """`function(**options)`, with `seed=seed` when it takes a seed."""
    unknown = sorted(name for name in options if not _accepts(function, name))
    if unknown:
        raise DataError(f"{spec}: unknown option(s) {', '.join(unknown)}")
    kwargs = dict(options)
    if _accepts(function, "seed"):
        kwargs.setdefault("seed", seed)
    try:
        return function(**kwargs)
    except SparsemodError:
        raise
    except (Exception, SystemExit) as error:
        raise DataError(f"{spec}: the dataset function failed: {_raised(error)}") from None


def _raised(error: BaseException) -> str:
    """What user code raised, in words (`sys.exit` included)."""
    if isinstance(error, SystemExit):
        return f"it called sys.exit({error.code!r})"
    return f"{type(error).__name__}: {error}"


# --- built-in datasets -------------------------------------------------------------------------


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits: (1797, 1, 8, 8) pixels in [0, 1] and labels 0..9."""
    from sklearn.datasets import load_digits  # here: importing it takes about a second

    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    return x, torch.tensor(digits.target, dtype=torch.int64)


def _sequences(samples: int = 1200, steps: int = 100,
               features: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy waves in 4 balanced classes: slow or fast x channels in phase or not.

    Every sample is one sine wave (random phase, amplitude 0.5..1.5, frequency within
    10% of the class's) on all channels, plus Gaussian noise; the fast classes have
    2.5 times the frequency, and in the odd classes the second half of the channels
    carries the wave inverted. Every channel's mean over time is about zero in every
    class, so the classes differ only in how the signal moves, not in its level.
    Always the same data (a fixed generator): the seed of `load_dataset` picks the split.
    """
    sizes = {"samples": samples, "steps": steps, "features": features}
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"sequences: option {name} must be a positive integer, "
                            f"found {value!r}")
    if samples * steps * features > MAX_SEQUENCE_VALUES:
        raise DataError(f"sequences: {samples} samples x {steps} steps x {features} features "
                        f"are more than the {MAX_SEQUENCE_VALUES:,} values it makes")
    rng = np.random.default_rng(12345)
    labels = rng.permutation(np.arange(samples) % 4)
    base = np.asarray(WAVE_FREQUENCIES)[labels // 2]
    frequency = base * rng.uniform(0.9, 1.1, samples)
    phase = rng.uniform(0.0, 2 * math.pi, samples)
    amplitude = rng.uniform(0.5, 1.5, samples)
    t = np.arange(steps)
    wave = amplitude[:, None] * np.sin(2 * math.pi * frequency[:, None] * t + phase[:, None])
    signs = np.ones((samples, features))
    signs[labels % 2 == 1, features // 2:] = -1.0
    x = wave[:, :, None] * signs[:, None, :] + WAVE_NOISE * rng.standard_normal(
        (samples, steps, features))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(labels, dtype=torch.int64)


BUILTIN: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "digits": _digits,
    "sequences": _sequences,
    "frames": frames,
    "frame_anomalies": frame_anomalies,
}
ANOMALY_SETS = ("frame_anomalies",)  #: built-in sets whose labels are anomaly flags


def stratified_split(labels: Sequence[int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the train, validation and test splits: `SPLIT` of every class each."""
    rng = np.random.default_rng(seed)
    array = np.asarray(labels)
    parts: tuple[list[np.ndarray], ...] = ([], [], [])
    for label in np.unique(array):
        members = rng.permutation(np.flatnonzero(array == label))
        cut1 = round(SPLIT[0] * len(members))
        cut2 = cut1 + round(SPLIT[1] * len(members))
        for part, chunk in zip(parts, np.split(members, [cut1, cut2])):
            part.append(chunk)
    train, val, test = (np.sort(np.concatenate(part)) for part in parts)
    return train, val, test


def _builtin(spec: str, seed: int, options: Mapping[str, Any], collate: Collate | None
             ) -> DataBundle:
    x, y = _call(BUILTIN[spec], spec, seed, options)
    regression = y.is_floating_point()
    splits = stratified_split([0] * len(y) if regression else y.tolist(), seed)
    for name, idx in zip(("train", "validation", "test"), splits):
        if len(idx) == 0:
            raise DataError(f"{spec}: {len(y)} samples leave the {name} split empty: every "
                            "class needs at least 4 samples")
    train, val, test = (TensorDataset(x[idx], y[idx]) for idx in splits)
    if spec in ANOMALY_SETS:  # train on the normal examples only, each its own target
        normal = splits[0][y[splits[0]].numpy() == 0]
        return DataBundle(TensorDataset(x[normal], x[normal]), val, test, x.shape[1],
                          "vector", tuple(x.shape[1:]), collate, "mse", anomaly=True)
    outputs = y.shape[1] if regression else int(y.max()) + 1
    return DataBundle(train, val, test, outputs, KINDS[x.dim() - 1], tuple(x.shape[1:]),
                      collate, "mse" if regression else "cross_entropy")


# --- user datasets -------------------------------------------------------------------------------


def _first_sample(spec: str, name: str, dataset: Any, classes: int
                  ) -> tuple[torch.Tensor, bool]:
    """The x of `dataset[0]`, after checking the dataset and that sample, and whether its
    label is a regression target (a float vector of `classes` values)."""
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise DataError(f"{spec}: the {name} set is a {type(dataset).__name__}, not a dataset "
                        "(it needs __len__ and __getitem__)")
    try:
        size, sample = len(dataset), dataset[0] if len(dataset) else None
    except (Exception, SystemExit) as error:
        raise DataError(f"{spec}: reading the first sample of the {name} set failed: "
                        f"{_raised(error)}") from None
    if size == 0:
        raise DataError(f"{spec}: the {name} set is empty")
    if not isinstance(sample, (tuple, list)) or len(sample) != 2:
        raise DataError(f"{spec}: a sample of the {name} set must be a pair (x, label), "
                        f"not {type(sample).__name__}")
    x, label = sample
    try:
        x = _floats(x)
    except (TypeError, ValueError) as error:
        raise DataError(f"{spec}: the x of a {name} sample is not numeric ({error})") from None
    if x.dim() not in KINDS:
        raise DataError(f"{spec}: a {name} sample has shape {tuple(x.shape)}: expected "
                        "(C, H, W) for an image, (T, F) for a sequence or (N,) for a vector")
    value = np.asarray(label)
    if value.ndim == 1 and np.issubdtype(value.dtype, np.floating):
        if len(value) != classes:
            raise DataError(f"{spec}: a {name} target has {len(value)} values, but classes is "
                            f"{classes} (for regression, the length of the targets)")
        return x, True
    if value.size != 1 or not np.issubdtype(value.dtype, np.integer):
        raise DataError(f"{spec}: labels must be integers (or float vectors, for regression); "
                        f"a {name} label is {label!r}")
    if not 0 <= int(value) < classes:
        raise DataError(f"{spec}: a {name} label is {int(value)}, outside 0..{classes - 1}")
    return x, False


def _user(spec: str, seed: int, options: Mapping[str, Any], collate: Collate | None
          ) -> DataBundle:
    result = _call(resolve(spec), spec, seed, options)
    if not isinstance(result, (tuple, list)) or len(result) != 4:
        raise DataError(f"{spec}: the function must return (train, val, test, classes), "
                        f"not {type(result).__name__}"
                        + (f" of {len(result)}" if isinstance(result, (tuple, list)) else ""))
    train, val, test, classes = result
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 1:
        raise DataError(f"{spec}: classes must be an integer of at least 2, not {classes!r}")
    classes = int(classes)
    firsts = [_first_sample(spec, name, dataset, classes)
              for name, dataset in zip(("train", "val", "test"), (train, val, test))]
    xs, regression = [x for x, _ in firsts], firsts[0][1]
    anomaly = regression and not firsts[1][1] and not firsts[2][1]  # val/test: flags
    if any(r != regression for _, r in firsts) and not anomaly:
        raise DataError(f"{spec}: the splits mix integer labels and float target vectors "
                        "(anomaly detection: float targets to train, 0/1 flags to test)")
    if classes < 2 and not regression:
        raise DataError(f"{spec}: classes must be an integer of at least 2, not {classes!r}")
    kind = KINDS[xs[0].dim()]
    for name, x in zip(("val", "test"), xs[1:]):
        if x.dim() != xs[0].dim() or (kind == "image" and x.shape != xs[0].shape) or (
                x.shape[-1] != xs[0].shape[-1]):
            raise DataError(f"{spec}: a {name} sample has shape {tuple(x.shape)}, "
                            f"a train sample {tuple(xs[0].shape)}")
    return DataBundle(train, val, test, classes, kind, tuple(xs[0].shape), collate,
                      "mse" if regression else "cross_entropy", anomaly)


def load_dataset(spec: str, seed: int = 0, options: Mapping[str, Any] | None = None
                 ) -> DataBundle:
    """The dataset `spec`: `digits`, `sequences` or a `package.module:function`.

    Args:
        spec: the dataset's name or reference.
        seed: picks the split of built-in sets; passed to a user function that takes `seed`.
        options: keyword arguments of the dataset function (`sequences` takes `samples`,
            `steps` and `features`), and `collate`: a `module:function` that makes
            batches (see `loader`).

    Raises:
        DataError: the dataset cannot be loaded or is malformed; the message says why.
    """
    options = dict(options or {})
    collate_spec = options.pop("collate", None)
    collate = resolve(str(collate_spec)) if collate_spec is not None else None
    if spec in BUILTIN:
        return _builtin(spec, seed, options, collate)
    return _user(spec, seed, options, collate)
