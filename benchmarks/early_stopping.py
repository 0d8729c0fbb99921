"""What early stopping of trials saves, and what it costs the front, on the digits example.

Runs the digits example (real training, pruning and int8 quantisation; no morph
stage) twice per seed, side by side in one run, one process and one torch thread
each: without `[early_stopping]`, and with `--rule` (`median` by default). Same
seeds, so the Sobol stage proposes the same points to both. Prints, per seed and
side by side: the search's wall time, the seconds spent training (the per-epoch
validation of the rule included), the ratio of the two, the trained networks
(completed and stopped), the epochs trained, and the hypervolume of the (validation
error, flash, RAM) front as `search_quality` defines it (% of the box up to 90%
error, 16 KB flash, 16 KB RAM) at equal wall time: at the search time of the
shorter run (from the journal's finish times), and at the end of each run. Exits 1
when the rule saved no training time.

    nice -n 19 .venv/bin/python benchmarks/early_stopping.py [--sobol 10] [--bo-rounds 2]
        [--epochs 6] [--rule median] [--seeds 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import torch
from runs import digits, machine, run
from search_quality import REFERENCE

from sparsemod_dsl.search.experiment import EARLY_STOPPING_RULES, EarlyStoppingSettings
from sparsemod_dsl.search.hypervolume import hypervolume
from sparsemod_dsl.search.state import finish_seconds


def search(rule: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One search; what the table needs (plain values: it comes back from a process)."""
    torch.set_num_threads(1)
    experiment = digits(args.strategy, seed, sobol=args.sobol, bo_rounds=args.bo_rounds,
                        bo_batch=args.bo_batch, morph_rounds=0, epochs=(args.epochs,) * 3)
    experiment = dataclasses.replace(experiment, early_stopping=EarlyStoppingSettings(
        rule, args.grace_epochs, args.min_trials, args.eta))
    engine = run(experiment)
    trials = engine.journal.trials()
    at = finish_seconds(engine.journal.records())
    trained = [t for t in trials if t.status in ("completed", "stopped", "failed")]
    return {
        "wall": engine.timings.total,
        "train": sum(t.train_seconds or 0.0 for t in trained),
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
    parser.add_argument("--sobol", type=int, default=10)
    parser.add_argument("--bo-rounds", type=int, default=2)
    parser.add_argument("--bo-batch", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6, help="per trial, every stage")
    parser.add_argument("--rule", default="median", choices=EARLY_STOPPING_RULES[1:])
    parser.add_argument("--grace-epochs", type=int, default=1)
    parser.add_argument("--min-trials", type=int, default=3)
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--strategy", default="exact")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    print(f"early_stopping: {machine()}, 2 searches at once with 1 torch thread each")
    print(f"digits example, {args.sobol} Sobol + {args.bo_rounds}x{args.bo_batch} BO trials of "
          f"{args.epochs} epochs, {args.strategy} strategy; rule {args.rule} (grace_epochs "
          f"{args.grace_epochs}, min_trials {args.min_trials}"
          + (f", eta {args.eta}" if args.rule == "asha" else "") + ")")
    print("hypervolume: % of the (validation error, flash, RAM) box up to 90% error, "
          "16 KB flash, 16 KB RAM\n")
    status = 0
    for seed in args.seeds:
        with ProcessPoolExecutor(2) as pool:
            off, on = pool.map(search, ["none", args.rule], [seed, seed], [args, args])
        equal = min(off["end"], on["end"])
        rows = [
            ("wall time s", f"{off['wall']:.0f}", f"{on['wall']:.0f}",
             f"{on['wall'] / off['wall']:.2f}"),
            ("training s", f"{off['train']:.0f}", f"{on['train']:.0f}",
             f"{on['train'] / off['train']:.2f}"),
            ("trained networks", f"{off['completed']}",
             f"{on['completed']} + {on['stopped']} stopped", ""),
            ("epochs trained", f"{off['epochs']}", f"{on['epochs']}",
             f"{on['epochs'] / off['epochs']:.2f}"),
            (f"hypervolume % at {equal:.0f} s", f"{volume(off, equal):.1f}",
             f"{volume(on, equal):.1f}", ""),
            ("hypervolume % at the end", f"{volume(off, off['end']):.1f}",
             f"{volume(on, on['end']):.1f}", ""),
        ]
        print(f"seed {seed}: {'':<24} {'without':>10} {args.rule:>22} {'ratio':>6}")
        for name, *cells in rows:
            print(f"  {name:<30} {cells[0]:>10} {cells[1]:>22} {cells[2]:>6}")
        print(f"  training seconds saved: {off['train'] - on['train']:.0f} s "
              f"({100 * (1 - on['train'] / off['train']):.0f}%)\n")
        status |= on["train"] > off["train"]
    return status


if __name__ == "__main__":
    sys.exit(main())
