"""How good a front each strategy finds for the same number of trained networks.

Runs the digits example (the 43-parameter SpArSe CNN space, 16 KB flash and
16 KB RAM budgets, real training) with `--sobol` Sobol trials then BO batches of
4 up to `--trials` trained networks (no morph stage), for 3 seeds and three
strategies:

- `sobol`: Sobol points only (those that do not fit are skipped, untrained);
- `gp`: the earlier implementation's approach, every objective (error, flash,
  RAM) modelled by a GP, Ax's qLogNEHVI (with the cheap optimiser settings of
  `strategy.ACQUISITION`; Ax's defaults would take hours here);
- `exact`: our default (`sparsemodc search`).

After every 10 trained networks it prints the hypervolume of the (validation
error, flash, RAM) front, as a percentage of the box between 0 and the fixed
reference point (90% error, i.e. guessing among the 10 digits, 16 KB flash,
16 KB RAM), per seed and on average, and the ratios to Sobol. Exits 1 unless
the default's mean hypervolume is at least Sobol's every 10 trials and reaches
Sobol's final mean hypervolume within half of the trials.

    .venv/bin/python benchmarks/search_quality.py [--trials 40] [--seeds 0 1 2] [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from runs import digits, machine, run

from sparsemod_dsl.search.experiment import STRATEGIES
from sparsemod_dsl.search.hypervolume import hypervolume

REFERENCE = np.array([0.9, 16 * 1024, 16 * 1024])
EVERY = 10


def curve(strategy: str, seed: int, sobol: int, trials: int) -> tuple[list[float], float]:
    """Hypervolume (% of the box) after each trained network, and the run's seconds."""
    torch.set_num_threads(1)
    stages = {"sobol": sobol, "bo_rounds": -(-(trials - sobol) // 4), "bo_batch": 4,
              "morph_rounds": 0}
    engine = run(digits(strategy, seed, **stages))
    trained = [t for t in engine.journal.trials() if t.status in ("completed", "failed")]
    values: list[list[float]] = []
    out = []
    for trial in trained[:trials]:
        if trial.status == "completed":
            values.append([trial.error, trial.flash_bytes, trial.ram_bytes])  # type: ignore
        out.append(100 * hypervolume(np.array(values).reshape(-1, 3), REFERENCE))
    return out, engine.timings.total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--sobol", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=["sobol", "gp", "exact"],
                        choices=STRATEGIES)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (one core each)")
    args = parser.parse_args()
    print(f"search_quality: {machine()}, {args.jobs} runs at once with 1 torch thread each")
    print(f"digits example, {args.trials} trained networks per run ({args.sobol} Sobol, then "
          f"BO batches of 4), seeds {args.seeds}")
    print("hypervolume of the (validation error, flash, RAM) front, % of the box up to the "
          "reference point: 90% error, 16 KB flash, 16 KB RAM\n")
    runs = [(s, seed) for s in args.strategies for seed in args.seeds]
    with ProcessPoolExecutor(args.jobs) as pool:
        done = list(pool.map(curve, *zip(*runs), [args.sobol] * len(runs),
                             [args.trials] * len(runs)))
    curves = {run_: c for run_, (c, _) in zip(runs, done)}
    seconds = {run_: s for run_, (_, s) in zip(runs, done)}
    checkpoints = list(range(EVERY, args.trials + 1, EVERY))
    print(f"{'strategy':<8} {'seed':>4} " + " ".join(f"{n:>6}" for n in checkpoints)
          + f" {'run s':>6}")
    means: dict[str, np.ndarray] = {}
    for name in args.strategies:
        rows = np.array([curves[(name, seed)] for seed in args.seeds])
        for seed, row in zip(args.seeds, rows):
            print(f"{name:<8} {seed:>4} " + " ".join(f"{row[n - 1]:>6.1f}" for n in checkpoints)
                  + f" {seconds[(name, seed)]:>6.0f}")
        means[name] = rows.mean(axis=0)
        print(f"{name:<8} {'mean':>4} " + " ".join(f"{means[name][n - 1]:>6.1f}"
                                                   for n in checkpoints))
    if "sobol" not in means:
        return 0
    print()
    for name in args.strategies:
        if name == "sobol":
            continue
        ratios = " ".join(f"{means[name][n - 1] / means['sobol'][n - 1]:>6.2f}"
                          for n in checkpoints)
        reached = np.nonzero(means[name] >= means["sobol"][-1])[0]
        when = f"after {reached[0] + 1} trials" if len(reached) else "never"
        print(f"{name} / sobol: {ratios}; reaches Sobol's final {means['sobol'][-1]:.1f}% {when}")
    if "exact" not in means:
        return 0
    default, sobol = means["exact"], means["sobol"]
    at = [n - 1 for n in checkpoints]
    ok = bool((default[at] >= sobol[at]).all() and default[args.trials // 2 - 1] >= sobol[-1])
    print(f"\n{'PASS' if ok else 'FAIL'}: on average, the default is at least Sobol every "
          f"{EVERY} trials and reaches Sobol's final hypervolume within {args.trials // 2} trials")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
