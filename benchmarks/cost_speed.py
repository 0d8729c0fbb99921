"""Cost of one point: the IR cost models against building the module and counting.

For N sampled valid points of a few stdlib spaces, times side by side, per point:

- IR: `cost.cost(program, point, target)`: parameters, flash, peak RAM, MACs,
  latency and the per-layer table, from the IR;
- torch: `builder.build` + a forward pass of one example under
  `torch.utils.flop_counter.FlopCounterMode` + a parameter count: what the
  earlier implementation did for every objective of every trial (it gives MACs
  and parameters only).

A search validates every candidate (`point.validate`) before it prices or
builds it; `cost.cost` therefore does not validate again, while `build` does
(inside its time). The `validate` column shows that step's time and the last
column the ratio with it added to the IR side.

Prints the mean milliseconds per point (best of 3 runs over the points) and the
ratios per space, and exits 1 unless the IR path takes under 5 ms per point and
is at least 20 times faster than the torch path. Torch runs on one thread, as
in the tests.

    .venv/bin/python benchmarks/cost_speed.py [-n 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from sparsemod_dsl.lang.compiler import check_file
from sparsemod_dsl.lang.loader import stdlib_dir
from sparsemod_dsl.nets import cost, point
from sparsemod_dsl.nets.builder import build
from sparsemod_dsl.nets.targets import Target, load_target
from sparsemod_dsl.nets.trace import trace

SPACES = ("sparse_cnn", "ds_cnn", "mbconv", "sparse_rnn")
MAX_IR_MS, MIN_RATIO = 5.0, 20.0


def best_ms(run: Callable[[int], object], n: int, repeats: int = 3) -> float:
    """Mean milliseconds of `run(i)` over i < n, best of `repeats` passes."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            run(i)
        best = min(best, (time.perf_counter() - start) / n * 1e3)
    return best


def measure(name: str, n: int, seed: int, target: Target) -> tuple[int, float, float, float]:
    """Points of a stdlib space and mean ms per point of: IR cost, validate, torch path."""
    program = check_file(stdlib_dir() / f"{name}.arch").program
    assert program is not None
    points = [p for p in point.sample(program, n * 4, seed) if point.validate(program, p)][:n]
    inputs = [torch.randn(1, *trace(program, p)[0].sizes()) for p in points]

    def ir(i: int) -> object:
        return cost.cost(program, points[i], target)

    def checked(i: int) -> object:
        return point.validate(program, points[i])

    def torch_path(i: int) -> object:
        net = build(program, points[i]).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(inputs[i])
        return counter.get_total_flops(), sum(p.numel() for p in net.parameters())

    ir(0), torch_path(0)  # warm up both paths
    return (len(points), best_ms(ir, len(points)), best_ms(checked, len(points)),
            best_ms(torch_path, len(points)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=40, help="valid points per space (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    target = load_target("stm32f746")
    print(f"{'space':<11} {'points':>6} {'IR ms':>7} {'validate':>8} {'torch ms':>8} "
          f"{'ratio':>6} {'incl. validate':>14}")
    ok = True
    for name in SPACES:
        count, ir_ms, validate_ms, torch_ms = measure(name, args.n, args.seed, target)
        ratio = torch_ms / ir_ms
        ok &= ir_ms < MAX_IR_MS and ratio >= MIN_RATIO
        print(f"{name:<11} {count:>6} {ir_ms:>7.3f} {validate_ms:>8.3f} {torch_ms:>8.2f} "
              f"{ratio:>5.0f}x {torch_ms / (ir_ms + validate_ms):>13.0f}x")
    print(f"requirement: IR under {MAX_IR_MS:g} ms per point and at least {MIN_RATIO:g}x faster: "
          f"{'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
