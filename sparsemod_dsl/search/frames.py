"""`frames`: a small synthetic reconstruction dataset for regression heads.

A stand-in for the log-mel frames of machine-sound anomaly detection (MLPerf Tiny AD),
cheap enough to search on a laptop's CPU: every sample is a vector of `features`
values, a random positive mixture of `COMPONENTS` smooth spectral shapes (Gaussian
bumps at fixed places) plus Gaussian noise, and its target is the vector itself, so a
network with `output: vector(N)` and `loss = mse` learns to reconstruct it through
whatever bottleneck the space has. The signal lives on a 4-dimensional subspace, so
an 8-wide bottleneck can reconstruct it down to the noise (the MSE floor is about
`FRAME_NOISE ** 2`); a narrower or badly trained one cannot.
"""

from __future__ import annotations

import numpy as np
import torch

#: The number of spectral shapes mixed, their width (in features) and the noise level.
COMPONENTS = 4
BUMP_WIDTH = 0.08
FRAME_NOISE = 0.1


def frames(samples: int = 1200, features: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """`samples` vectors of `features` float32 values and their targets (the same vectors).

    Always the same data (a fixed generator): the seed of `load_dataset` picks the split.

    Raises:
        ValueError: a size that is not a positive integer, or more than 10**8 values.
    """
    for name, value in {"samples": samples, "features": features}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"option {name} must be a positive integer, found {value!r}")
    if samples * features > 10**8:
        raise ValueError(f"{samples} samples x {features} features are too many values")
    rng = np.random.default_rng(2024)
    grid = np.linspace(0.0, 1.0, features)
    centres = (np.arange(COMPONENTS) + 0.5) / COMPONENTS
    shapes = np.exp(-0.5 * ((grid[None, :] - centres[:, None]) / BUMP_WIDTH) ** 2)
    weights = rng.uniform(0.0, 1.0, (samples, COMPONENTS))
    x = weights @ shapes + FRAME_NOISE * rng.standard_normal((samples, features))
    tensor = torch.tensor(x, dtype=torch.float32)
    return tensor, tensor.clone()
