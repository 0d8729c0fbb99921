"""Anomaly detection by reconstruction: the ROC AUC of the reconstruction error.

An anomaly set (MLPerf Tiny AD, ToyADMOS) trains an autoencoder on normal examples
only, each its own target (`loss = mse`); its validation and test examples carry a flag
instead of a target: 0 for a normal example, 1 for an anomalous one. The score of an
example is its reconstruction error (the mean over its values of (output - input)^2),
and a network is measured by how well that score ranks the anomalies above the normal
examples: the area under the ROC curve. The search minimises `1 - AUC`, so the error
objective stays "lower is better"; people read the AUC itself (see `objective`).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import SparsemodError


class AnomalyError(SparsemodError):
    """Anomaly flags that cannot be scored: not 0/1, or only one of the two kinds."""


def roc_auc(scores: Any, flags: Any) -> float:
    """The area under the ROC curve of `scores` for `flags` (1: anomalous, 0: normal).

    The Mann-Whitney statistic: the fraction of (anomalous, normal) pairs whose
    anomalous score is the higher, a tie counting one half. Computed from average ranks
    (tied scores share the mean of their ranks), in O(n log n).

    Raises:
        AnomalyError: a flag other than 0 or 1, a NaN score, or no example of one kind.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(flags).ravel()
    if values.shape != labels.shape:
        raise AnomalyError(f"{values.size} scores but {labels.size} anomaly flags")
    if not np.isin(labels, (0, 1)).all():
        raise AnomalyError(f"anomaly flags must be 0 (normal) or 1 (anomalous), found "
                           f"{sorted(set(labels.tolist()) - {0, 1})[:5]}")
    if np.isnan(values).any():
        raise AnomalyError("a reconstruction error is NaN: the network's output is not finite")
    anomalous = int(labels.sum())
    normal = labels.size - anomalous
    if anomalous == 0 or normal == 0:
        raise AnomalyError(f"an AUC needs normal and anomalous examples; there are {normal} "
                           f"normal and {anomalous} anomalous")
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(1, values.size + 1)
    _, groups, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(groups, weights=ranks)  # tied scores: the mean of their ranks
    average = (sums / counts)[groups]
    u = average[labels == 1].sum() - anomalous * (anomalous + 1) / 2
    return float(u / (anomalous * normal))


def anomaly_error(predict: Callable[[torch.Tensor], Any], examples: DataLoader[Any]
                  ) -> tuple[float, int]:
    """`1 - AUC` of the reconstruction error of `predict` on `examples` (batches of x and
    their 0/1 flags), and the number of examples."""
    scores, flags = [], []
    for x, y in examples:
        out = np.asarray(predict(x), dtype=np.float64).reshape(len(x), -1)
        scores.append(((out - x.numpy().reshape(len(x), -1)) ** 2).mean(axis=1))
        flags.append(y.numpy().ravel())
    if not scores:
        raise AnomalyError("nothing to score: the loader gives no examples")
    score, flag = np.concatenate(scores), np.concatenate(flags)
    return 1.0 - roc_auc(score, flag), int(score.size)
