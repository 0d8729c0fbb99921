"""Batches of a dataset for training and evaluation: stacking, user collates and the
sequence splitter.

`loader` batches a dataset as (x float32, y int64), cutting sequences into chunks of
`max_len` steps (`SequenceChunks`) or handing the batch to a user collate. For
evaluation with the splitter, `window_loader` keeps the chunks of each window together so
that a window's prediction is the mean of its chunks' outputs (`train.evaluate`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .data import Collate, DataError, _accepts, _floats

Batch = tuple[torch.Tensor, torch.Tensor]


class SequenceChunks(Dataset[tuple[torch.Tensor, Any]]):
    """The sequence splitter: sequences cut into consecutive chunks of `max_len` steps.

    A sequence of T >= max_len steps gives ceil(T / max_len) chunks: consecutive ones,
    the last ending at step T (it overlaps the one before when max_len does not divide
    T, so no step is dropped and none is padded); a shorter one gives one chunk,
    zero-padded at the end. Chunks keep the label; `windows[i]` is chunk i's sample.
    """

    def __init__(self, dataset: Dataset[Any], max_len: int) -> None:
        if max_len < 1:
            raise DataError(f"max_len must be at least 1, not {max_len}")
        self.dataset = dataset
        self.max_len = max_len
        self.chunks: list[tuple[int, int]] = []
        for index in range(len(dataset)):  # type: ignore[arg-type]
            steps = self._sample(index)[0].shape[0]
            starts = list(range(0, max(steps - max_len, 0) + 1, max_len))
            if steps > max_len and starts[-1] + max_len < steps:
                starts.append(steps - max_len)
            self.chunks.extend((index, start) for start in starts)

    def _sample(self, index: int) -> tuple[torch.Tensor, Any]:
        x, label = self.dataset[index]
        x = _floats(x)
        if x.dim() != 2:
            raise DataError(f"max_len cuts sequences (T, F), but sample {index} has shape "
                            f"{tuple(x.shape)}")
        return x, label

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        index, start = self.chunks[i]
        x, label = self._sample(index)
        chunk = x[start:start + self.max_len]
        return torch.nn.functional.pad(chunk, (0, 0, 0, self.max_len - len(chunk))), label


def stack(batch: Sequence[tuple[Any, Any]]) -> Batch:
    """The default collate: samples stacked into (x float32, y int64), or y float32 when
    the labels are vectors (regression targets)."""
    xs = [_floats(x) for x, _ in batch]
    if any(x.shape != xs[0].shape for x in xs):
        shapes = sorted({tuple(x.shape) for x in xs})
        raise DataError(f"samples of different shapes {shapes} cannot be stacked into a batch: "
                        "set train.max_len to cut sequences into chunks, or pass a collate")
    if np.ndim(batch[0][1]) > 0:
        return torch.stack(xs), torch.stack([_floats(y) for _, y in batch])
    return torch.stack(xs), torch.tensor([int(y) for _, y in batch], dtype=torch.int64)


class _UserCollate:
    """A user collate, given `max_len` when it takes it, its output cast to (float32, int64),
    or (float32, float32) for float target vectors."""

    def __init__(self, collate: Collate, max_len: int | None) -> None:
        self.collate = collate
        self.kwargs = {"max_len": max_len} if max_len is not None else {}

    def __call__(self, batch: Sequence[Any]) -> Batch:
        out = self.collate(batch, **self.kwargs)
        name = getattr(self.collate, "__name__", repr(self.collate))
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise DataError(f"the collate {name} must return (x, y), not {type(out).__name__}")
        try:
            y = np.asarray(out[1])
            if y.ndim > 1 and np.issubdtype(y.dtype, np.floating):  # regression targets
                return _floats(out[0]), _floats(y)
            return _floats(out[0]), torch.as_tensor(y, dtype=torch.int64)
        except (TypeError, ValueError) as error:
            raise DataError(f"the collate {name} returned an x or y that is not an array "
                            f"of numbers ({error})") from None


def loader(dataset: Dataset[Any], batch_size: int, shuffle: bool, seed: int = 0,
           max_len: int | None = None, collate: Collate | None = None,
           drop_last: bool = False) -> DataLoader[Any]:
    """Batches (x float32, y int64) of `dataset`, in the same order for the same seed.

    Args:
        dataset: samples `(x, label)`.
        batch_size: examples per batch; capped to the number of samples.
        shuffle: a new order every epoch (reproducible from `seed`).
        seed: seeds the shuffling.
        max_len: steps per sequence chunk (`SequenceChunks`), None for whole samples.
            A collate that takes a `max_len` keyword gets it and the raw samples, and
            does the cutting itself; any other collate gets the chunks.
        collate: a user function `collate(batch[, max_len=...]) -> (x, y)`; None stacks.
        drop_last: drop the last, short batch of an epoch (for training, so that batch
            norm never sees a single example).
    """
    takes_max_len = collate is not None and max_len is not None and _accepts(collate, "max_len")
    if max_len is not None and not takes_max_len:
        dataset = SequenceChunks(dataset, max_len)
    size = len(dataset)  # type: ignore[arg-type]
    if size == 0:
        raise DataError("the dataset has no samples to load")
    return DataLoader(
        dataset,
        batch_size=max(1, min(batch_size, size)),
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=stack if collate is None else _UserCollate(
            collate, max_len if takes_max_len else None),
        drop_last=drop_last,
    )


def _windows(batch: Sequence[tuple[torch.Tensor, Any, int]]) -> tuple[torch.Tensor, ...]:
    """Chunks stacked with one label per window and each chunk's window (0 .. windows - 1)."""
    x, y = stack([(chunk, label) for chunk, label, _ in batch])
    owners = torch.tensor([window for _, _, window in batch])
    first = torch.ones(len(owners), dtype=torch.bool)
    first[1:] = owners[1:] != owners[:-1]
    return x, y[first], torch.cumsum(first.long(), 0) - 1


class _WindowChunks(Dataset[tuple[torch.Tensor, Any, int]]):
    """`SequenceChunks` with each chunk's window: batches that `window_loader` makes."""

    def __init__(self, chunks: SequenceChunks) -> None:
        self.inner = chunks

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any, int]:
        x, label = self.inner[i]
        return x, label, self.inner.chunks[i][0]


class _WholeWindows(torch.utils.data.Sampler[list[int]]):
    """Batches of about `size` chunks that never split a window's chunks."""

    def __init__(self, chunks: SequenceChunks, size: int) -> None:
        self.batches: list[list[int]] = [[]]
        for i, (window, _) in enumerate(chunks.chunks):
            batch = self.batches[-1]
            if len(batch) >= size and chunks.chunks[batch[-1]][0] != window:
                self.batches.append(batch := [])
            batch.append(i)

    def __iter__(self) -> Any:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def window_loader(dataset: Dataset[Any], batch_size: int, max_len: int) -> DataLoader[Any]:
    """Batches (chunks, one label per window, each chunk's window in the batch) of
    `dataset` cut into `max_len` chunks, in order, a window's chunks in one batch: a
    window is scored once, by the mean of its chunks' outputs (`train.evaluate`)."""
    chunks = SequenceChunks(dataset, max_len)
    if len(chunks) == 0:
        raise DataError("the dataset has no samples to load")
    return DataLoader(_WindowChunks(chunks), batch_sampler=_WholeWindows(chunks, batch_size),
                      collate_fn=_windows)
