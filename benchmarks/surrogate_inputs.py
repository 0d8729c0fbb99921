"""Does the error GP predict better with the networks' exact features as inputs?

Trains `--networks` Sobol points of the digits example (real training, as the
search does), then, for several training-set sizes and `--splits` random
splits, fits the error model (`surrogate.ErrorModel`) on n networks and
predicts the errors of all the others, with two kinds of input side by side:

- parameters: the unit-cube encoding of the points (`encode`);
- parameters + features: the same and the exact weights, MACs and peak
  activation bytes of each network (`strategy.FEATURES`), which the default
  strategy uses.

Prints the mean Spearman rank correlation between predicted and true errors
(what the acquisition needs: which networks are better) and the mean absolute
error in percentage points.

    .venv/bin/python benchmarks/surrogate_inputs.py [--networks 120] [--splits 10]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from runs import digits, machine, run
from scipy.stats import spearmanr

from sparsemod_dsl.search.exactstrategy import FEATURES, ExactStrategy
from sparsemod_dsl.search.surrogate import ErrorModel


def scores(inputs: np.ndarray, errors: np.ndarray, n: int, splits: int) -> tuple[float, float]:
    """Mean Spearman correlation and mean absolute error (points of %) over splits."""
    rng = np.random.default_rng(0)
    rho, mae = [], []
    for _ in range(splits):
        order = rng.permutation(len(errors))
        fit, rest = order[:n], order[n:]
        model = ErrorModel()
        model.update(inputs[fit], errors[fit])
        mean, _ = model.predict(inputs[rest])
        rho.append(spearmanr(mean, errors[rest]).statistic)
        mae.append(100 * np.abs(mean - errors[rest]).mean())
    return float(np.mean(rho)), float(np.mean(mae))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", type=int, default=120)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    args = parser.parse_args()
    print(f"surrogate_inputs: {machine()}")
    engine = run(digits("sobol", 0, sobol=args.networks, bo_rounds=0, morph_rounds=0))
    strategy = engine.strategy
    exact = ExactStrategy(strategy.program, strategy.objectives, strategy.pricer, 0)
    done = [t for t in engine.journal.trials() if t.status == "completed"]
    inputs = exact.model_inputs([t.params for t in done],
                                [exact.pricer.price(t.params) for t in done])
    errors = np.array([t.error for t in done], dtype=float)
    print(f"{len(done)} trained digits networks (sparse_cnn, Sobol points); "
          f"{args.splits} random splits per size")
    print(f"{'fitted on':>9}  {'parameters':>19}  {'parameters + features':>23}")
    print(f"{'':>9}  {'Spearman':>9} {'MAE pts':>9}  {'Spearman':>11} {'MAE pts':>11}")
    for n in args.sizes:
        plain = scores(inputs[:, :-len(FEATURES)], errors, n, args.splits)
        rich = scores(inputs, errors, n, args.splits)
        print(f"{n:>9}  {plain[0]:>9.2f} {plain[1]:>9.1f}  {rich[0]:>11.2f} {rich[1]:>11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
