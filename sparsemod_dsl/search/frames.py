"""`frames`: a small synthetic reconstruction dataset for regression heads.

A stand-in for the log-mel frames of machine-sound anomaly detection (MLPerf Tiny AD),
cheap enough to search on a laptop's CPU: every sample is a vector of `features`
values, a random positive mixture of `COMPONENTS` smooth spectral shapes (Gaussian
bumps at fixed places) plus Gaussian noise, and its target is the vector itself, so a
network with `output: vector(N)` and `loss = mse` learns to reconstruct it through
whatever bottleneck the space has. The signal lives on a 4-dimensional subspace, so
an 8-wide bottleneck can reconstruct it down to the noise (the MSE floor is about
`FRAME_NOISE ** 2`); a narrower or badly trained one cannot.

`frame_anomalies` is the anomaly-detection version (see `anomaly`): the same normal
frames, and a fraction of anomalous ones that carry one more, narrower bump at a random
place (a machine's new whine), which no mixture of the normal shapes reconstructs.
"""

from __future__ import annotations

import numpy as np
import torch

#: The number of spectral shapes mixed, their width (in features) and the noise level.
COMPONENTS = 4
BUMP_WIDTH = 0.08
FRAME_NOISE = 0.1
#: The extra bump of an anomalous frame: its width (in features) and its height range.
ANOMALY_WIDTH = 0.03
ANOMALY_HEIGHT = (0.3, 0.8)


def frames(samples: int = 1200, features: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """`samples` vectors of `features` float32 values and their targets (the same vectors).

    Always the same data (a fixed generator): the seed of `load_dataset` picks the split.

    Raises:
        ValueError: a size that is not a positive integer, or more than 10**8 values.
    """
    tensor = torch.tensor(_normal(samples, features, np.random.default_rng(2024)),
                          dtype=torch.float32)
    return tensor, tensor.clone()


def frame_anomalies(samples: int = 1200, features: int = 64, anomalies: float = 0.25
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """`samples` frames and their anomaly flags (int64: 1 for the `anomalies` fraction
    that is anomalous, 0 for the normal ones). `load_dataset` trains on the normal frames
    of the train split only.

    Raises:
        ValueError: a bad size (as `frames`), `anomalies` not strictly between 0 and 1,
            or fewer than 4 frames of either kind.
    """
    if isinstance(anomalies, bool) or not isinstance(anomalies, (int, float)) or not (
            0 < anomalies < 1):
        raise ValueError(f"option anomalies must be a fraction between 0 and 1 (exclusive), "
                         f"found {anomalies!r}")
    rng = np.random.default_rng(2025)
    x = _normal(samples, features, rng)
    count = round(anomalies * samples)
    if min(count, samples - count) < 4:  # each split needs both kinds for an AUC
        raise ValueError(f"{samples} samples at anomalies = {anomalies} make {count} "
                         "anomalous frames: each kind needs at least 4")
    flags = rng.permutation(np.arange(samples) < count)
    centres = rng.uniform(0.0, 1.0, count)
    heights = rng.uniform(*ANOMALY_HEIGHT, count)
    x[flags] += heights[:, None] * _bumps(features, centres, ANOMALY_WIDTH)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(flags, dtype=torch.int64)


def _bumps(features: int, centres: np.ndarray, width: float) -> np.ndarray:
    """Gaussian bumps over `features` points of [0, 1], one row per centre."""
    grid = np.linspace(0.0, 1.0, features)
    return np.asarray(np.exp(-0.5 * ((grid[None, :] - centres[:, None]) / width) ** 2))


def _normal(samples: int, features: int, rng: np.random.Generator) -> np.ndarray:
    """Normal frames: random positive mixtures of the fixed shapes, plus noise."""
    for name, value in {"samples": samples, "features": features}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"option {name} must be a positive integer, found {value!r}")
    if samples * features > 10**8:
        raise ValueError(f"{samples} samples x {features} features are too many values")
    shapes = _bumps(features, (np.arange(COMPONENTS) + 0.5) / COMPONENTS, BUMP_WIDTH)
    weights = rng.uniform(0.0, 1.0, (samples, COMPONENTS))
    return np.asarray(weights @ shapes + FRAME_NOISE * rng.standard_normal((samples, features)))
