"""The TFLite backend against the real runtimes, and the cost model against TFLite Micro.

For hypothesis-drawn valid points of every CNN stdlib space and of the two deploy test
spaces (tests/helpers.DEPLOY_SOURCES: every operator the deployed graph has), with
random weights (He-initialised, so that outputs depend on the input), non-trivial
batch-norm statistics and int8 calibrated on random data:

- the exported `.tflite` loads and runs in TensorFlow Lite Micro and in LiteRT (its
  reference kernels);
- their outputs agree with torch's int8 model within one output quantisation step on
  at least 99% of the output values, argmax on at least 99% of 100 inputs (torch's int8
  model computes with TFLite's integer arithmetic: TFLM agrees bit for bit on inputs
  the int8 grid holds; LiteRT's reference FULLY_CONNECTED rounds once where TFLM rounds
  twice, so LiteRT is compared with torch's int8 model rounding its way);
- the cost model's activation area equals TFLM's (the head of its arena) on at least 95%
  of points, its arena total is within 10% and its flash within 5% of the file, on
  every point (the issue's bounds; the measured errors are far smaller).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import DEPLOY_SOURCES, deploy_program, program, sensitive
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sparsemod_dsl.nets import point
from sparsemod_dsl.nets.cost import cost
from sparsemod_dsl.nets.deploy.export import (
    ExportError,
    export_int8,
    run_tflm,
    tflite_inputs,
)
from sparsemod_dsl.nets.deploy.measure import measure, randomized
from sparsemod_dsl.nets.graph import deployed_graph
from sparsemod_dsl.nets.int8_kernels import litert_rounding
from sparsemod_dsl.nets.quantize import static_int8
from sparsemod_dsl.nets.trace import trace

pytest.importorskip("tflite_micro", reason="needs the deploy extra (tflite-micro)")

CNN_SPACES = ("sparse_cnn", "sparse_cnn_seq", "ds_cnn", "mbconv", "tcn")
SPACES = {name: program(name) for name in CNN_SPACES} | {
    name: deploy_program(name) for name in DEPLOY_SOURCES}
#: Skip points whose networks take long to run 100 times in TFLM's reference kernels.
MAX_MACS = 3_000_000


def valid_points(name: str, seed: int, n: int = 2) -> list[point.Point]:
    prog = SPACES[name]
    found = [p for p in point.sample(prog, 200, seed) if point.validate(prog, p)]
    return [p for p in found if cost(prog, p).macs <= MAX_MACS][:n]


def litert_outputs(model: bytes, inputs: np.ndarray) -> np.ndarray:
    """LiteRT's outputs with its reference kernels (XNNPACK's own rounding moves a few
    outputs by a step, which flips the argmax of untrained networks' near-equal logits)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    runner = Interpreter(model_content=model,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    runner.allocate_tensors()
    source, sink = runner.get_input_details()[0], runner.get_output_details()[0]
    outputs = []
    for one in inputs:
        runner.set_tensor(source["index"], one[None])
        runner.invoke()
        outputs.append(runner.get_tensor(sink["index"])[0].copy())
    return np.stack(outputs)


def on_grid(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """`x` moved to the nearest values the int8 input holds: torch and the export quantise
    those alike (elsewhere their float roundings can differ on a tie, and the step grows
    through a deep network)."""
    return ((torch.round(x / scale) + zero_point).clamp(-128, 127) - zero_point) * scale


@pytest.mark.parametrize("name", [*SPACES])
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
@example(seed=95)  # mbconv: torch and TFLite quantised 5 input values differently
@example(seed=44868750)  # deploy_sequence: LiteRT's FULLY_CONNECTED rounds once
def test_tflm_and_litert_run_the_export_as_torch_int8_computes_it(name: str, seed: int) -> None:
    prog = SPACES[name]
    for pt in valid_points(name, seed, n=1):
        shape, _ = trace(prog, pt)
        generator = torch.Generator().manual_seed(seed)
        calibration = [torch.randn(16, *shape.sizes(), generator=generator) for _ in range(2)]
        # random weights that keep the outputs input-dependent, as trained ones are: an
        # untrained network's near-equal logits make argmax a tie broken by rounding
        int8 = static_int8(randomized(sensitive(prog, pt, calibration), generator), calibration)
        graph = deployed_graph(prog, pt)
        exported = export_int8(prog, pt, int8, "tflite", "net")
        assert exported.int8 is not None
        q_in = exported.int8.activations[graph.input]
        x = on_grid(torch.randn(100, *shape.sizes(), generator=generator),
                    float(q_in.scale[0]), int(q_in.zero_point[0]))
        with torch.no_grad():
            expected = int8(x).numpy()
        got = run_tflm(exported, x)
        step = float(exported.int8.activations[graph.output].scale[0])
        within = np.abs(got - expected) <= 1.01 * step
        assert within.mean() >= 0.99, (name, pt, np.abs(got - expected).max() / step)
        assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.99
        codes = tflite_inputs(x, exported.int8.activations[graph.input])
        assert exported.model is not None
        q_out = exported.int8.activations[graph.output]
        lite = (litert_outputs(exported.model, codes).astype(np.float32)
                - float(q_out.zero_point[0])) * step
        with torch.no_grad(), litert_rounding():
            expected_lite = int8(x).numpy()
        assert (np.abs(lite - expected_lite) <= 1.01 * step).mean() >= 0.99
        assert (lite.argmax(1) == expected_lite.argmax(1)).mean() >= 0.99


@pytest.mark.parametrize("name", [*SPACES])
def test_the_cost_model_prices_what_tflite_micro_measures(name: str) -> None:
    prog = SPACES[name]
    points = valid_points(name, seed=7, n=6)
    assert len(points) >= 4, f"too few cheap valid points of {name}"
    exact = 0
    for pt in points:
        comparison = measure(prog, pt)
        predicted, measured = comparison.predicted, comparison.measured
        exact += predicted.activation_bytes == measured.activation_bytes
        assert predicted.ram_bytes == pytest.approx(measured.arena_bytes, rel=0.10), pt
        assert predicted.flash_bytes == pytest.approx(measured.flash_bytes, rel=0.05), pt
        assert predicted.live_bytes <= predicted.activation_bytes
    assert exact >= 0.95 * len(points)


def test_a_recurrent_network_is_refused_with_the_way_out() -> None:
    prog = program("sparse_rnn")
    pt = next(p for p in point.sample(prog, 20, seed=3) if point.validate(prog, p))
    with pytest.raises(ExportError) as error:
        export_int8(prog, pt, torch.nn.Identity(), "tflite", "net")
    message = str(error.value)
    assert "has no int8 kernel in TensorFlow Lite Micro" in message and "--format onnx" in message
    assert message.startswith("layer ") and ("lstm" in message or "gru" in message)
