"""Where a search's time goes: choosing points versus training networks.

Part 1 runs the digits example (examples/digits, the 43-parameter SpArSe CNN
space, 16 KB budgets) at a fixed budget of trials once per strategy, side by
side, and splits each run's wall time into candidate generation (every call
for points, morph scoring included), training and evaluation (training,
pruning, quantisation, test error, pricing, saving) and everything else
(journal, Ax bookkeeping, start-up). It prints the ratio generation / training
and the mean seconds per BO batch. By default it compares our default strategy
(`exact`) with Ax's default configuration (`ax`: every objective a GP,
qLogNEHVI with Ax's default optimiser settings).

Part 2 times the default strategy where it is hardest: the 64-parameter hybrid
space `stdlib/sparse_cnn_rnn.arch` on an STM32F746 with 100 observations and
more, one batch of 4 after another. The observations are feasible Sobol points
with synthetic errors (a smooth function of size plus noise): the time to
choose points does not depend on the errors, and training 100 RNNs would take
far longer than the measurement. The first batch fits the GP from scratch.
`--ax-large` also times one batch of Ax's default there (minutes).

Exits 1 unless the default strategy's generation / training is at most 1.0 and
each large-space batch takes at most 5 s.

    .venv/bin/python benchmarks/search_overhead.py [--strategies exact ax] [--ax-large]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from runs import digits, machine, run

from sparsemod_dsl.lang.loader import stdlib_dir
from sparsemod_dsl.nets.targets import load_target
from sparsemod_dsl.search.axstrategy import Strategy
from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.experiment import STRATEGIES
from sparsemod_dsl.search.pricing import Pricer
from sparsemod_dsl.search.strategy import make_strategy
from sparsemod_dsl.search.trials import Trial
from sparsemod_dsl.space import compile_file

MAX_RATIO = 1.0
MAX_BATCH_SECONDS = 5.0
OBJECTIVES = ["error", "flash", "ram"]


def split(engine: Search) -> dict[str, float]:
    """The run's seconds by part, the ratio, and the mean seconds of a BO batch."""
    spent = engine.timings
    bo = [seconds for stage, _, seconds in spent.batches if stage == "bo"]
    return {
        "trials": sum(t.status in ("completed", "failed") for t in engine.journal.trials()),
        "generation": spent.generation,
        "training": spent.training,
        "other": spent.total - spent.generation - spent.training,
        "total": spent.total,
        "ratio": spent.generation / spent.training,
        "bo_batch": sum(bo) / max(len(bo), 1),
    }


def digits_split(strategies: list[str], stages: dict[str, int]) -> dict[str, dict[str, float]]:
    print(f"Part 1: digits example (sparse_cnn, 43 parameters), {stages['sobol']} Sobol + "
          f"{stages['bo_rounds']} x {stages['bo_batch']} BO + {stages['morph_rounds']} morph "
          "trials, seed 0")
    print(f"{'strategy':<9} {'trials':>6} {'generation s':>12} {'training s':>10} "
          f"{'other s':>7} {'total s':>7} {'gen/train':>9} {'BO s/batch':>10}")
    rows = {}
    for name in strategies:
        row = rows[name] = split(run(digits(name, 0, **stages)))
        print(f"{name:<9} {row['trials']:>6.0f} {row['generation']:>12.1f} "
              f"{row['training']:>10.1f} {row['other']:>7.1f} {row['total']:>7.1f} "
              f"{row['ratio']:>9.2f} {row['bo_batch']:>10.1f}", flush=True)
    if len(rows) > 1:
        base = rows[strategies[0]]
        for name in strategies[1:]:
            row = rows[name]
            print(f"{name} / {strategies[0]}: "
                  f"generation x{row['generation'] / base['generation']:.0f}, "
                  f"whole run x{row['total'] / base['total']:.1f}")
    return rows


def synthetic_error(values: dict[str, float], rng: np.random.Generator) -> float:
    """A plausible error: larger networks err less, plus noise."""
    size = values["flash"] + values["ram"]
    return float(np.clip(0.85 * np.exp(-size / 60_000) + rng.normal(0.0, 0.03), 0.01, 0.99))


def observe(strategy: Strategy, pricer: Pricer, points: list[dict], first_id: int,
            rng: np.random.Generator) -> None:
    for k, point in enumerate(points):
        values = pricer.price(point).values
        strategy.observe(Trial(first_id + k, "bo", point, None, "completed",
                               error=synthetic_error(values, rng),
                               flash_bytes=int(values["flash"]), ram_bytes=int(values["ram"])))


def large_space(observations: int, batches: int, with_ax: bool) -> list[float]:
    space = compile_file(stdlib_dir() / "sparse_cnn_rnn.arch")
    program = space.program
    pricer = Pricer(program, load_target("stm32f746"), "int8", True)
    rng = np.random.default_rng(0)
    strategy = make_strategy("exact", program, OBJECTIVES, pricer, seed=0)
    print(f"\nPart 2: sparse_cnn_rnn ({len(program.searchable)} parameters), stm32f746, "
          f"from {observations} observations (synthetic errors), batches of 4, exact strategy")
    start = strategy.initial(observations)
    observe(strategy, pricer, start, 0, rng)
    print(f"{'batch':>5} {'observations':>12} {'seconds':>8} {'GP fits so far':>14}")
    times = []
    for batch in range(batches):
        seen = len(strategy.trials)
        began = time.perf_counter()
        points = strategy.propose(4)
        times.append(time.perf_counter() - began)
        assert len(points) == 4 and all(pricer.price(p).reason is None for p in points)
        print(f"{batch + 1:>5} {seen:>12} {times[-1]:>8.2f} {strategy.model.fits:>14}",
              flush=True)
        observe(strategy, pricer, points, seen, rng)
    print(f"max {max(times):.2f} s, mean {sum(times) / len(times):.2f} s per batch of 4")
    if with_ax:
        ax = make_strategy("ax", program, OBJECTIVES, pricer, seed=0)
        observe(ax, pricer, start, 0, np.random.default_rng(0))
        began = time.perf_counter()
        ax.propose(4)
        print(f"Ax default, one batch of 4 from {observations} observations: "
              f"{time.perf_counter() - began:.1f} s")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategies", nargs="+", default=["exact", "ax"], choices=STRATEGIES)
    parser.add_argument("--sobol", type=int, default=8)
    parser.add_argument("--bo-rounds", type=int, default=3)
    parser.add_argument("--bo-batch", type=int, default=4)
    parser.add_argument("--morph-rounds", type=int, default=4)
    parser.add_argument("--observations", type=int, default=100)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--ax-large", action="store_true", help="time Ax's default in part 2")
    args = parser.parse_args()
    print(f"search_overhead: {machine()}")
    stages = {"sobol": args.sobol, "bo_rounds": args.bo_rounds, "bo_batch": args.bo_batch,
              "morph_rounds": args.morph_rounds}
    rows = digits_split(args.strategies, stages)
    times = large_space(args.observations, args.batches, args.ax_large)
    ok = max(times) <= MAX_BATCH_SECONDS
    if "exact" in rows:
        ok = ok and rows["exact"]["ratio"] <= MAX_RATIO
    print(f"\n{'PASS' if ok else 'FAIL'}: default generation / training <= {MAX_RATIO} on digits "
          f"and <= {MAX_BATCH_SECONDS:.0f} s per batch of 4 on the large space")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
