"""Vector inputs and regression heads: `input: vector(N)`, `output: vector(N)`, `loss = mse`.

The header round-trips through the formatter and compiles to the IR's input kind, output
size and loss; the MLPerf Tiny FC autoencoder (stdlib and example) has the published
parameter count; vector networks build, cost exactly as torch counts them, and export
to int8 TFLite that TensorFlow Lite Micro runs as torch's int8 model computes it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, program, sensitive
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsemod_dsl.lang.compiler import check_file, compile_source
from sparsemod_dsl.lang.fmt import format_source
from sparsemod_dsl.nets import point
from sparsemod_dsl.nets.builder import build
from sparsemod_dsl.nets.codegen import builder_source
from sparsemod_dsl.nets.cost import cost
from sparsemod_dsl.nets.modules import Recurrent
from sparsemod_dsl.nets.morph import inherit

#: MLPerf Tiny AD: 640-128-128-128-128-8-128-128-128-128-640, batch norm folded.
MLPERF_AD_PARAMS = 265_864
MLPERF_AD_MACS = 264_192


def header_source(n: int | None, m: int | None, loss: bool) -> str:
    size = "" if n is None else f"({n})"
    out = "" if m is None else f"({m})"
    tail = ", loss = mse" if loss else ""
    return (f"arch h(input: vector{size}, output: vector{out}{tail})\n\nnetwork {{\n"
            f"    linear(4) relu\n    linear(outputs)\n}}\n")


@settings(max_examples=25, deadline=None)
@given(n=st.none() | st.integers(1, 4096), m=st.none() | st.integers(1, 4096), loss=st.booleans())
def test_headers_round_trip_and_compile(n: int | None, m: int | None, loss: bool) -> None:
    text = header_source(n, m, loss)
    assert format_source(text, "h.arch") == text
    prog = compile_source(text, "h.arch", input_shape=None if n else (7,),
                          classes=None if m else 3)
    assert prog.input.kind == "vector" and prog.input.shape == ((n,) if n else (7,))
    assert (prog.classes, prog.loss) == (m or 3, "mse")


def test_a_classifier_keeps_cross_entropy_and_may_take_vectors() -> None:
    prog = compile_source("arch c(input: vector(12), classes = 3, loss = cross_entropy)\n\n"
                          "network {\n    linear(classes)\n}\n", "c.arch")
    assert (prog.loss, prog.classes, prog.input.shape) == ("cross_entropy", 3, (12,))
    net = build(prog, {})
    assert net(torch.zeros(2, 12)).shape == (2, 3)


@pytest.mark.parametrize("name", ["stdlib", "example"])
def test_the_fc_autoencoder_has_the_mlperf_parameter_count(name: str) -> None:
    # Batch norm is counted folded into the dense layer before it (as TFLite deploys it):
    # it adds no parameters; torch holds 2 x 1,032 more (the 9 batch norms' scale and shift).
    prog = program("fc_autoencoder") if name == "stdlib" else check_file(
        ROOT / "examples" / "mlperf_tiny" / "ad_autoencoder.arch").program
    assert prog is not None and prog.loss == "mse" and prog.input.shape == (640,)
    report = cost(prog, {})
    assert (report.params, report.macs) == (MLPERF_AD_PARAMS, MLPERF_AD_MACS)
    net = build(prog, {})
    linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [128] * 4 + [8] + [128] * 4 + [640]
    assert sum(p.numel() for m in linear for p in m.parameters()) == MLPERF_AD_PARAMS
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert sum(p.numel() for m in norms for p in m.parameters()) == 2 * (8 * 128 + 8)
    assert net(torch.zeros(2, 640)).shape == (2, 640)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_fc_autoencoder_points_cost_what_torch_counts(seed: int) -> None:
    prog = program("fc_autoencoder")
    for pt in point.sample(prog, 2, seed):
        assert point.validate(prog, pt)
        net = build(prog, pt)
        folded = sum(p.numel() for m in net.modules() if isinstance(m, torch.nn.Linear)
                     for p in m.parameters())
        macs = sum(m.in_features * m.out_features for m in net.modules()
                   if isinstance(m, torch.nn.Linear))
        report = cost(prog, pt)
        assert (report.params, report.macs) == (folded, macs)


def test_the_fc_autoencoder_exports_to_int8_tflite_that_tflm_runs() -> None:
    pytest.importorskip("tflite_micro", reason="needs the deploy extra (tflite-micro)")
    from sparsemod_dsl.nets.deploy.export import export_int8, run_tflm
    from sparsemod_dsl.nets.graph import deployed_graph
    from sparsemod_dsl.nets.quantize import static_int8

    prog = program("fc_autoencoder")
    pt = {"width": 32, "encoder": 2, "decoder": 2}
    generator = torch.Generator().manual_seed(0)
    calibration = [torch.randn(16, 640, generator=generator) for _ in range(2)]
    int8 = static_int8(sensitive(prog, pt, calibration), calibration)
    exported = export_int8(prog, pt, int8, "tflite", "ae")
    assert exported.int8 is not None
    graph = deployed_graph(prog, pt)
    x = torch.randn(20, 640, generator=generator)
    with torch.no_grad():
        expected = int8(x).numpy()
    got = run_tflm(exported, x)
    assert got.shape == (20, 640)
    step = float(exported.int8.activations[graph.output].scale[0])
    assert (np.abs(got - expected) <= 1.01 * step).mean() >= 0.99


#: Softmax on an image (over channels), a sequence (over features, in a time-distributed
#: body) and the final vector: TFLite's int8 SOFTMAX on the last NHWC axis each time.
SOFTMAX = '''
arch probabilities(input: image(2, 6, 6), classes = 4)

network {
    conv2d(filters = choice[4, 8], kernel = 3) relu
    optional channels {
        softmax
    }
    to_sequence
    time_distributed {
        linear(units = int[3..6])
        softmax
    }
    flatten
    linear(classes)
    softmax
}
'''


def test_softmax_is_a_layer_on_every_kind_and_costs_nothing_but_time() -> None:
    prog = compile_source(SOFTMAX, "probabilities.arch")
    pt = {"conv2d.filters": 4, "channels": True, "linear.units": 3}
    assert point.validate(prog, pt), point.validate(prog, pt).reason
    net = build(prog, pt)
    out = net(torch.randn(5, 2, 6, 6))
    assert torch.allclose(out.sum(dim=1), torch.ones(5))
    report = cost(prog, pt)
    torch_params = sum(p.numel() for p in net.parameters())
    assert report.params == torch_params
    softmaxes = [layer for layer in report.layers if layer.op == "SOFTMAX"]
    assert len(softmaxes) == 3 and all(s.params == s.macs == 0 for s in softmaxes)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_tflm_runs_softmax_as_torch_int8_computes_it(seed: int) -> None:
    pytest.importorskip("tflite_micro", reason="needs the deploy extra (tflite-micro)")
    from sparsemod_dsl.nets.deploy.export import export_int8, run_tflm
    from sparsemod_dsl.nets.deploy.measure import measure
    from sparsemod_dsl.nets.graph import deployed_graph
    from sparsemod_dsl.nets.quantize import static_int8

    prog = compile_source(SOFTMAX, "probabilities.arch")
    pt = next(p for p in point.sample(prog, 10, seed) if point.validate(prog, p))
    generator = torch.Generator().manual_seed(seed)
    calibration = [torch.randn(16, 2, 6, 6, generator=generator) for _ in range(2)]
    int8 = static_int8(sensitive(prog, pt, calibration), calibration)
    exported = export_int8(prog, pt, int8, "tflite", "p")
    assert exported.int8 is not None
    q_out = exported.int8.activations[deployed_graph(prog, pt).output]
    assert (float(q_out.scale[0]), int(q_out.zero_point[0])) == (1 / 256, -128)
    x = torch.randn(30, 2, 6, 6, generator=generator)
    with torch.no_grad():
        expected = int8(x).numpy()
    got = run_tflm(exported, x)
    assert (np.abs(got - expected) <= 1.01 / 256).mean() >= 0.99
    comparison = measure(prog, pt)
    assert comparison.predicted.activation_bytes == comparison.measured.activation_bytes
    assert comparison.predicted.ram_bytes == pytest.approx(comparison.measured.arena_bytes,
                                                           rel=0.10)
    assert comparison.predicted.flash_bytes == pytest.approx(comparison.measured.flash_bytes,
                                                             rel=0.05)


@pytest.mark.parametrize("source", [SOFTMAX, header_source(24, 24, True)],
                         ids=["softmax", "vector"])
def test_generated_builders_build_the_runtime_networks(source: str, tmp_path: Path) -> None:
    prog = compile_source(source, "gen.arch")
    path = tmp_path / "gen_heads.py"
    path.write_text(builder_source(prog))
    spec = importlib.util.spec_from_file_location("gen_heads", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for pt in [p for p in point.sample(prog, 6, seed=1) if point.validate(prog, p)][:3]:
        runtime, generated = build(prog, pt), module.build(pt)
        assert list(runtime.state_dict()) == list(generated.state_dict())
        generated.load_state_dict(runtime.state_dict())
        runtime.eval(), generated.eval()
        x = torch.randn(4, *prog.input.shape)  # type: ignore[misc]
        assert torch.equal(runtime(x), generated(x))


#: Bidirectional recurrent layers, stacked or not, searched or fixed.
BIDIRECTIONAL = '''
arch both_ways(input: sequence(12, 5), classes = 3)

network {
    choose first {
        long: lstm(hidden = int[2..6], layers = int[1..2], bidirectional = true,
                   return_sequences = true)
        short: gru(hidden = int[2..6], bidirectional = choice[true, false],
                   return_sequences = true)
    }
    last: gru(hidden = int[2..5], bidirectional = choice[true, false])
    linear(classes)
}
'''


def _recurrent_macs(net: torch.nn.Module, steps: int) -> int:
    """MACs of torch's LSTM/GRU modules: per step, every gate's input and hidden products."""
    total = 0
    for module in net.modules():
        if isinstance(module, (torch.nn.LSTM, torch.nn.GRU)):
            total += steps * sum(p.numel() for n, p in module.named_parameters()
                                 if n.startswith("weight"))
    return total


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_bidirectional_layers_build_and_cost_what_torch_counts(seed: int) -> None:
    prog = compile_source(BIDIRECTIONAL, "both_ways.arch")
    for pt in [p for p in point.sample(prog, 4, seed) if point.validate(prog, p)]:
        net = build(prog, pt)
        out = net(torch.randn(2, 12, 5))
        assert out.shape == (2, 3)
        report = cost(prog, pt, quant="float32")
        linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
        assert report.params == sum(p.numel() for p in net.parameters())
        assert report.macs == _recurrent_macs(net, 12) + sum(
            m.in_features * m.out_features for m in linear)


def test_a_bidirectional_layer_outputs_both_final_states() -> None:
    prog = compile_source(BIDIRECTIONAL, "both_ways.arch")
    pt = point.complete(prog, {"first": "short", "gru.bidirectional": False,
                               "last.bidirectional": True})
    net = build(prog, pt)
    last = [m for m in net.modules() if isinstance(m, Recurrent)][-1]
    assert last.rnn.bidirectional and last.rnn.input_size == pt["gru.hidden"]
    x = torch.randn(2, 12, last.rnn.input_size)
    out, _ = last.rnn(x)
    hidden = last.hidden
    # forward: its state after the last step; backward: after the first (its own last)
    assert torch.equal(last(x), torch.cat([out[:, -1, :hidden], out[:, 0, hidden:]], 1))
    assert net(torch.randn(2, 12, 5)).shape == (2, 3)


def test_bidirectional_weights_are_inherited_in_both_directions() -> None:
    prog = compile_source(BIDIRECTIONAL, "both_ways.arch")
    parent = point.complete(prog, {"first": "long", "lstm.hidden": 4, "lstm.layers": 1})
    child = {**parent, "lstm.hidden": 6}
    assert point.validate(prog, parent) and point.validate(prog, child)
    old, new = build(prog, parent), build(prog, child)
    assert inherit(new, old.state_dict()) > 0
    for suffix in ("weight_ih_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse",
                   "bias_ih_l0_reverse"):
        key = next(k for k in new.state_dict() if k.endswith(f"rnn.{suffix}"))
        mine, theirs = new.state_dict()[key], old.state_dict()[key]
        columns = theirs.reshape(4, 4, -1).shape[-1]
        assert torch.equal(mine.reshape(4, 6, -1)[:, :4, :columns], theirs.reshape(4, 4, -1))


def test_bidirectional_networks_are_generated_as_built(tmp_path: Path) -> None:
    test_generated_builders_build_the_runtime_networks(BIDIRECTIONAL, tmp_path)


def test_export_refuses_a_bidirectional_layer_cleanly() -> None:
    from sparsemod_dsl.nets.deploy.export import ExportError, export_int8

    prog = compile_source(BIDIRECTIONAL, "both_ways.arch")
    pt = next(p for p in point.sample(prog, 20, seed=2) if point.validate(prog, p))
    with pytest.raises(ExportError, match="has no int8 .*--format onnx"):
        export_int8(prog, pt, torch.nn.Identity(), "tflite", "net")


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_morphisms_of_bidirectional_spaces_stay_valid_and_inherit(seed: int) -> None:
    import random

    from sparsemod_dsl.nets.morph import mutate

    prog = compile_source(BIDIRECTIONAL, "both_ways.arch")
    rng = random.Random(seed)
    parent = next(p for p in point.sample(prog, 20, seed) if point.validate(prog, p))
    mutation = mutate(prog, point.active(prog, parent), rng)
    if mutation is None:
        return
    assert point.validate(prog, mutation.point)
    child = build(prog, mutation.point)
    inherit(child, build(prog, parent).state_dict())
    assert child(torch.randn(2, 12, 5)).shape == (2, 3)
