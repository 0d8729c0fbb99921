"""What early stopping of trials saves, and what it costs the front, on the digits example.

Runs the digits example (real training, pruning and int8 quantisation; no morph
stage) without `[early_stopping]` and with each of `--rules` (`RULE` or
`RULE:cheaper`, i.e. `compare = "cheaper"`), same seed and stage budgets, side by side
in one run: `--jobs` searches at a time (1: each alone), one torch thread each. The
Sobol stage proposes the same points to all, so its training seconds compare the same
work; the BO stage then proposes other points to each. Prints per search: its wall
time, the seconds spent training (the per-epoch validation of a rule included), in
all and in the Sobol stage, their ratio to the search without a rule, the trained
networks (completed + stopped), the epochs trained, and the
hypervolume of the (validation error, flash, RAM) front as `search_quality` defines
it (% of the box up to 90% error, 16 KB flash, 16 KB RAM) at equal wall time (the
search time of the shortest run, from the journal's finish times), at the end (equal
trained networks), and that of the search without a rule at the same search time.
Exits 1 when a rule saved no training time.

    nice -n 19 .venv/bin/python benchmarks/early_stopping.py [--sobol 16] [--bo-rounds 3]
        [--epochs 8] [--rules median median:cheaper asha asha:cheaper] [--seed 0] [--jobs 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

import numpy as np
import torch
from runs import digits, machine, run
from search_quality import REFERENCE

from sparsemod_dsl.search.experiment import EARLY_STOPPING_RULES, EarlyStoppingSettings
from sparsemod_dsl.search.hypervolume import hypervolume
from sparsemod_dsl.search.state import finish_seconds


def search(rule: str, args: argparse.Namespace) -> dict[str, Any]:
    """One search with `rule` (`none`, `median`, `asha:cheaper`, ...); what the table
    needs (plain values: it comes back from a process)."""
    torch.set_num_threads(1)
    experiment = digits(args.strategy, args.seed, sobol=args.sobol, bo_rounds=args.bo_rounds,
                        bo_batch=args.bo_batch, morph_rounds=0, epochs=(args.epochs,) * 3)
    name, _, compare = rule.partition(":")
    experiment = dataclasses.replace(experiment, early_stopping=EarlyStoppingSettings(
        name, args.grace_epochs, args.min_trials, args.eta, compare or "all"))
    engine = run(experiment)
    trials = engine.journal.trials()
    at = finish_seconds(engine.journal.records())
    trained = [t for t in trials if t.status in ("completed", "stopped", "failed")]
    return {
        "wall": engine.timings.total,
        "train": sum(t.train_seconds or 0.0 for t in trained),
        "sobol": sum(t.train_seconds or 0.0 for t in trained if t.stage == "sobol"),
        "completed": sum(t.status == "completed" for t in trained),
        "stopped": sum(t.status == "stopped" for t in trained),
        "epochs": sum(int(t.extra.get("epochs_run", t.extra.get("epochs", 0)))
                      for t in trained if t.status != "failed"),
        "points": [(at.get(t.id, 0.0), [t.error, t.flash_bytes, t.ram_bytes])
                   for t in trained if t.status == "completed"],
        "end": max(at.values(), default=0.0),
    }


def volume(result: dict[str, Any], until: float) -> float:
    """The hypervolume (%) of the completed trials that finished by search time `until`."""
    values = [v for t, v in result["points"] if t <= until]
    return 100 * hypervolume(np.array(values, dtype=float).reshape(-1, 3), REFERENCE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sobol", type=int, default=16)
    parser.add_argument("--bo-rounds", type=int, default=3)
    parser.add_argument("--bo-batch", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=8, help="per trial, every stage")
    parser.add_argument("--rules", nargs="+", default=["median", "median:cheaper", "asha",
                                                       "asha:cheaper"])
    parser.add_argument("--grace-epochs", type=int, default=2)
    parser.add_argument("--min-trials", type=int, default=4)
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--strategy", default="exact")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="searches at once")
    args = parser.parse_args()
    if bad := [r for r in args.rules if r.partition(":")[0] not in EARLY_STOPPING_RULES[1:]
               or r.partition(":")[2] not in ("", "cheaper")]:
        parser.error(f"--rules: not RULE or RULE:cheaper with a RULE of "
                     f"{', '.join(EARLY_STOPPING_RULES[1:])}: {bad}")
    print(f"early_stopping: {machine()}, {args.jobs} search(es) at once with 1 torch "
          "thread each")
    print(f"digits example, seed {args.seed}, {args.sobol} Sobol + {args.bo_rounds}x"
          f"{args.bo_batch} BO trials of {args.epochs} epochs, {args.strategy} strategy; "
          f"grace_epochs {args.grace_epochs}, min_trials {args.min_trials}, eta {args.eta} "
          "(asha)")
    print("hypervolume: % of the (validation error, flash, RAM) box up to 90% error, "
          "16 KB flash, 16 KB RAM\n")
    rules = ["none", *args.rules]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(search, rules, [args] * len(rules)))
    base = results[0]
    equal = min(r["end"] for r in results)
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("wall time s", lambda r: f"{r['wall']:.0f}"),
        ("training s", lambda r: f"{r['train']:.0f}"),
        ("training / without", lambda r: f"{r['train'] / base['train']:.2f}"),
        ("sobol stage training s", lambda r: f"{r['sobol']:.0f}"),
        ("sobol training / without", lambda r: f"{r['sobol'] / base['sobol']:.2f}"),
        ("trained (+ stopped)", lambda r: f"{r['completed']} + {r['stopped']}"),
        ("epochs trained", lambda r: f"{r['epochs']}"),
        (f"hypervolume % at {equal:.0f} s", lambda r: f"{volume(r, equal):.1f}"),
        ("hypervolume % at the end", lambda r: f"{volume(r, r['end']):.1f}"),
        ("  without a rule, then", lambda r: f"{volume(base, r['end']):.1f}"),
    ]
    print(f"{'':<26}" + "".join(f"{rule:>15}" for rule in rules))
    for name, cell in rows:
        print(f"{name:<26}" + "".join(f"{cell(r):>15}" for r in results))
    return int(any(r["train"] >= base["train"] for r in results[1:]))


if __name__ == "__main__":
    sys.exit(main())
