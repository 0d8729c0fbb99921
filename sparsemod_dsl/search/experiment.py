"""The experiment file: one TOML file saying what to search, on what data, for how long.

    arch = "space.arch"
    [data]
    dataset = "digits"

`load_experiment` reads and checks the whole file before anything runs, and
reports every problem at once. Each section is a frozen dataclass whose fields
are the section's keys, so `stages.sobol` in the file is `experiment.stages.sobol`
here; the schema (types, defaults, allowed values) is read from these classes.
Paths are relative to the experiment file. The target and the dataset are kept
as names: other modules load them. The reference is docs/experiment.md.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import UsageError
from . import tomlschema

OBJECTIVES = ("error", "flash", "ram", "latency")
DEVICES = ("cpu", "cuda", "auto")
#: A GPU by its index, as torch names it.
_CUDA_INDEX = re.compile(r"cuda:[0-9]+")
QUANTIZATIONS = ("none", "post", "dynamic", "both")
DATASETS = ("digits", "sequences", "frames", "frame_anomalies")
#: How the search chooses points (`strategy.make_strategy`); the first is the default.
STRATEGIES = ("exact", "gp", "ax", "sobol")
MAX_SEED = 2**32 - 1
#: The largest RAM or flash budget override, in KB: 1 TiB, far above any microcontroller.
MAX_BUDGET_KB = 2**30

_REFERENCE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_RAY_ADDRESS = re.compile(r"ray://[A-Za-z0-9_.\-]+:\d{1,5}")

#: Keys of the earlier implementation's config.cfg (and code arguments) -> what replaces
#: them, for the hint of an unknown key; docs/experiment.md has the same table.
OLD_KEYS = {
    "r1": "use stages.sobol", "r2": "use stages.bo_rounds", "r3": "use stages.morph_rounds",
    **dict.fromkeys(("epochs1", "epochs2", "epochs3"), "use stages.epochs = [sobol, bo, morph]"),
    "root": "use results",
    "batch_size": "use stages.bo_batch (points per BO round; the training batch size is "
                  "batch_size in the .arch file's train block)",
    "debug": "gone: failing trials are always recorded with their reason in the journal",
    "flops": "use target.name (the target file gives the clock and operator throughput)",
    "quant_scheme": "use training.quantization", "morphisms": "use stages.morph_rounds = 0",
    "pruning": "use training.pruning", "splitter": "use data.splitter",
    **dict.fromkeys(("datasets", "classes"), "use data.dataset (it gives the classes)"),
    **dict.fromkeys(("search_space", "net", "morpher_ops"), "write the space as the .arch file"),
    "quant_params": "gone: dynamic quantisation covers LSTM, GRU and Linear layers",
    "collate_fn": "use data.collate",
    **dict.fromkeys(("train", "DEFAULT", "TEST"),
                    "gone: the search always trains; see sparsemodc report and show"),
    "TRAIN": "its keys are now in [stages], [objectives], [target] and [training]",
}

Check = Callable[[Any], "str | None"]


class ExperimentError(UsageError):
    """An experiment file that cannot be read or breaks the schema; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problems))


def _key(default: Any = MISSING, check: Check | None = None) -> Any:
    """A schema field: its default (none: required) and a check of its value."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"check": check})
    return field(default=default, metadata={"check": check})


def _one_of(*allowed: str) -> Check:
    return lambda v: None if v in allowed else f"must be one of {', '.join(allowed)}, found {v!r}"


def _at_least(low: int, high: float = float("inf")) -> Check:
    def check(value: Any) -> str | None:
        values = value if isinstance(value, tuple) else (value,)
        if all(low <= v <= high for v in values):
            return None
        bound = f"at least {low}" if high == float("inf") else f"in {low}..{int(high)}"
        if isinstance(value, tuple):
            return f"must all be {bound}, found {list(value)}"
        return f"must be {bound}, found {value}"
    return check


def _reference(*builtins: str) -> Check:
    names = ", ".join(builtins) + " or " if builtins else ""
    return lambda v: None if v in builtins or _REFERENCE.fullmatch(v) else (
        f"must be {names}a 'package.module:function' reference, found {v!r}")


def _budget(value: float) -> str | None:
    return None if 0 < value <= MAX_BUDGET_KB else (
        f"must be a number of KB above 0 and at most {MAX_BUDGET_KB:,}, found {value:g}")


def _file_name(value: str) -> str | None:
    return None if _NAME.fullmatch(value) else (
        f"must be letters, digits, '_', '.' or '-' (it names files), found {value!r}")


def _objectives(value: tuple[str, ...]) -> str | None:
    unknown = [v for v in value if v not in OBJECTIVES]
    if unknown or not value:
        return f"must be a non-empty subset of {', '.join(OBJECTIVES)}, found {list(value)}"
    if len(set(value)) < len(value):
        return f"names an objective twice: {list(value)}"
    return None


@dataclass(frozen=True, slots=True)
class _TopLevel:
    """The keys outside any section, as written."""

    arch: str = _key()
    name: str | None = _key(None, _file_name)
    results: str | None = _key(None)
    seed: int = _key(0, _at_least(0, MAX_SEED))
    device: str = _key("cpu", lambda v: None if v in DEVICES or _CUDA_INDEX.fullmatch(v) else
                       f"must be one of cpu, cuda, cuda:N (a GPU's index), auto, found {v!r}")


#: The axis orders `data.layout` takes (`prepare.LAYOUTS` says what each does).
LAYOUT_NAMES = ("NCHW", "NHWC", "NTC", "NCT", "NF")


@dataclass(frozen=True, slots=True)
class DataSettings:
    """[data]: the dataset and how batches are made."""

    dataset: str = _key(check=_reference(*DATASETS))
    collate: str | None = _key(None, _reference())
    splitter: bool = _key(False)
    options: dict[str, Any] = _key({})
    layout: str | None = _key(None, _one_of(*LAYOUT_NAMES))
    standardize: bool = _key(True)


@dataclass(frozen=True, slots=True)
class StageSettings:
    """[stages]: trials per stage, training epochs per trial (sobol, bo, morph), and
    the strategy that chooses the points (see `strategy`)."""

    sobol: int = _key(12, _at_least(1))
    bo_rounds: int = _key(4, _at_least(0))
    bo_batch: int = _key(4, _at_least(1))
    morph_rounds: int = _key(4, _at_least(0))
    morph_candidates: int = _key(20, _at_least(1))
    epochs: tuple[int, int, int] = _key((5, 5, 3), _at_least(1))
    strategy: str = _key(STRATEGIES[0], _one_of(*STRATEGIES))


@dataclass(frozen=True, slots=True)
class ObjectiveSettings:
    """[objectives]: the minimised objectives, in the canonical order of `OBJECTIVES`."""

    minimize: tuple[str, ...] = _key(("error", "flash", "ram"), _objectives)


@dataclass(frozen=True, slots=True)
class TargetSettings:
    """[target]: the microcontroller (built-in name or absolute path of a TOML file),
    budget overrides in KB (1024 bytes), and how flash stores pruned weights: `dense`
    int8 (what TFLite Micro and CMSIS-NN read) or `sparse` (nonzeros plus a bit mask:
    no stock TFLite Micro kernel reads it; see docs/cost-models.md)."""

    name: str | None = _key(None)
    ram_kb: float | None = _key(None, _budget)
    flash_kb: float | None = _key(None, _budget)
    weights: str = _key("dense", _one_of("dense", "sparse"))

    @property
    def ram_bytes(self) -> int | None:
        """The RAM budget override in bytes."""
        return None if self.ram_kb is None else int(self.ram_kb * 1024)

    @property
    def flash_bytes(self) -> int | None:
        """The flash budget override in bytes."""
        return None if self.flash_kb is None else int(self.flash_kb * 1024)


@dataclass(frozen=True, slots=True)
class TrainingSettings:
    """[training]: pruning, quantisation and the training function."""

    pruning: bool = _key(True)
    quantization: str = _key("post", _one_of(*QUANTIZATIONS))
    trainer: str | None = _key(None, _reference())


@dataclass(frozen=True, slots=True)
class ScoringSettings:
    """[scoring]: a point's error is the mean of `repeats` trainings (seeds), or of
    `folds`-fold cross-validation over train + validation (0: off); see docs/search.md."""

    repeats: int = _key(1, _at_least(1, 100))
    folds: int = _key(0, lambda v: None if v == 0 or 2 <= v <= 100 else
                      f"must be 0 (off) or in 2..100, found {v}")


@dataclass(frozen=True, slots=True)
class FinalSettings:
    """[final]: each Pareto network retrained `seeds` times after the search (`final`)."""

    seeds: int = _key(0, _at_least(0, 100))
    train_on_validation: bool = _key(False)
    epochs: int = _key(0, _at_least(0))


def _address(value: str) -> str | None:
    return None if value == "auto" or _RAY_ADDRESS.fullmatch(value) else (
        f"must be \"auto\" (the Ray cluster this machine belongs to) or "
        f"\"ray://HOST:PORT\", found {value!r}")


@dataclass(frozen=True, slots=True)
class ExecutionSettings:
    """[execution]: how many trials train at once, and where (see docs/scaling.md).

    `workers = 1` without `address` trains in the search's own process; otherwise the
    trials run on Ray: a local Ray the search starts and stops, or the cluster at
    `address`, each trial reserving `cpus_per_trial` CPUs and `gpus_per_trial` GPUs."""

    workers: int = _key(1, _at_least(1, 4096))
    address: str | None = _key(None, _address)
    cpus_per_trial: float = _key(1.0, lambda v: None if 0 < v <= 1024 else
                                 f"must be above 0 and at most 1024, found {v:g}")
    gpus_per_trial: float = _key(0.0, lambda v: None if 0 <= v <= 64 else
                                 f"must be 0 to 64, found {v:g}")

    @property
    def uses_ray(self) -> bool:
        """Whether the trials run on Ray rather than in the search's process."""
        return self.workers > 1 or self.address is not None or self.gpus_per_trial > 0


@dataclass(frozen=True, slots=True)
class StoppingSettings:
    """[stopping]: end the search before its stage budgets are spent (`stopping`): when
    the hypervolume (percentage points of the report's reference box) gained at most
    `tolerance` over the last `window` trained trials, or once the search has run
    `max_minutes` in all; unset: no such rule."""

    tolerance: float | None = _key(None, lambda v: None if 0 <= v <= 100 else
                                   f"must be in 0..100 (percentage points), found {v:g}")
    window: int = _key(10, _at_least(1))
    max_minutes: float | None = _key(None, lambda v: None if v > 0 else
                                     f"must be a number of minutes above 0, found {v:g}")


SECTIONS: dict[str, type] = {
    "data": DataSettings, "stages": StageSettings, "objectives": ObjectiveSettings,
    "target": TargetSettings, "training": TrainingSettings, "scoring": ScoringSettings,
    "final": FinalSettings, "stopping": StoppingSettings, "execution": ExecutionSettings,
}
#: The settings a search may change and still go on in its results directory (dotted
#: keys, or a whole section): how many trials, and when to stop, not what trials measure.
EXTENDABLE = ("stages.sobol", "stages.bo_rounds", "stages.bo_batch", "stages.morph_rounds",
              "stages.morph_candidates", "stopping")
_TOP_KEYS = (*(f.name for f in fields(_TopLevel)), *SECTIONS)
#: Every key of the file, dotted.
KEYS = (*_TOP_KEYS, *(f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in fields(cls)))


@dataclass(frozen=True, slots=True)
class Experiment:
    """A loaded experiment file, defaults filled in.

    `path` (the experiment file), `arch` and `results` are absolute; the sections
    hold the keys of the same names.
    """

    path: Path
    arch: Path
    name: str
    results: Path
    seed: int
    device: str
    data: DataSettings
    stages: StageSettings
    objectives: ObjectiveSettings
    target: TargetSettings
    training: TrainingSettings
    scoring: ScoringSettings = ScoringSettings()
    final: FinalSettings = FinalSettings()
    stopping: StoppingSettings = StoppingSettings()
    execution: ExecutionSettings = ExecutionSettings()


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment file.

    Raises:
        ExperimentError: unreadable file, invalid TOML, unknown keys, wrong types or
            values, missing keys, missing files; every problem, one per line.
    """
    shown = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ExperimentError([f"{shown}: cannot read: {error.strerror or error}"]) from None
    except UnicodeDecodeError:
        raise ExperimentError([f"{shown}: cannot read: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as error:
        raise ExperimentError([f"{shown}: invalid TOML: {error}"]) from None
    problems: list[str] = [f"unknown key '{k}'{_hint(k)}" for k in _unknown(raw)]
    top = tomlschema.section(_TopLevel, raw, "", problems)
    sections = {s: tomlschema.section(cls, tomlschema.table(raw, s, problems), f"{s}.", problems)
                for s, cls in SECTIONS.items()}
    if sections["objectives"] is not None:  # in the canonical order, whatever the file's
        minimize = sections["objectives"].minimize
        sections["objectives"] = replace(sections["objectives"],
                                         minimize=tuple(o for o in OBJECTIVES if o in minimize))
    experiment = _resolve(Path(path).resolve(), top, sections, problems)
    if experiment is None:
        raise ExperimentError([f"{shown}: {p}" for p in problems])
    return experiment


def _resolve(path: Path, top: Any, sections: dict[str, Any],
             problems: list[str]) -> Experiment | None:
    """The experiment with its paths resolved, or None; adds the checks across keys."""
    base = path.parent
    target, objectives = sections["target"], sections["objectives"]
    if objectives and target and "latency" in objectives.minimize and target.name is None:
        problems.append("objectives.minimize has 'latency' but [target] has no name: latency "
                        "is measured on a target, e.g. name = \"stm32f746\"")
    if target and target.name is not None and target.name.endswith(".toml"):
        file = (base / target.name).resolve()
        if not file.is_file():
            problems.append(f"target.name: target file not found: {file}")
        target = replace(target, name=str(file))
    scoring = sections["scoring"]
    if scoring and scoring.repeats > 1 and scoring.folds:
        problems.append(f"scoring.repeats ({scoring.repeats}) and scoring.folds "
                        f"({scoring.folds}) exclude each other: choose one")
    stopping = sections["stopping"]
    if stopping and stopping.tolerance is None and stopping != StoppingSettings(
            max_minutes=stopping.max_minutes):
        problems.append("stopping.window has no effect without stopping.tolerance (the "
                        "hypervolume gain, in percentage points, that the window must reach)")
    if top is None:
        return None
    arch = (base / top.arch).resolve()
    if not arch.is_file():
        problems.append(f"arch: file not found: {arch}")
    name = top.name or path.stem
    results = (base / (top.results or f"results/{name}")).resolve()
    if problem := _results_problem(results):
        problems.append(f"results: {problem}")
    if problems or None in sections.values():
        return None
    return Experiment(path, arch, name, results, top.seed, top.device, sections["data"],
                      sections["stages"], objectives, target, sections["training"],
                      scoring, sections["final"], stopping, sections["execution"])


def _results_problem(results: Path) -> str | None:
    """Why `results` can be no results directory (a file, or under one), or None."""
    for folder in (results, *results.parents):
        try:
            if not folder.exists():
                continue
        except OSError:  # unreadable: the search says why when it cannot write there
            return None
        if folder.is_dir():
            return None
        return f"not a directory: {folder}" if folder == results else (
            f"{results} is under {folder}, which is not a directory")
    return None


def _unknown(raw: dict[str, Any]) -> list[str]:
    """The dotted keys of the file that the schema does not have."""
    found = []
    for key, value in raw.items():
        if key not in _TOP_KEYS:
            found.append(key)
        elif key in SECTIONS and isinstance(value, dict):
            found += [f"{key}.{k}" for k in value if f"{key}.{k}" not in KEYS]
    return found


def _hint(key: str) -> str:
    """Where an unknown key probably belongs."""
    leaf = key.rpartition(".")[2]
    if leaf in OLD_KEYS:
        return f": an old config.cfg key; {OLD_KEYS[leaf]} (see docs/experiment.md)"
    same = [k for k in KEYS if k.rpartition(".")[2] == leaf]
    close = same or difflib.get_close_matches(key, KEYS, 1, 0.6)
    if not close:
        near = difflib.get_close_matches(leaf, [k.rpartition(".")[2] for k in KEYS], 1, 0.7)
        close = [k for k in KEYS if near and k.rpartition(".")[2] == near[0]]
    return f"; did you mean '{close[0]}'?" if close else ""


def canonical_settings(experiment: Experiment) -> dict[str, Any]:
    """What a search depends on, as JSON values: every section, and the seed.

    Left out: `name`, `results`, `device` and `[execution]` (where and how fast the
    search runs, not what it finds), `[final]` (the retraining after the search, which
    may be asked for when the search is over), `[scoring]` and `[stopping]` at their
    defaults (older
    results still resume) and `arch` (its source is hashed apart). A target file is
    named relative to the experiment file, so that moving both keeps the settings.
    """
    settings: dict[str, Any] = {"seed": experiment.seed}
    for section, cls in SECTIONS.items():
        value = getattr(experiment, section)
        if section not in ("final", "execution") and (
                section not in ("scoring", "stopping") or value != cls()):
            settings[section] = asdict(value)
    name = experiment.target.name
    if name is not None and name.endswith(".toml"):
        relative = os.path.relpath(name, experiment.path.parent)
        settings["target"]["name"] = Path(relative).as_posix()
    loaded: dict[str, Any] = json.loads(json.dumps(settings, default=str))  # dates: ISO text
    return loaded


def extendable(key: str) -> bool:
    """Whether a dotted key of the canonical settings is one a search may change and go
    on (`EXTENDABLE`): raising a budget or changing a stopping rule extends the search."""
    return any(key == k or key.startswith(f"{k}.") for k in EXTENDABLE)


def experiment_hash(experiment: Experiment) -> str:
    """The hex sha256 of the canonical settings: equal hashes, same search."""
    text = json.dumps(canonical_settings(experiment), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
