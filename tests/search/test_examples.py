"""The examples do what the README and docs/search.md promise (minutes, not seconds)."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest
from helpers import gxx, tflm_stub_headers

from sparsemod_dsl import cli
from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.experiment import load_experiment
from sparsemod_dsl.search.trials import pareto_front

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_digits_example_finds_a_small_accurate_network_and_deploys_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "digits"
    shutil.copytree(EXAMPLES / "digits", folder)
    experiment = folder / "experiment.toml"
    experiment.write_text(experiment.read_text().replace(
        'results = "../../results/digits"', 'results = "results"'))
    engine = Search(load_experiment(experiment), report=lambda line: None)
    front = engine.run()
    assert front == pareto_front(engine.journal.trials(), engine.objectives)
    small = [t for t in front if t.ram_bytes <= 16 * 1024 and t.flash_bytes <= 16 * 1024]
    assert any(t.extra["test_error"] < 0.10 for t in small), [
        (t.id, t.extra["test_error"], t.flash_bytes, t.ram_bytes) for t in front
    ]
    if importlib.util.find_spec("tflite_micro") is None:
        pytest.skip("the export check needs the deploy extra (tflite-micro)")
    best = min(small, key=lambda t: t.extra["test_error"])
    firmware = tmp_path / "firmware"
    capsys.readouterr()
    code = cli.main(["export", str(folder / "results"), "--trial", str(best.id),
                     "--format", "c", "-o", str(firmware), "--name", "digits"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert sorted(p.name for p in firmware.iterdir()) == [
        "digits_model.cc", "digits_model.h", "digits_ops.h"]
    accuracy = re.search(r"test accuracy: torch int8 ([\d.]+)%, TensorFlow Lite Micro ([\d.]+)%", out)
    assert accuracy is not None, out
    assert abs(float(accuracy.group(1)) - float(accuracy.group(2))) <= 1.0
    flash = re.search(r"flash: ([\d,]+) bytes", out)
    # the search recorded the cost model's flash; the file is within its 5 %
    assert flash is not None
    assert int(flash.group(1).replace(",", "")) == pytest.approx(best.flash_bytes, rel=0.05)
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed: cannot compile the C sources")
    for path, text in tflm_stub_headers().items():
        (firmware / path).parent.mkdir(parents=True, exist_ok=True)
        (firmware / path).write_text(text)
    (firmware / "main.cc").write_text(
        '#include "digits_model.h"\n#include "digits_ops.h"\n'
        "static unsigned char arena[digits_ARENA_BYTES];\n"
        "int main() { digits_OpResolver resolver; (void)arena;\n"
        "  return digits_register_ops(resolver) == kTfLiteOk && digits_model_len > 0 ? 0 : 1; }\n")
    for source in ("main.cc", "digits_model.cc"):
        result = gxx(firmware, "-c", source)
        assert result.returncode == 0, result.stderr
