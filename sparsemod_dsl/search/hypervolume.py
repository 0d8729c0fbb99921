"""Hypervolume of a front, and its expected improvement when costs are exact.

All objectives are minimised, non-negative, and measured against a reference
point `ref` (every value above it counts as nothing). Hypervolumes are given as
the fraction of the box [0, ref] that the front dominates, so that a
hypervolume of 0.4 reads "40% of the box", whatever the units.

`expected_improvement` is the acquisition of the default search strategy. The
first objective (the error) is uncertain, a Gaussian from the surrogate; the
others (flash, RAM, latency) are exact, computed from the IR. The region that
the current front does not dominate is cut into boxes (BoTorch's box
decomposition); a candidate's improvement is the volume it adds in each box,
and since only one coordinate is random its expectation has a closed form:
for a box [l, u] in the error coordinate (of the maximised negatives) and a
Gaussian Z with mean m and deviation s, E[max(0, min(u, Z) - l)] =
s * (G((m - l) / s) - G((m - u) / s)) with G(a) = a * Phi(a) + phi(a).
So thousands of candidates are scored in milliseconds, without the Monte Carlo
sampling and gradient steps of qLogNEHVI over modelled costs.
"""

from __future__ import annotations

import numpy as np
import torch
from botorch.utils.multi_objective.box_decompositions.dominated import (
    DominatedPartitioning,
)
from botorch.utils.multi_objective.box_decompositions.non_dominated import (
    FastNondominatedPartitioning,
)
from scipy.special import ndtr

#: The smallest standard deviation used; below it the error counts as known.
MIN_STD = 1e-9


def _scaled(values: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Values as fractions of the reference, shaped (n, m)."""
    return np.asarray(values, dtype=float).reshape(-1, len(ref)) / ref


def hypervolume(values: np.ndarray, ref: np.ndarray) -> float:
    """The fraction of the box [0, ref] dominated by the rows of `values` (n x m)."""
    ref = np.asarray(ref, dtype=float)
    inside = _scaled(values, ref)
    inside = inside[(inside < 1.0).all(axis=1)]
    if len(inside) == 0:
        return 0.0
    if len(ref) == 1:
        return float(1.0 - inside.min())
    partition = DominatedPartitioning(
        ref_point=torch.full((len(ref),), -1.0, dtype=torch.double),
        Y=-torch.as_tensor(inside, dtype=torch.double),
    )
    return float(partition.compute_hypervolume())


def _open_boxes(front: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corners (maximised negatives of scaled values) of the boxes
    that together make the region the front does not dominate."""
    front = front[(front < 1.0).all(axis=1)]
    if m == 1:
        best = front.min() if len(front) else 1.0
        return np.array([[-best]]), np.array([[np.inf]])
    partition = FastNondominatedPartitioning(
        ref_point=torch.full((m,), -1.0, dtype=torch.double),
        Y=-torch.as_tensor(front, dtype=torch.double).reshape(-1, m),
    )
    lower, upper = partition.get_hypercell_bounds().numpy()
    return lower, upper


def _expected_overlap(mean: np.ndarray, std: np.ndarray, lower: np.ndarray,
                      upper: np.ndarray) -> np.ndarray:
    """E[max(0, min(u, Z) - l)] for Z ~ N(mean, std), candidates x boxes."""
    def g(a: np.ndarray) -> np.ndarray:
        finite = np.where(np.isfinite(a), a, 0.0)
        value = finite * ndtr(finite) + np.exp(-0.5 * finite**2) / np.sqrt(2 * np.pi)
        return np.where(a == -np.inf, 0.0, value)

    m, s = mean[:, None], std[:, None]
    return s * (g((m - lower[None, :]) / s) - g((m - upper[None, :]) / s))


def expected_improvement(front: np.ndarray, ref: np.ndarray, mean: np.ndarray,
                         std: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """The expected hypervolume improvement of each candidate over `front`.

    Args:
        front: observed values (n x m), the uncertain objective first.
        ref: the reference point (m).
        mean, std: the Gaussian of each candidate's first objective (c each).
        exact: the candidates' other objectives (c x (m - 1)).

    Returns:
        c values, as fractions of the reference box (0: no improvement expected).
    """
    ref = np.asarray(ref, dtype=float)
    m = len(ref)
    lower, upper = _open_boxes(_scaled(front, ref), m)
    known = _scaled(exact, ref[1:]) if m > 1 else np.zeros((len(mean), 0))
    # exact coordinates: the overlap of [l, u] with [l, -value] in the maximised negatives
    sides = np.clip(np.minimum(upper[None, :, 1:], -known[:, None, :]) - lower[None, :, 1:],
                    0.0, None)
    random_side = _expected_overlap(-np.asarray(mean, dtype=float) / ref[0],
                                    np.maximum(np.asarray(std, dtype=float) / ref[0], MIN_STD),
                                    lower[:, 0], upper[:, 0])
    return (random_side * sides.prod(axis=2)).sum(axis=1)
