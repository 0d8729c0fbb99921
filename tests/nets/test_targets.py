"""Microcontroller targets (`targets`): the built-in TOML files, user files and errors."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from sparsemod_dsl.errors import UsageError
from sparsemod_dsl.nets.targets import (
    ENGINES,
    KB,
    OP_CLASSES,
    TargetError,
    builtin_dir,
    builtin_targets,
    load_target,
)
from sparsemod_dsl.space import compile_file

ROOT = Path(__file__).resolve().parents[2]

#: What the issue asks of the built-in targets: core, clock (MHz), SRAM and flash (KB).
EXPECTED = {
    "stm32f746": ("Cortex-M7", 216, 320, 1024),
    "stm32f446": ("Cortex-M4", 180, 128, 512),
    "nrf52840": ("Cortex-M4", 64, 256, 1024),
    "arduino_nano_33_ble_sense": ("Cortex-M4", 64, 256, 1024),
    "nucleo_l4r5zi": ("Cortex-M4", 120, 640, 2048),
    "nucleo_l4r5zi_reference": ("Cortex-M4", 120, 640, 2048),
}

MINIMAL = """\
core = "Cortex-M33"
clock_mhz = 128
sram_kb = 512
flash_kb = 1024
reserved_ram_kb = 32
reserved_flash_kb = 96.5
source = "my board's datasheet"
ops_per_second = 3e7
"""

THROUGHPUT = """
[throughput]
engine = "cmsis-nn"
conv = 0.3
pointwise = 0.3
depthwise = 0.15
linear = 0.15
recurrent = 0.1
elementwise_per_cycle = 0.5
overhead_cycles = 1000
"""


def test_the_builtin_targets_have_the_issues_figures() -> None:
    targets = {t.name: t for t in builtin_targets()}
    assert set(targets) == set(EXPECTED)
    for name, (core, clock, sram_kb, flash_kb) in EXPECTED.items():
        target = targets[name]
        assert (target.core, target.clock_mhz) == (core, clock)
        assert (target.sram_bytes, target.flash_bytes) == (sram_kb * 1024, flash_kb * 1024)
        assert 0 < target.ram_budget_bytes == target.sram_bytes - target.reserved_ram_bytes
        assert 0 < target.flash_budget_bytes == target.flash_bytes - target.reserved_flash_bytes
        assert target.throughput is not None and set(target.throughput.macs_per_cycle) == set(
            OP_CLASSES)
        assert target.source and target.description
        assert load_target(name) == target


def test_the_arduino_board_keeps_ram_and_flash_for_its_runtime() -> None:
    board, chip = load_target("arduino_nano_33_ble_sense"), load_target("nrf52840")
    assert board.reserved_flash_bytes >= 64 * KB  # the bootloader alone
    assert board.ram_budget_bytes < chip.ram_budget_bytes
    assert board.flash_budget_bytes < chip.flash_budget_bytes


def test_every_figure_in_the_builtin_files_has_a_comment_citing_it() -> None:
    """Each numeric key sits in a block of lines that starts with a comment."""
    for path in sorted(Path(str(builtin_dir())).glob("*.toml")):
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            if not re.match(r"\w+ = [0-9]", line):
                continue
            above = index - 1
            while above >= 0 and re.match(r"\w+ = ", lines[above]):
                above -= 1
            assert above >= 0 and lines[above].startswith("#"), f"{path.name}: {line}"


def test_the_target_files_are_package_data() -> None:
    folder = resources.files("sparsemod_dsl.nets").joinpath("targets")
    assert {f"{name}.toml" for name in EXPECTED} <= {entry.name for entry in folder.iterdir()}
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"targets/*.toml"' in pyproject


def test_a_user_target_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "my_board.toml"
    path.write_text(MINIMAL)
    target = load_target(path)
    assert target.name == "my_board" and target.throughput is None
    assert target.ops_per_second == 3e7
    assert target.reserved_flash_bytes == round(96.5 * 1024)
    path.write_text('name = "custom"\ndescription = "x"\n' + MINIMAL + THROUGHPUT)
    target = load_target(str(path))
    assert target.name == "custom" and target.throughput is not None
    assert target.throughput.macs_per_cycle["depthwise"] == 0.15
    assert target.throughput.overhead_cycles == 1000


@pytest.mark.parametrize("text, key, words", [
    ("core = [1\n", None, "not valid TOML"),
    (MINIMAL.replace('core = "Cortex-M33"\n', ""), "core", "missing"),
    (MINIMAL + "colour = 1\n", "colour", "unknown key"),
    (MINIMAL.replace("clock_mhz = 128", 'clock_mhz = "fast"'), "clock_mhz", "positive number"),
    (MINIMAL.replace("clock_mhz = 128", "clock_mhz = 0"), "clock_mhz", "positive number"),
    (MINIMAL.replace("sram_kb = 512", "sram_kb = true"), "sram_kb", "positive number"),
    (MINIMAL.replace("reserved_ram_kb = 32", "reserved_ram_kb = -1"), "reserved_ram_kb",
     "0 or more"),
    (MINIMAL.replace("reserved_ram_kb = 32", "reserved_ram_kb = 512"), "reserved_ram_kb",
     "smaller than the SRAM"),
    (MINIMAL.replace("ops_per_second = 3e7\n", ""), "throughput", "ops_per_second"),
    (MINIMAL + THROUGHPUT.replace("depthwise = 0.15\n", ""), "throughput.depthwise", "missing"),
    (MINIMAL + THROUGHPUT.replace("conv = 0.3", "conv = nan"), "throughput.conv", "positive"),
    (MINIMAL + "throughput = 3\n", "throughput", "table"),
    (MINIMAL + THROUGHPUT.replace('engine = "cmsis-nn"', 'engine = "tvm"'), "throughput.engine",
     "one of cmsis-nn, tflm-reference"),
    (MINIMAL + THROUGHPUT.replace('engine = "cmsis-nn"\n', ""), "throughput.engine", "missing"),
    (MINIMAL.replace('source = "my board\'s datasheet"', 'source = ""'), "source", "string"),
])
def test_bad_target_files_name_the_file_and_the_key(
    tmp_path: Path, text: str, key: str | None, words: str
) -> None:
    path = tmp_path / "board.toml"
    path.write_text(text)
    with pytest.raises(TargetError) as error:
        load_target(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and words in message
    if key is not None:
        assert f"key '{key}'" in message


def test_an_unknown_target_lists_the_builtin_ones() -> None:
    with pytest.raises(TargetError) as error:
        load_target("esp32")
    assert isinstance(error.value, UsageError)
    assert "unknown target 'esp32'" in str(error.value)
    assert all(name in str(error.value) for name in EXPECTED)


def test_an_unreadable_target_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"core = '\xe9'\n")
    with pytest.raises(TargetError, match=f"{path}: cannot read"):
        load_target(path)


#: MLPerf Tiny's published milliseconds per inference on the NUCLEO-L4R5ZI (Cortex-M4,
#: 120 MHz): TFLite Micro's reference kernels (v0.5 reference submission) and CMSIS-NN
#: (OctoML microTVM + CMSIS-NN, v1.0).
PUBLISHED_MS = {"kws_ds_cnn": {"nucleo_l4r5zi_reference": 181.9, "nucleo_l4r5zi": 99.8},
                "ic_resnet8": {"nucleo_l4r5zi_reference": 704.2, "nucleo_l4r5zi": 389.6},
                "vww_mobilenet": {"nucleo_l4r5zi_reference": 600.6, "nucleo_l4r5zi": 301.2},
                "ad_autoencoder": {"nucleo_l4r5zi_reference": 10.05, "nucleo_l4r5zi": 8.60}}
#: How far the calibrated model may be from each published figure
#: (benchmarks/latency_calibration.py fits four models per engine by least squares).
TOLERANCE = {"nucleo_l4r5zi_reference": 0.10, "nucleo_l4r5zi": 0.05}


@pytest.mark.parametrize("network", [*PUBLISHED_MS])
@pytest.mark.parametrize("target", [*TOLERANCE])
def test_the_calibrated_targets_reproduce_the_mlperf_tiny_measurements(network: str,
                                                                      target: str) -> None:
    space = compile_file(ROOT / "examples" / "mlperf_tiny" / f"{network}.arch")
    latency = space.cost({}, target).latency_ms
    assert latency is not None
    assert latency / PUBLISHED_MS[network][target] == pytest.approx(1.0, abs=TOLERANCE[target])


def test_every_builtin_target_names_its_engine() -> None:
    for target in builtin_targets():
        assert target.throughput is not None and target.throughput.engine in ENGINES
        assert ("CMSIS-NN" in target.description) == (target.throughput.engine == "cmsis-nn")


def test_every_target_pickles_as_it_is() -> None:
    """Targets travel to the search's Ray workers (`search.rayexec`)."""
    import pickle

    for target in builtin_targets():
        assert pickle.loads(pickle.dumps(target)) == target
