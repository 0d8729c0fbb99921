"""Calibrate the latency model's per-operator throughput on published MLPerf Tiny results.

    python benchmarks/latency_calibration.py

MLPerf Tiny's four reference models ran on the NUCLEO-L4R5ZI (Arm Cortex-M4 at 120 MHz)
with two engines: TFLite Micro's reference kernels (the v0.5 reference submission) and
CMSIS-NN kernels (OctoML's microTVM + CMSIS-NN, v1.0 closed division). For each engine
this script fits the MACs per cycle of linear, convolution and pointwise operators by
least squares (relative errors) to the four published latencies, with depthwise at
half the pointwise rate and the per-operator dispatch and the elementwise rate fixed
(estimates, below: keyword spotting and visual wake words mix depthwise and pointwise
work in nearly the same proportion, so the published results cannot separate them),
then prints the table docs/cost-models.md holds. The four models are priced from their
`.arch` files (examples/mlperf_tiny/) through the deployed graph.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

import sparsemod_dsl as sm
from sparsemod_dsl.nets.graph import deployed_graph

ROOT = Path(__file__).resolve().parents[1]
CLOCK_HZ = 120e6
#: Published milliseconds per inference: (TFLM reference v0.5, microTVM + CMSIS-NN v1.0).
PUBLISHED = {"kws": (181.9, 99.8), "ic": (704.2, 389.6), "vww": (600.6, 301.2),
             "ad": (10.05, 8.60)}
ENGINES = ("tflm-reference", "cmsis-nn")
#: Fixed per engine (estimates): cycles of dispatch per operator, elements per cycle
#: of pooling, adds and reshapes.
OVERHEAD = {"tflm-reference": 2000.0, "cmsis-nn": 1000.0}
ELEMENTWISE = {"tflm-reference": 0.25, "cmsis-nn": 0.5}
CLASSES = ("linear", "conv", "depthwise", "pointwise")
#: Depthwise MACs per cycle as a fraction of pointwise ones (estimate).
DEPTHWISE_RATIO = 0.5

ARCH = {"kws": "kws_ds_cnn.arch", "ic": "ic_resnet8.arch", "vww": "vww_mobilenet.arch",
        "ad": "ad_autoencoder.arch"}


def workload(name: str) -> tuple[dict[str, int], int, int]:
    """MACs per class, operator count and elementwise elements of a reference model."""
    space = sm.compile_file(ROOT / "examples" / "mlperf_tiny" / ARCH[name])
    graph = deployed_graph(space.program, {})
    macs: dict[str, int] = collections.Counter()
    elements = 0
    for op in graph.ops:
        if op.mac_class:
            macs[op.mac_class] += op.macs
        else:
            elements += max(graph.tensors[t].elements for t in (*op.inputs, op.output))
    return {c: macs.get(c, 0) for c in CLASSES}, len(graph.ops), elements


def calibrate(engine: str, index: int) -> dict[str, float]:
    """MACs per cycle of each class, least squares on relative latency errors."""
    rows, rhs = [], []
    for name in PUBLISHED:
        macs, ops, elements = workload(name)
        cycles = PUBLISHED[name][index] * 1e-3 * CLOCK_HZ
        pointwise = macs["pointwise"] + macs["depthwise"] / DEPTHWISE_RATIO
        rows.append([macs["linear"] / cycles, macs["conv"] / cycles, pointwise / cycles])
        rhs.append(1 - (ops * OVERHEAD[engine] + elements / ELEMENTWISE[engine]) / cycles)
    (linear, conv, pointwise), *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    return {"linear": 1 / linear, "conv": 1 / conv, "depthwise": DEPTHWISE_RATIO / pointwise,
            "pointwise": 1 / pointwise}


def main() -> None:
    for index, engine in enumerate(ENGINES):
        rates = calibrate(engine, index)
        print(f"{engine}: MACs per cycle " + ", ".join(f"{c} {r:.3f}" for c, r in rates.items())
              + f"; {OVERHEAD[engine]:g} cycles per operator, "
              f"{ELEMENTWISE[engine]:g} elements per cycle")
        for name in PUBLISHED:
            macs, ops, elements = workload(name)
            cycles = (sum(macs[c] / rates[c] for c in CLASSES if macs[c])
                      + ops * OVERHEAD[engine] + elements / ELEMENTWISE[engine])
            model = cycles / CLOCK_HZ * 1e3
            published = PUBLISHED[name][index]
            print(f"  {name:4} {sum(macs.values()):>11,} MACs {ops:3} ops  published "
                  f"{published:7.2f} ms  model {model:7.2f} ms  ({model / published - 1:+.1%})")


if __name__ == "__main__":
    main()
