"""`nets.deploy.standardize`: a network exported with its standardisation in front.

For images, sequences and vectors, with per-channel statistics hypothesis draws, the
standardised network fed raw data computes what the trained network computes on
standardised data; its int8 export, calibrated on raw data, runs in TensorFlow Lite
Micro as torch's int8 model computes it; and the cost model prices the exported graph.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import program, sensitive
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsemod_dsl.lang.compiler import compile_source
from sparsemod_dsl.nets import point
from sparsemod_dsl.nets.cost import cost
from sparsemod_dsl.nets.deploy.export import export_int8, run_tflm
from sparsemod_dsl.nets.deploy.measure import randomized
from sparsemod_dsl.nets.deploy.standardize import (
    STANDARDIZE,
    standardized_net,
    standardized_program,
)
from sparsemod_dsl.nets.graph import deployed_graph
from sparsemod_dsl.nets.quantize import static_int8
from sparsemod_dsl.nets.trace import trace

pytest.importorskip("tflite_micro", reason="needs the deploy extra (tflite-micro)")

VECTOR = compile_source('''
arch vec(input: vector(5), classes = 3)
network {
    linear(units = 8) relu
    linear(classes)
}
''', "vec.arch")
SPACES = {"sparse_cnn": program("sparse_cnn"), "sparse_cnn_seq": program("sparse_cnn_seq"),
          "vector": VECTOR}


def _point(name: str) -> point.Point:
    prog = SPACES[name]
    found = [p for p in point.sample(prog, 100, seed=5) if point.validate(prog, p)]
    return min(found, key=lambda p: cost(prog, p).macs)


def _view(kind: str) -> tuple[int, ...]:
    """The shape that broadcasts per-channel statistics over a sample of `kind`."""
    return (-1, 1, 1) if kind == "image" else (-1,)


@pytest.mark.parametrize("name", [*SPACES])
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_tflm_runs_the_standardised_export_on_raw_data_as_torch_int8(name: str,
                                                                     seed: int) -> None:
    prog, pt = SPACES[name], _point(name)
    shape, _ = trace(prog, pt)
    sizes = shape.sizes()
    channels = sizes[0] if prog.input.kind == "image" else sizes[-1]
    generator = torch.Generator().manual_seed(seed)
    mean = (torch.rand(channels, generator=generator) * 20 - 10).tolist()
    std = (torch.rand(channels, generator=generator) * 5 + 0.2).tolist()
    view = _view(prog.input.kind)
    raw = [torch.randn(16, *sizes, generator=generator) * torch.tensor(std).reshape(view)
           + torch.tensor(mean).reshape(view) for _ in range(2)]
    standardised = [(x - torch.tensor(mean).reshape(view)) / torch.tensor(std).reshape(view)
                    for x in raw]
    trained = randomized(sensitive(prog, pt, standardised), generator).eval()
    net = standardized_net(prog, pt, trained, mean, std)
    with torch.no_grad():
        assert torch.allclose(net(raw[0]), trained(standardised[0]), atol=1e-4)
    int8 = static_int8(net, raw)
    exported = export_int8(standardized_program(prog), pt, int8, "tflite", "net")
    assert exported.int8 is not None
    graph = exported.int8.graph
    assert STANDARDIZE in (graph.ops[0].name, graph.ops[1].name)  # a vector's RESHAPE first
    with torch.no_grad():
        expected = int8(raw[1]).numpy()
    got = run_tflm(exported, raw[1])
    step = float(exported.int8.activations[graph.output].scale[0])
    assert (np.abs(got - expected) <= 1.01 * step).mean() >= 0.9, name
    assert graph.ops == deployed_graph(standardized_program(prog), pt).ops


@pytest.mark.parametrize("name", [*SPACES])
def test_the_leading_operator_costs_its_channels(name: str) -> None:
    prog, pt = SPACES[name], _point(name)
    before, after = cost(prog, pt), cost(standardized_program(prog), pt)
    assert after.macs - before.macs == int(np.prod(trace(prog, pt)[0].sizes()))
    assert after.flash_bytes > before.flash_bytes
    assert after.ram_bytes >= before.ram_bytes
