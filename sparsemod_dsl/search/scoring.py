"""Robust scoring: a point's error as the mean of several trainings.

On a small dataset one training judged on a few validation examples is noise: two
networks tie, or a lucky seed wins. `[scoring]` in the experiment file asks for the
mean of `repeats` trainings with different seeds, or of `folds`-fold cross-validation
(train and validation pooled and cut into `folds` parts, each in turn the validation
set). `runs` says what each training sees; `Scored` turns their results into the
trial's metrics: the mean is the objective, and every run's error is journalled
(`scores`, `test_scores`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from statistics import fmean
from typing import Any

import numpy as np
from torch.utils.data import ConcatDataset, Subset

from .data import DataBundle, DataError
from .experiment import ScoringSettings
from .train import TrainResult

#: Added to a trial's training seed per repeat (or fold), far above any trial id, so
#: that no two trainings of a search share a seed.
SEED_STRIDE = 1_000_003


def runs(data: DataBundle, scoring: ScoringSettings, seed: int) -> list[tuple[DataBundle, int]]:
    """(the data, the seed offset) of each training that scores a point.

    The folds depend only on the experiment's `seed`, so every point meets the same ones.

    Raises:
        DataError: folds asked of an anomaly set (its validation labels are anomaly
            flags, not training targets) or of fewer examples than folds.
    """
    if not scoring.folds:
        return [(data, r * SEED_STRIDE) for r in range(scoring.repeats)]
    return [(fold, r * SEED_STRIDE) for r, fold in enumerate(folds(data, scoring.folds, seed))]


def folds(data: DataBundle, k: int, seed: int) -> list[DataBundle]:
    """`k` bundles whose train and val splits cut train + val into `k` parts; the test
    split stays as it is."""
    if data.anomaly:
        raise DataError("scoring.folds needs labelled validation data; an anomaly set's "
                        "validation labels are anomaly flags (use scoring.repeats)")
    pooled = ConcatDataset([data.train, data.val])
    if len(pooled) < k:
        raise DataError(f"scoring.folds is {k} but train + validation hold only "
                        f"{len(pooled)} examples")
    parts = np.array_split(np.random.default_rng(seed).permutation(len(pooled)), k)
    return [replace(data, train=Subset(pooled, np.concatenate(parts[:i] + parts[i + 1:])
                                       .tolist()),
                    val=Subset(pooled, part.tolist()))
            for i, part in enumerate(parts)]


@dataclass
class Scored:
    """The trainings of one point: (result, test error) each, its measured costs, and
    why its last training was stopped early (`earlystop`; then its test error is not
    measured, and no training follows it)."""

    trainings: list[tuple[TrainResult, float]]
    measured: Any
    stopped: str | None = None

    @property
    def first(self) -> TrainResult:
        """The first training's result: the network the search saves."""
        return self.trainings[0][0]

    def metrics(self) -> dict[str, Any]:
        """The finished event's measurements: mean errors, every run's error (when more
        than one), summed training time; sparsity is the first network's; each run's
        per-epoch validation errors (`curves`) when an early-stopping rule is on. A
        stopped point's error is its last training's when stopped, without test errors."""
        errors = [r.val_error for r, _ in self.trainings]
        tests = [t for _, t in self.trainings]
        several: dict[str, Any] = (
            {"scores": errors, "test_scores": tests} if len(errors) > 1 else {})
        curves = [list(r.curve) for r, _ in self.trainings]
        early = {"curves": curves} if any(curves) else {}
        if self.stopped is not None:
            several = {"error": errors[-1], "epochs_run": self.trainings[-1][0].epochs_run}
        return {
            "error": fmean(errors),
            "flash_bytes": self.measured.flash_bytes,
            "ram_bytes": self.measured.ram_bytes,
            "macs": self.measured.macs,
            "latency_ms": self.measured.latency_ms,
            "train_seconds": sum(r.train_seconds for r, _ in self.trainings),
            "sparsity": self.first.sparsity,
            **({"test_error": fmean(tests)} if self.stopped is None else {}),
            **several,
            **early,
        }
