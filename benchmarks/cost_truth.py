"""The cost model's flash and RAM against what TensorFlow Lite Micro measures.

    python benchmarks/cost_truth.py [POINTS_PER_SPACE]

For sampled valid points of every CNN stdlib space (random weights, batch norms with
random statistics, int8 calibrated on random data; sizes do not depend on the values),
exports the `.tflite` file, runs it once in TFLite Micro's interpreter, and prints per
space the predicted and measured arena total, activation area and flash: the largest
and the median relative error, and how often the activation area is exact.
"""

from __future__ import annotations

import statistics
import sys
import time

import sparsemod_dsl as sm
from sparsemod_dsl.nets.cost import cost
from sparsemod_dsl.nets.deploy.measure import measure

SPACES = ("sparse_cnn", "sparse_cnn_seq", "ds_cnn", "mbconv")
#: Points whose networks take TFLM's reference kernels long to run are skipped.
MAX_MACS = 20_000_000


def main(points: int = 20) -> None:
    print(f"{'space':15} {'points':>6}  {'figure':16} {'median err':>10} {'max err':>8}  exact")
    for name in SPACES:
        space = sm.compile_file(f"stdlib/{name}.arch")
        chosen = [p for p in space.sample(20 * points, seed=11)
                  if space.validate(p) and cost(space.program, p).macs <= MAX_MACS][:points]
        errors: dict[str, list[float]] = {"arena total": [], "activation area": [], "flash": []}
        exact = 0
        start = time.perf_counter()
        for point in chosen:
            comparison = measure(space.program, point)
            predicted, measured = comparison.predicted, comparison.measured
            for figure, model, truth in (
                    ("arena total", predicted.ram_bytes, measured.arena_bytes),
                    ("activation area", predicted.activation_bytes, measured.activation_bytes),
                    ("flash", predicted.flash_bytes, measured.flash_bytes)):
                errors[figure].append(abs(model - truth) / truth)
            exact += predicted.activation_bytes == measured.activation_bytes
        seconds = time.perf_counter() - start
        for index, (figure, values) in enumerate(errors.items()):
            label = name if index == 0 else ""
            count = f"{len(chosen)}" if index == 0 else ""
            tail = f"  {exact}/{len(chosen)}" if figure == "activation area" else ""
            print(f"{label:15} {count:>6}  {figure:16} {statistics.median(values):10.2%} "
                  f"{max(values):8.2%}{tail}")
        print(f"{'':15} {'':6}  ({seconds:.1f} s: export and TFLM)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
