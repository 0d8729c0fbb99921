"""Sequence spaces on whole windows without the splitter (issue 16, item 2): with
`data.splitter = false`, a space's `train.max_len` is pinned to the windows' length T, so
every trial trains, is costed and is scored on whole windows of T steps."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsemod_dsl import cli
from sparsemod_dsl.errors import ArchError
from sparsemod_dsl.lang import ir
from sparsemod_dsl.lang.ir import ax_name
from sparsemod_dsl.nets.axspace import search_space
from sparsemod_dsl.nets.codegen import builder_source
from sparsemod_dsl.search.engine import Search
from sparsemod_dsl.search.experiment import load_experiment
from sparsemod_dsl.search.journal import Journal
from sparsemod_dsl.search.results import JOURNAL, SETUP
from sparsemod_dsl.search.train import TrainConfig, batches
from sparsemod_dsl.search.windows import pinned_steps, whole_windows
from sparsemod_dsl.space import Space, compile_file, compile_text

EXAMPLE = Path(__file__).parents[2] / "examples" / "sequences"
MAX_LEN = "train.max_len"
STEPS = 50  # a value of the example's max_len = int[25..100] step 25, for `free` below


def windows_search(tmp_path: Path, splitter: bool, notes: list[str]) -> Search:
    """The sequences example, tiny (80 windows of STEPS steps; 2 Sobol trials, a round of
    the default strategy and one of morphisms, one epoch each), with `data.splitter` as
    given."""
    experiment = load_experiment(EXAMPLE / "experiment.toml")
    return Search(dataclasses.replace(
        experiment, results=tmp_path / "results",
        data=dataclasses.replace(experiment.data, splitter=splitter,
                                 options={"samples": 80, "steps": STEPS}),
        stages=dataclasses.replace(experiment.stages, sobol=2, bo_rounds=1, bo_batch=1,
                                   morph_rounds=1, epochs=(1, 1, 1)),
        training=dataclasses.replace(experiment.training, pruning=False,
                                     quantization="none"),
    ), report=notes.append)


def test_without_the_splitter_every_trial_sees_whole_windows(tmp_path: Path) -> None:
    notes: list[str] = []
    search = windows_search(tmp_path, False, notes)
    assert any("data.splitter is false: train.max_len is pinned to 50" in n for n in notes)
    assert MAX_LEN not in {p.name for p in search.program.searchable}
    search.run()
    trials = Journal(tmp_path / "results" / JOURNAL).trials()
    done = [t for t in trials if t.status == "completed"]
    assert {t.stage for t in done} >= {"sobol", "morph"} and len(done) >= 3
    free = compile_file(EXAMPLE / "rnn.arch", (STEPS, 8), 4)  # max_len not pinned
    for trial in done:
        assert trial.params[MAX_LEN] == STEPS
        expected = free.cost(trial.params, search.config.target.name, "float32")
        shorter = free.cost({**trial.params, MAX_LEN: 25}, search.config.target.name, "float32")
        assert (trial.macs, trial.flash_bytes, trial.ram_bytes) == (
            expected.macs, expected.flash_bytes, expected.ram_bytes)
        assert trial.macs > shorter.macs  # the costs are those of STEPS steps, not 25
    config = TrainConfig.from_point(done[0].params, 0, False, "none", "cpu", 0)
    val = batches(search.data.val, search.data, config, training=False)
    assert sum(len(x) for x, _, _ in val) == sum(len(y) for _, y, _ in val) == \
        len(search.data.val)  # one whole window a sample: the error is counted per window
    setup = json.loads((tmp_path / "results" / SETUP).read_text())
    assert setup["windows"] == STEPS
    assert cli.main(["report", str(tmp_path / "results")]) == 0  # the pinned space again
    assert cli.main(["show", "--trial", str(done[0].id), str(tmp_path / "results")]) == 0


def test_with_the_splitter_nothing_is_pinned(tmp_path: Path) -> None:
    notes: list[str] = []
    search = windows_search(tmp_path, True, notes)
    assert not any("pinned" in n for n in notes)
    assert MAX_LEN in {p.name for p in search.program.searchable}
    assert pinned_steps(search.program) is None


SPACE = '''\
arch s(input: sequence(100, 4), classes = 3)

train {
    max_len = int[8..200]
}

network {
    conv1d(filters = 4, kernel = 5, padding = "valid") relu
    global_avg_pool
    linear(classes)
}
'''


@settings(max_examples=20, deadline=None)
@given(st.integers(5, 300))
def test_a_pinned_space_agrees_everywhere_on_the_steps(steps: int) -> None:
    """The Ax space, the sampled points, the network's input and the generated builder
    all take `steps` for max_len."""
    pinned = Space(whole_windows(compile_text(SPACE, input_shape=(steps, 4)).program, steps))
    assert search_space(pinned.program).parameters[ax_name(MAX_LEN)].value == steps
    point = pinned.sample(1, steps)[0]
    assert point[MAX_LEN] == steps and pinned.trace_input(point)[0] == steps
    assert f"{MAX_LEN!r}: {steps!r}," in builder_source(pinned.program)
    assert next(p for p in pinned.program.parameters if p.name == MAX_LEN).domain == \
        ir.FixedDomain(steps)


def test_windows_too_short_for_the_network_are_refused() -> None:
    space = compile_text(SPACE, input_shape=(100, 4))
    with pytest.raises(ArchError) as raised:
        whole_windows(space.program, 3)
    [error] = raised.value.diagnostics
    assert "the input length 3 is smaller than the kernel 5" in error.message
    [(span, note)] = error.notes
    assert span.line == 4 and "train.max_len is pinned to 3" in note
