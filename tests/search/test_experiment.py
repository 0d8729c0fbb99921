"""Tests of the experiment file: parsing, defaults, every error, paths, the hash, its docs."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsemod_dsl.errors import UsageError
from sparsemod_dsl.search.experiment import (
    KEYS,
    OBJECTIVES,
    OLD_KEYS,
    DataSettings,
    ExperimentError,
    ObjectiveSettings,
    StageSettings,
    StoppingSettings,
    TargetSettings,
    TrainingSettings,
    canonical_settings,
    experiment_hash,
    extendable,
    load_experiment,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "experiment.md"
DATA = '[data]\ndataset = "digits"\n'
MINIMAL = 'arch = "space.arch"\n' + DATA
FULL = """\
arch = "space.arch"
name = "digits-small"
results = "out/digits"
seed = 7
device = "auto"

[data]
dataset = "mydata.sets:load"
collate = "mydata.batches:collate"
splitter = true
options = { samples = 300, steps = 50 }

[stages]
sobol = 10
bo_rounds = 3
bo_batch = 2
morph_rounds = 0
morph_candidates = 8
epochs = [4, 6, 2]

[objectives]
minimize = ["latency", "error", "ram"]

[target]
name = "boards/mine.toml"
ram_kb = 64
flash_kb = 250.5

[training]
pruning = false
quantization = "dynamic"
trainer = "mytrain:fit"
"""


def write(folder: Path, text: str, name: str = "exp.toml") -> Path:
    """An experiment file in `folder`, next to an empty `space.arch` and a target file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "space.arch").touch()
    (folder / "boards").mkdir(exist_ok=True)
    (folder / "boards" / "mine.toml").touch()
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(folder: Path, text: str) -> list[str]:
    """The problems `load_experiment` reports for a file of `text`."""
    path = write(folder, text)
    with pytest.raises(ExperimentError) as raised:
        load_experiment(path)
    assert all(p.startswith(f"{path}: ") for p in raised.value.problems)
    return [p.removeprefix(f"{path}: ") for p in raised.value.problems]


def test_full_file(tmp_path: Path) -> None:
    experiment = load_experiment(write(tmp_path, FULL))
    assert experiment.path == tmp_path / "exp.toml"
    assert experiment.arch == tmp_path / "space.arch"
    assert experiment.name == "digits-small"
    assert experiment.results == tmp_path / "out" / "digits"
    assert (experiment.seed, experiment.device) == (7, "auto")
    assert experiment.data == DataSettings(
        "mydata.sets:load", "mydata.batches:collate", True, {"samples": 300, "steps": 50}
    )
    assert experiment.stages == StageSettings(10, 3, 2, 0, 8, (4, 6, 2))
    assert experiment.objectives.minimize == ("error", "ram", "latency")  # canonical order
    assert experiment.target == TargetSettings(str(tmp_path / "boards" / "mine.toml"), 64.0, 250.5)
    assert (experiment.target.ram_bytes, experiment.target.flash_bytes) == (65536, 256512)
    assert experiment.training == TrainingSettings(False, "dynamic", "mytrain:fit")


def test_minimal_file_takes_the_defaults(tmp_path: Path) -> None:
    experiment = load_experiment(write(tmp_path, MINIMAL, "digits.toml"))
    assert experiment.name == "digits"
    assert experiment.results == tmp_path / "results" / "digits"
    assert (experiment.seed, experiment.device) == (0, "cpu")
    assert experiment.data == DataSettings("digits")
    assert experiment.stages == StageSettings(12, 4, 4, 4, 20, (5, 5, 3))
    assert experiment.objectives == ObjectiveSettings(("error", "flash", "ram"))
    assert experiment.target == TargetSettings(None, None, None)
    assert experiment.training == TrainingSettings(True, "post", None)
    assert experiment.stopping == StoppingSettings(None, 10, None)  # no rule: budgets only


def test_paths_are_relative_to_the_experiment_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "cnn.arch").touch()
    path = write(tmp_path / "exps", 'arch = "../spaces/cnn.arch"\nresults = "../runs/a"\n'
                 '[data]\ndataset = "digits"\n[target]\nname = "boards/mine.toml"\n')
    monkeypatch.chdir(tmp_path / "spaces")  # the working directory does not matter
    experiment = load_experiment(Path("..") / "exps" / "exp.toml")
    assert experiment.arch == tmp_path / "spaces" / "cnn.arch"
    assert experiment.results == tmp_path / "runs" / "a"
    assert experiment.target.name == str(tmp_path / "exps" / "boards" / "mine.toml")
    assert experiment.path == path


ERRORS = [
    # unknown keys: the full dotted key, and the closest known one
    ("[stages]\nsobl = 3\n", "unknown key 'stages.sobl'; did you mean 'stages.sobol'?"),
    ("sobol = 3\n", "unknown key 'sobol'; did you mean 'stages.sobol'?"),
    ("[stages]\nseed = 3\n", "unknown key 'stages.seed'; did you mean 'seed'?"),
    ("[training]\nquantisation = 'post'\n",
     "unknown key 'training.quantisation'; did you mean 'training.quantization'?"),
    ("[extra]\nx = 1\n", "unknown key 'extra'"),
    ("r1 = 12\n", "unknown key 'r1': an old config.cfg key; use stages.sobol (see docs/"),
    ("[stages]\nbatch_size = 4\n", "unknown key 'stages.batch_size': an old config.cfg key; "
     "use stages.bo_batch"),
    ("[TRAIN]\nr1 = 3\n", "unknown key 'TRAIN': an old config.cfg key; its keys are now in"),
    # wrong types: the key, what it must be, what it is
    ("seed = '1'\n", "seed must be an integer, found a string ('1')"),
    ("[stages]\nsobol = 2.0\n", "stages.sobol must be an integer, found a float (2.0)"),
    ("[stages]\nbo_batch = true\n", "stages.bo_batch must be an integer, found a boolean (true)"),
    ("[training]\npruning = 1\n", "training.pruning must be a boolean, found an integer (1)"),
    ("[target]\nram_kb = '64'\n", "target.ram_kb must be a number, found a string ('64')"),
    ("[data]\ndataset = 'digits'\n[data.options]\nx = 1\n", None),  # free-form table
    ("stages = 3\n", "stages must be a table ([stages]), found an integer (3)"),
    ("[data]\ndataset = 'digits'\noptions = 3\n",
     "data.options must be a table, found an integer (3)"),
    ("seed = 2020-01-01\n", "seed must be an integer, found a date or time"),
    # bad values
    ("device = 'gpu'\n", "device must be one of cpu, cuda, cuda:N (a GPU's index), auto, "
     "found 'gpu'"),
    ("device = 'cuda:x'\n", "device must be one of cpu, cuda, cuda:N"),
    ("device = 'cuda:1'\n", None),
    ("[training]\nquantization = 'int8'\n",
     "training.quantization must be one of none, post, dynamic, both, found 'int8'"),
    ("seed = -1\n", "seed must be in 0..4294967295, found -1"),
    ("name = 'a b'\n", "name must be letters, digits"),
    ("[data]\ndataset = 'mnist'\n",
     "data.dataset must be digits, sequences, frames, frame_anomalies or a "
     "'package.module:function' reference, found 'mnist'"),
    ("[data]\ndataset = 'digits'\ncollate = 'collate'\n",
     "data.collate must be a 'package.module:function' reference, found 'collate'"),
    ("[target]\nflash_kb = 0\n", "target.flash_kb must be a number of KB above 0 and at most "
     "1,073,741,824, found 0"),
    # budgets that overflowed into an internal error (int(inf * 1024))
    ("[target]\nram_kb = inf\n", "target.ram_kb must be a number of KB above 0 and at most "
     "1,073,741,824, found inf"),
    ("[target]\nram_kb = 1e308\n", "target.ram_kb must be a number of KB above 0"),
    ("[target]\nflash_kb = nan\n", "found nan"),
    # counts and epochs
    ("[stages]\nbo_rounds = -1\n", "stages.bo_rounds must be at least 0, found -1"),
    ("[stages]\nmorph_rounds = -2\n", "stages.morph_rounds must be at least 0, found -2"),
    ("[stages]\nsobol = 0\n", "stages.sobol must be at least 1, found 0"),
    ("[stages]\nbo_batch = 0\n", "stages.bo_batch must be at least 1, found 0"),
    ("[stages]\nepochs = [5, 5]\n",
     "stages.epochs must be an array of 3 integers, found an array of 2"),
    ("[stages]\nepochs = [5, 5, 'x']\n",
     "stages.epochs must be an array of 3 integers, found an array holding a string ('x')"),
    ("[stages]\nepochs = 5\n", "stages.epochs must be an array of 3 integers, found an integer (5)"),
    ("[stages]\nepochs = [5, 0, 3]\n", "stages.epochs must all be at least 1, found [5, 0, 3]"),
    # objectives
    ("[objectives]\nminimize = []\n", "objectives.minimize must be a non-empty subset of"),
    ("[objectives]\nminimize = ['accuracy']\n", "found ['accuracy']"),
    ("[objectives]\nminimize = ['ram', 'ram']\n", "names an objective twice: ['ram', 'ram']"),
    ("[objectives]\nminimize = ['error', 'latency']\n",
     "objectives.minimize has 'latency' but [target] has no name"),
    # stopping rules
    ("[stopping]\ntolerance = -1\n", "stopping.tolerance must be in 0..100 (percentage "
     "points), found -1"),
    ("[stopping]\ntolerance = '1'\n", "stopping.tolerance must be a number, found a string"),
    ("[stopping]\nmax_minutes = 0\n", "stopping.max_minutes must be a number of minutes "
     "above 0, found 0"),
    ("[stopping]\ntolerance = 0.5\nwindow = 0\n", "stopping.window must be at least 1, found 0"),
    ("[stopping]\nwindow = 5\n", "stopping.window has no effect without stopping.tolerance"),
    ("[stopping]\ntolerance = 0.5\nwindow = 5\nmax_minutes = 90\n", None),
    ("[stopping]\npatience = 5\n", "unknown key 'stopping.patience'"),
    # files
    ("[target]\nname = 'other.toml'\n", "target.name: target file not found: "),
    ("results = 'space.arch'\n", "results: not a directory: "),
    ("results = 'space.arch/out'\n", "space.arch/out is under "),
]


@pytest.mark.parametrize(("extra", "wanted"), ERRORS, ids=[e[0] for e in ERRORS])
def test_error_names_the_key(tmp_path: Path, extra: str, wanted: str | None) -> None:
    text = 'arch = "space.arch"\n' + extra + ("" if "[data]" in extra else DATA)
    if wanted is None:
        load_experiment(write(tmp_path, text))
        return
    found = problems(tmp_path, text)
    assert len(found) == 1 and wanted in found[0], found


def test_missing_required_keys(tmp_path: Path) -> None:
    assert problems(tmp_path, "seed = 1\n") == [
        "missing required key 'arch'", "missing required key 'data.dataset'"
    ]


def test_arch_not_found_names_the_resolved_path(tmp_path: Path) -> None:
    found = problems(tmp_path, 'arch = "sub/../nope.arch"\n[data]\ndataset = "digits"\n')
    assert found == [f"arch: file not found: {tmp_path / 'nope.arch'}"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, 'arch = "nope.arch"\nseed = -1\n[data]\ndataset = 3\n'
                     '[stages]\nsobl = 1\n[training]\npruning = "yes"\n')
    assert [p.split(" ")[0] for p in found] == [
        "unknown", "seed", "data.dataset", "training.pruning", "arch:"
    ]


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match=r"missing\.toml: cannot read: No such file"):
        load_experiment(tmp_path / "missing.toml")
    with pytest.raises(ExperimentError, match="cannot read: Is a directory"):
        load_experiment(tmp_path)
    (tmp_path / "latin1.toml").write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ExperimentError, match="cannot read: not UTF-8 text"):
        load_experiment(tmp_path / "latin1.toml")


def test_invalid_toml_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'arch = "space.arch"\n[data]\ndataset = digits\n')
    with pytest.raises(ExperimentError, match=r"exp\.toml: invalid TOML: .*line 3"):
        load_experiment(path)


def test_is_a_usage_error() -> None:
    assert issubclass(ExperimentError, UsageError)  # the CLI exits 2 on it


def test_hash_ignores_layout_and_where_the_search_runs(tmp_path: Path) -> None:
    reordered = FULL.replace('seed = 7\ndevice = "auto"\n', 'device = "cpu"  # a comment\n') \
        .replace('name = "digits-small"\nresults = "out/digits"\n', 'seed = 7\n') \
        .replace('["latency", "error", "ram"]', '["ram", "latency", "error"]')
    first = load_experiment(write(tmp_path / "a", FULL))
    second = load_experiment(write(tmp_path / "b", reordered))
    assert experiment_hash(first) == experiment_hash(second)
    assert canonical_settings(first)["target"]["name"] == "boards/mine.toml"
    shutil.copytree(tmp_path / "a", tmp_path / "moved")  # moving the folder keeps the hash
    moved = load_experiment(tmp_path / "moved" / "exp.toml")
    assert experiment_hash(moved) == experiment_hash(first)
    assert re.fullmatch(r"[0-9a-f]{64}", experiment_hash(first))


def test_hash_changes_with_any_setting(tmp_path: Path) -> None:
    base = experiment_hash(load_experiment(write(tmp_path / "base", FULL)))
    for old, new in [("sobol = 10", "sobol = 11"), ("seed = 7", "seed = 8"),
                     ("ram_kb = 64", "ram_kb = 65"), ('"dynamic"', '"both"'),
                     ("steps = 50", "steps = 51"), ("[4, 6, 2]", "[4, 6, 3]"),
                     ("steps = 50", "day = 2026-01-01")]:
        assert old in FULL
        changed = load_experiment(write(tmp_path / new.replace(" ", ""), FULL.replace(old, new)))
        assert experiment_hash(changed) != base, old


def test_stopping_rules_load_and_at_their_defaults_keep_older_hashes(tmp_path: Path) -> None:
    rules = load_experiment(write(tmp_path / "a", MINIMAL + "[stopping]\ntolerance = 0.25\n"
                                  "window = 6\nmax_minutes = 1.5\n"))
    assert rules.stopping == StoppingSettings(0.25, 6, 1.5)
    assert canonical_settings(rules)["stopping"] == {"tolerance": 0.25, "window": 6,
                                                     "max_minutes": 1.5}
    bare = load_experiment(write(tmp_path / "b", MINIMAL))
    empty = load_experiment(write(tmp_path / "c", MINIMAL + "[stopping]\n"))
    assert "stopping" not in canonical_settings(bare)  # the settings of results before it
    assert experiment_hash(empty) == experiment_hash(bare) != experiment_hash(rules)


@pytest.mark.parametrize(("key", "wanted"), [
    ("stages.sobol", True), ("stages.bo_rounds", True), ("stages.bo_batch", True),
    ("stages.morph_rounds", True), ("stages.morph_candidates", True),
    ("stopping.tolerance", True), ("stopping.max_minutes", True), ("stages.epochs", False),
    ("stages.strategy", False), ("seed", False), ("data.dataset", False),
    ("objectives.minimize", False), ("training.pruning", False), ("scoring.repeats", False),
    ("target.name", False), ("stages.sobolx", False), ("stoppingx", False)])
def test_only_budgets_and_stopping_rules_are_extendable(key: str, wanted: bool) -> None:
    assert extendable(key) is wanted


_COUNTS = {"sobol": st.integers(1, 500), "bo_rounds": st.integers(0, 50),
           "bo_batch": st.integers(1, 16), "morph_rounds": st.integers(0, 50),
           "morph_candidates": st.integers(1, 100)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stages=st.fixed_dictionaries({}, optional=_COUNTS),
    epochs=st.none() | st.lists(st.integers(1, 99), min_size=3, max_size=3),
    minimize=st.lists(st.sampled_from(OBJECTIVES[:3]), min_size=1, max_size=3, unique=True),
    order=st.randoms(use_true_random=False),
)
def test_stage_values_round_trip(tmp_path: Path, stages: dict[str, int], epochs: list[int] | None,
                                 minimize: list[str], order: random.Random) -> None:
    items = [f"{k} = {v}" for k, v in stages.items()]
    if epochs is not None:
        items.append(f"epochs = {json.dumps(epochs)}")
    order.shuffle(items)
    text = MINIMAL + "[stages]\n" + "\n".join(items) + f"\n[objectives]\nminimize = {json.dumps(minimize)}\n"
    experiment = load_experiment(write(tmp_path, text))
    expected: dict[str, Any] = {**stages}
    if epochs is not None:
        expected["epochs"] = tuple(epochs)
    assert experiment.stages == StageSettings(**expected)
    assert experiment.objectives.minimize == tuple(o for o in OBJECTIVES if o in minimize)
    again = load_experiment(write(tmp_path, MINIMAL + "[stages]\n" + "\n".join(sorted(items))
                                  + f"\n[objectives]\nminimize = {json.dumps(sorted(minimize))}\n"))
    assert experiment_hash(again) == experiment_hash(experiment)


# --- the reference stays true -------------------------------------------------------------


def test_every_key_and_old_key_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [k for k in KEYS if f"`{k}`" not in text and f"`[{k}]`" not in text]
    assert not missing, f"docs/experiment.md does not mention {missing}"
    old_table = text.split("## From the earlier", 1)[1]
    first_cells = re.findall(r"^\| (.*?) \|", old_table, re.MULTILINE)
    documented = {name.strip("[]") for cell in first_cells[1:]
                  for name in re.findall(r"`([^`]+)`", cell)}
    assert documented == {*OLD_KEYS, "name", "objectives"}


def test_documented_example_loads(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        (tmp_path / "digits.arch").touch()
        experiment = load_experiment(write(tmp_path, block))
        assert experiment.arch.is_file()
