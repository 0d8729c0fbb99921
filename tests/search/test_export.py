"""`sparsemodc export` and `search.export`: a search's networks and others, to the device.

A tiny real search (digits, two Sobol points) gives a results directory; its Pareto
networks are exported in every format, checked in their runtime, and the errors the
issue names (a missing trial, a trial without saved weights, a network TFLite Micro
cannot run) are clear messages with exit 1 or 2, never tracebacks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli

from sparsemod_dsl.nets.deploy.standardize import STANDARDIZE
from sparsemod_dsl.nets.graph import deployed_graph
from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.experiment import load_experiment
from sparsemod_dsl.search.export import export_trial
from sparsemod_dsl.search.journal import Journal
from sparsemod_dsl.search.report import show
from sparsemod_dsl.search.results import JOURNAL
from sparsemod_dsl.space import compile_file

pytest.importorskip("tflite_micro", reason="needs the deploy extra (tflite-micro)")

TINY = '''\
arch tiny(input: image(1, 8, 8), classes = 10)

train {
    learning_rate = float[0.003..0.02] log
}

network {
    conv2d(filters = int[4..8] step 4, kernel = 3) batchnorm relu
    maxpool(2)
    global_avg_pool
    linear(classes)
}
'''
EXPERIMENT = '''\
arch = "tiny.arch"
results = "results"
seed = 3
[data]
dataset = "digits"
[stages]
sobol = 2
bo_rounds = 0
morph_rounds = 0
epochs = [3, 1, 1]
[training]
pruning = false
'''
RNN = '''\
arch rnn(input: sequence(12, 4), classes = 3)
network {
    gru(hidden = 6)
    linear(classes)
}
'''


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int], list[int]]:
    """A finished search: its folder, the ids of its saved (Pareto) and other trials."""
    folder = tmp_path_factory.mktemp("search")
    (folder / "tiny.arch").write_text(TINY)
    (folder / "experiment.toml").write_text(EXPERIMENT)
    engine = Search(load_experiment(folder / "experiment.toml"), report=lambda line: None,
                    fast=True)
    front = {t.id for t in engine.run()}
    others = [t.id for t in engine.journal.trials() if t.id not in front]
    return folder / "results", sorted(front), others



@pytest.mark.parametrize("format", ["tflite", "onnx", "onnx-int8"])
def test_a_pareto_network_exports_and_keeps_its_accuracy(
    results: tuple[Path, list[int], list[int]], format: str
) -> None:
    folder, front, _ = results
    exported = export_trial(folder, front[0], format)
    assert exported.torch_error is not None and exported.runtime_error is not None
    assert exported.examples > 100
    bound = 0.01 if format == "tflite" else 0.05  # TFLM computes as torch's int8 model
    assert abs(exported.runtime_error - exported.torch_error) <= bound
    (name, data), = exported.exported.files.items()
    assert name.endswith(".tflite" if format == "tflite" else ".onnx") and data


def test_the_cli_writes_the_files_and_prints_the_device_figures(
    results: tuple[Path, list[int], list[int]], capsys: pytest.CaptureFixture[str],
    tmp_path: Path
) -> None:
    folder, front, _ = results
    code, out, err = run_cli(capsys, "export", str(folder), "--trial", str(front[0]),
                         "--format", "tflite", "-o", str(tmp_path / "model.tflite"))
    assert code == 0 and not err
    size = (tmp_path / "model.tflite").stat().st_size
    assert f"flash: {size:,} bytes" in out and "test accuracy: torch int8" in out
    assert "input: raw data (the model's first operator standardises it)" in out
    assert "arena:" in out and "measured by TensorFlow Lite Micro" in out
    code, out, _ = run_cli(capsys, "export", str(folder), "--trial", str(front[0]), "--format", "c",
                       "-o", str(tmp_path / "c"))
    assert code == 0 and "arena:" in out and "measured by TensorFlow Lite Micro" in out
    assert len(list((tmp_path / "c").iterdir())) == 3
    header = next((tmp_path / "c").glob("*_model.h")).read_text()
    assert "the input is raw data (the first operator standardises it)" in header


def test_export_errors_are_clear(results: tuple[Path, list[int], list[int]],
                                 capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder, _, others = results
    code, _, err = run_cli(capsys, "export", str(folder), "--trial", "99")
    assert code == 1 and "no trial 99" in err and "Traceback" not in err
    if others:
        code, _, err = run_cli(capsys, "export", str(folder), "--trial", str(others[0]))
        assert code == 1 and "is saved" in err
    code, _, err = run_cli(capsys, "export", str(folder))
    assert code == 2 and "--trial" in err
    code, _, err = run_cli(capsys, "export", str(tmp_path), "--trial", "0")
    assert code == 2 and "not a results directory" in err
    code, _, err = run_cli(capsys, "export", str(tmp_path / "nothing"))
    assert code == 2 and "no such results directory" in err


def test_a_recurrent_network_goes_to_onnx_not_tflite(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    arch = tmp_path / "rnn.arch"
    arch.write_text(RNN)
    space = compile_file(arch)
    torch.manual_seed(0)
    net = space.build({})
    torch.save(net.state_dict(), tmp_path / "w.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(16, 12, 4)))
    (tmp_path / "p.json").write_text(json.dumps({}))
    base = ["export", str(arch), "--params", str(tmp_path / "p.json"), "--weights",
            str(tmp_path / "w.pt"), "--calibration", str(tmp_path / "x.npy")]
    code, _, err = run_cli(capsys, *base, "--format", "tflite", "-o", str(tmp_path / "a.tflite"))
    assert code == 1 and "layer gru" in err and "--format onnx" in err
    assert not (tmp_path / "a.tflite").exists()
    code, out, err = run_cli(capsys, *base, "--format", "onnx-int8", "-o", str(tmp_path / "a.onnx"))
    assert code == 0, err
    assert (tmp_path / "a.onnx").stat().st_size > 0 and "wrote" in out
    code, _, err = run_cli(capsys, "export", str(arch), "--format", "tflite")
    assert code == 2 and "--weights" in err


def test_a_standardised_search_exports_a_model_of_raw_data(
    results: tuple[Path, list[int], list[int]]
) -> None:
    """The digits search standardises (the default): the export's first operator does it,
    so TFLite Micro, fed raw test data, agrees with torch int8 fed the same raw data."""
    folder, front, _ = results
    setup = json.loads((folder / "setup.json").read_text())
    assert setup["normalization"]["mean"]
    exported = export_trial(folder, front[0], "tflite")
    assert exported.exported.int8 is not None
    first = exported.exported.int8.graph.ops[0]
    assert (first.name, first.code, first.emulates) == (
        STANDARDIZE, "DEPTHWISE_CONV_2D", "batchnorm")
    assert exported.runtime_error is not None and exported.torch_error is not None
    assert abs(exported.runtime_error - exported.torch_error) <= 0.01
    searched = Journal(folder / JOURNAL).trial(front[0]).extra["test_error"]
    assert abs(exported.runtime_error - searched) <= 0.05  # torch int8 on standardised data
    shown = show(folder, front[0])  # the cost model of the exported graph, within 5%
    line = "exported (raw input, standardised by its first operator): flash "
    kb = float(shown.split(line)[1].split()[0])
    assert exported.exported.flash_bytes is not None
    assert kb * 1024 == pytest.approx(exported.exported.flash_bytes, rel=0.05)


def test_without_standardisation_the_export_is_the_network_alone(tmp_path: Path) -> None:
    (tmp_path / "tiny.arch").write_text(TINY)
    (tmp_path / "experiment.toml").write_text(
        EXPERIMENT.replace('dataset = "digits"', 'dataset = "digits"\nstandardize = false')
        .replace("sobol = 2", "sobol = 1"))
    engine = Search(load_experiment(tmp_path / "experiment.toml"), report=lambda line: None,
                    fast=True)
    trial = engine.run()[0]
    assert not json.loads((tmp_path / "results" / "setup.json").read_text())["normalization"]
    exported = export_trial(tmp_path / "results", trial.id, "tflite")
    assert exported.exported.int8 is not None and not exported.standardized
    space = compile_file(tmp_path / "tiny.arch", (1, 8, 8), 10)
    expected = deployed_graph(space.program, trial.params).ops
    assert exported.exported.int8.graph.ops == expected
    assert exported.runtime_error is not None and exported.torch_error is not None
    assert abs(exported.runtime_error - exported.torch_error) <= 0.01


def test_the_float_onnx_export_standardises_first(
    results: tuple[Path, list[int], list[int]]
) -> None:
    """The float ONNX model takes raw data too: a BatchNormalization node first (its
    accuracy on raw data is checked by the test above)."""
    onnx = pytest.importorskip("onnx")
    folder, front, _ = results
    exported = export_trial(folder, front[0], "onnx")
    assert exported.standardized and exported.exported.model is not None
    nodes = onnx.load_from_string(exported.exported.model).graph.node
    assert nodes[0].op_type == "BatchNormalization", [n.op_type for n in nodes]
