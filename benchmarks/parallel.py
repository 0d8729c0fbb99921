"""Trials in parallel on Ray: the speedup of 2 workers here, and utilisation at scale.

Part 1 (real): the digits example (real training, pruning, int8) with `--sobol` Sobol
trials then BO batches of 4 up to `--trials` trained networks of `--epochs` epochs
(longer than the example's 8, so that a trial's training outweighs the seconds Ray
takes to start on this small machine), run with
`[execution] workers = 1` (in-process) and `workers = 2` (a local Ray, one torch thread
per worker), same seed, side by side: wall time, the speedup (goal: at least 1.6x on
this 2-core machine), and the hypervolume (% of the box up to 90% error, 16 KB flash,
16 KB RAM, as in search_quality.py) after the same number of trained networks, so that
asynchronous proposals are seen to lose nothing.

Part 2 (simulated, no training): `N` workers (8, 32, 128) train `ROUNDS * N` trials
whose times are heavy-tailed (log-normal, sigma 1: a few trials take ten times the
median) on a virtual clock. Synchronous batches (the earlier implementation: N
points, wait for the slowest, N more) against asynchronous proposals (ours: a free
worker gets the next point at once); utilisation = busy worker-seconds / (N x wall).

    .venv/bin/python benchmarks/parallel.py [--trials 24] [--sobol 8] [--epochs 24] [--seed 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import os
import sys
import time

import numpy as np
import torch
from runs import digits, machine, run

from sparsemod_dsl.search.experiment import ExecutionSettings
from sparsemod_dsl.search.hypervolume import hypervolume

REFERENCE = np.array([0.9, 16 * 1024, 16 * 1024])
#: Simulated trials per worker.
ROUNDS = 20


def real(workers: int, trials: int, sobol: int, seed: int, epochs: int
         ) -> tuple[float, float, list[float]]:
    """Wall seconds of a search with `workers`, the seconds its driver spent choosing
    points, and its hypervolume after each trained network (in finishing order)."""
    stages = {"sobol": sobol, "bo_rounds": -(-(trials - sobol) // 4), "bo_batch": 4,
              "morph_rounds": 0, "epochs": (epochs, epochs, epochs)}
    experiment = dataclasses.replace(digits("exact", seed, **stages),
                                     execution=ExecutionSettings(workers=workers))
    began = time.perf_counter()
    engine = run(experiment)
    seconds = time.perf_counter() - began
    finished = [r["trial"] for r in engine.journal.records() if r["event"] == "finished"]
    values: list[list[float]] = []
    curve = []
    for trial in map(engine.journal.trial, finished):
        if trial.status == "completed":
            values.append([trial.error, trial.flash_bytes, trial.ram_bytes])  # type: ignore
        if trial.status in ("completed", "failed"):
            curve.append(100 * hypervolume(np.array(values).reshape(-1, 3), REFERENCE))
    return seconds, engine.timings.generation, curve


def simulate(workers: int, rng: np.random.Generator) -> tuple[float, float]:
    """Utilisation of synchronous batches and of asynchronous proposals, for the same
    trial times."""
    durations = rng.lognormal(0.0, 1.0, ROUNDS * workers)
    busy = durations.sum()
    batches = durations.reshape(ROUNDS, workers)
    sync_wall = batches.max(axis=1).sum()
    free = [0.0] * workers  # when each worker is next free
    heapq.heapify(free)
    for duration in durations:
        heapq.heappush(free, heapq.heappop(free) + duration)
    async_wall = max(free)
    return busy / (workers * sync_wall), busy / (workers * async_wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--sobol", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=24, help="training epochs per trial")
    args = parser.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    torch.set_num_threads(1)  # the in-process run: one torch thread, as each Ray worker
    print(f"parallel: {machine()}, {os.cpu_count()} cores")
    print(f"digits example, {args.trials} trained networks ({args.sobol} Sobol, then BO "
          f"batches of 4) of {args.epochs} epochs, seed {args.seed}, exact strategy\n")
    one, chose1, curve1 = real(1, args.trials, args.sobol, args.seed, args.epochs)
    two, chose2, curve2 = real(2, args.trials, args.sobol, args.seed, args.epochs)
    speedup = one / two
    n = min(len(curve1), len(curve2), args.trials)
    print(f"{'workers':>7} {'wall s':>7} {'choosing s':>10} {'trained':>7} {f'HV % at {n}':>10}")
    for workers, seconds, chose, curve in ((1, one, chose1, curve1), (2, two, chose2, curve2)):
        print(f"{workers:>7} {seconds:>7.1f} {chose:>10.1f} {len(curve):>7} "
              f"{curve[n - 1]:>10.1f}")
    print(f"speedup of 2 workers: {speedup:.2f}x (goal >= 1.6x); hypervolume at {n} trials: "
          f"{curve2[n - 1] - curve1[n - 1]:+.1f} points with 2 workers\n")
    rng = np.random.default_rng(args.seed)
    print(f"simulated: {ROUNDS} trials per worker, log-normal trial times (sigma 1)")
    print(f"{'workers':>7} {'sync util %':>11} {'async util %':>12} {'async/sync':>10}")
    for workers in (8, 32, 128):
        sync, asynchronous = simulate(workers, rng)
        print(f"{workers:>7} {100 * sync:>11.1f} {100 * asynchronous:>12.1f} "
              f"{asynchronous / sync:>10.2f}")
    ok = speedup >= 1.6
    print(f"\n{'PASS' if ok else 'FAIL'}: 2 workers are {speedup:.2f}x as fast as 1 (goal 1.6x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
