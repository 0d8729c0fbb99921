"""Images resized to a searched input resolution (`input: image(3, res, res)`).

A space may search its input size (docs/language.md, "Searched input sizes"); the data
set's images then have one stored size and each trial's network takes another. The
images are resized with bilinear interpolation and antialiasing (torch's
`interpolate(mode="bilinear", antialias=True, align_corners=False)`): shrinking averages
over the pixels each output pixel covers instead of skipping some, enlarging
interpolates between neighbours.

When: before batching, once per size and split, not per batch. In-memory tensor data
sets (the built-in ones, a user's `TensorDataset`) are resized whole when a trial first
asks for a size; the search keeps each size it made (`Resizer`). Any other data set
resizes each sample as it is read.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch.nn import functional
from torch.utils.data import Dataset, TensorDataset

from .data import DataBundle, DataError

#: Images resized per call when a whole tensor data set is resized (bounds the memory).
CHUNK = 4096


def resize_images(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Images (N, C, H, W) or one image (C, H, W) resized to `size` (H, W)."""
    if tuple(x.shape[-2:]) == size:
        return x
    batch = x if x.dim() == 4 else x.unsqueeze(0)
    out = torch.cat([
        functional.interpolate(part.float(), size=size, mode="bilinear", antialias=True,
                               align_corners=False)
        for part in batch.split(CHUNK)
    ])
    return out if x.dim() == 4 else out[0]


class ResizedImages(Dataset[Any]):
    """A data set of `(image, label)` samples, each image resized as it is read."""

    def __init__(self, dataset: Dataset[Any], size: tuple[int, int]) -> None:
        self.dataset = dataset
        self.size = size

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        x, label = self.dataset[index]
        return resize_images(torch.as_tensor(x, dtype=torch.float32), self.size), label


def _resized(dataset: Dataset[Any], size: tuple[int, int]) -> Dataset[Any]:
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        x, y = dataset.tensors
        return TensorDataset(resize_images(x, size), y)
    return ResizedImages(dataset, size)


def resized(data: DataBundle, shape: tuple[int, ...]) -> DataBundle:
    """`data` with its images resized to `shape` (C, H, W), the input of a network.

    Returns `data` itself when the sizes already agree or the data are not images.

    Raises:
        DataError: the channels differ (resizing changes only the height and width).
    """
    shape = tuple(shape)
    if data.kind != "image" or shape == tuple(data.input_shape):
        return data
    if shape[0] != data.input_shape[0]:
        raise DataError(f"the network takes {shape[0]}-channel images, but the data set's "
                        f"have {data.input_shape[0]} channels")
    size = (int(shape[1]), int(shape[2]))
    return dataclasses.replace(
        data, train=_resized(data.train, size), val=_resized(data.val, size),
        test=_resized(data.test, size), input_shape=shape,
    )


class Resizer:
    """The data of a search at each input size its trials ask for, each made once."""

    def __init__(self, data: DataBundle) -> None:
        self.data = data
        self.made: dict[tuple[int, ...], DataBundle] = {}

    def __call__(self, shape: tuple[int, ...]) -> DataBundle:
        shape = tuple(shape)
        if shape not in self.made:
            self.made[shape] = resized(self.data, shape)
        return self.made[shape]
