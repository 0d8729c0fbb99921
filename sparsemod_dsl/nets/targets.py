"""Microcontroller targets: memory budgets, clock and kernel throughput, as TOML files.

A target says how much SRAM and flash a network may use (the chip's total minus
what the runtime keeps for itself) and how fast the chip runs int8 kernels, so
that the cost models (`cost`) can turn MACs into milliseconds and say whether a
network fits. Built-in targets ship in `sparsemod_dsl/targets/*.toml`, each
figure with a comment citing its source; any other TOML file of the same form
is a target too (`load_target("boards/my_board.toml")`).

Sizes in the files are in KB, and KB = 1024 bytes (the datasheet convention);
a `Target` holds bytes. The format is described in docs/cost-models.md.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import UsageError

#: The operator classes with a throughput of their own (MACs per cycle).
OP_CLASSES = ("conv", "pointwise", "depthwise", "linear", "recurrent")
#: The kernel libraries a throughput table can be for: TFLite Micro's reference kernels,
#: or CMSIS-NN (Arm's optimised int8 kernels, which TFLM and microTVM call).
ENGINES = ("cmsis-nn", "tflm-reference")

KB = 1024
#: The largest memory size a target file may give (1 TB): beyond any microcontroller, and
#: far from the float overflow of sizes like 1e308 KB.
MAX_KB = 2**30

_REQUIRED = ("core", "clock_mhz", "sram_kb", "flash_kb", "reserved_ram_kb", "reserved_flash_kb",
             "source")
_OPTIONAL = ("name", "description", "ops_per_second", "throughput")
_THROUGHPUT = ("engine", *OP_CLASSES, "elementwise_per_cycle", "overhead_cycles")


class TargetError(UsageError):
    """A target that does not exist or a target file that cannot be used."""


@dataclass(frozen=True)
class Throughput:
    """Per-operator speed of the target's int8 kernels in one engine (`ENGINES`).

    `macs_per_cycle` has one entry per `OP_CLASSES` class; elementwise operators
    (pooling, activations, adds, reshapes) process `elementwise_per_cycle` elements
    per cycle; every operator costs `overhead_cycles` more (the runtime's dispatch).
    """

    engine: str
    macs_per_cycle: Mapping[str, float]
    elementwise_per_cycle: float
    overhead_cycles: float

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled with a plain dict (a read-only mapping cannot be pickled), so that a
        target travels to the search's Ray workers."""
        return _throughput, (self.engine, dict(self.macs_per_cycle),
                             self.elementwise_per_cycle, self.overhead_cycles)


def _throughput(engine: str, macs: dict[str, float], elementwise: float,
                overhead: float) -> Throughput:
    return Throughput(engine, MappingProxyType(macs), elementwise, overhead)


@dataclass(frozen=True)
class Target:
    """A microcontroller as the cost models see it (sizes in bytes, clock in MHz).

    `ops_per_second` (MACs per second) is the simple latency model, used when
    `throughput` is None.
    """

    name: str
    description: str
    core: str
    clock_mhz: float
    sram_bytes: int
    flash_bytes: int
    reserved_ram_bytes: int
    reserved_flash_bytes: int
    throughput: Throughput | None
    ops_per_second: float | None
    source: str

    @property
    def ram_budget_bytes(self) -> int:
        """SRAM left for activations: the total minus the runtime's share."""
        return self.sram_bytes - self.reserved_ram_bytes

    @property
    def flash_budget_bytes(self) -> int:
        """Flash left for the network's weights: the total minus the runtime's share."""
        return self.flash_bytes - self.reserved_flash_bytes


def builtin_dir() -> Traversable:
    """The folder of the built-in target files."""
    return resources.files("sparsemod_dsl.nets").joinpath("targets")


def _builtin_files() -> dict[str, Traversable]:
    return {entry.name[: -len(".toml")]: entry for entry in builtin_dir().iterdir()
            if entry.name.endswith(".toml")}


def builtin_targets() -> list[Target]:
    """Every target shipped with the package, sorted by name."""
    return [_parse(entry.read_text("utf-8"), str(entry), name)
            for name, entry in sorted(_builtin_files().items())]


def load_target(name_or_path: str | Path) -> Target:
    """A built-in target by name (`stm32f746`) or a target file by path.

    Raises:
        TargetError: no such built-in target or file, or the file is not a valid target
            (the message names the file and the key at fault).
    """
    builtin = _builtin_files()
    text_name = str(name_or_path)
    if text_name in builtin:
        entry = builtin[text_name]
        return _parse(entry.read_text("utf-8"), str(entry), text_name)
    path = Path(name_or_path)
    if not path.is_file():
        raise TargetError(
            f"unknown target '{text_name}': built-in targets are {', '.join(sorted(builtin))}; "
            "or give the path of a target TOML file"
        )
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TargetError(f"{path}: cannot read: {error}") from None
    return _parse(text, str(path), path.stem)


def _parse(text: str, file: str, stem: str) -> Target:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TargetError(f"{file}: not valid TOML: {error}") from None
    except ValueError:  # an integer beyond sys.get_int_max_str_digits() digits
        raise TargetError(f"{file}: a number has too many digits to read") from None
    except RecursionError:
        raise TargetError(f"{file}: arrays or tables are nested too deeply to read") from None
    _check_keys(data, _REQUIRED, _OPTIONAL, file, "")
    throughput = None
    if "throughput" in data:
        table = data["throughput"]
        if not isinstance(table, dict):
            raise TargetError(f"{file}: key 'throughput': must be a table ([throughput])")
        _check_keys(table, _THROUGHPUT, (), file, "throughput.")
        engine = table["engine"]
        if engine not in ENGINES:
            raise TargetError(f"{file}: key 'throughput.engine': must be one of "
                              f"{', '.join(ENGINES)}, not {engine!r}")
        throughput = Throughput(
            engine,
            MappingProxyType({c: _number(table, c, file, "throughput.", positive=True)
                              for c in OP_CLASSES}),
            _number(table, "elementwise_per_cycle", file, "throughput.", positive=True),
            _number(table, "overhead_cycles", file, "throughput."),
        )
    ops = None
    if "ops_per_second" in data:
        ops = _number(data, "ops_per_second", file, positive=True)
    if throughput is None and ops is None:
        raise TargetError(
            f"{file}: key 'throughput': give a [throughput] table or 'ops_per_second' "
            "(one is needed to estimate latency)"
        )
    target = Target(
        name=_text(data, "name", file) if "name" in data else stem,
        description=_text(data, "description", file) if "description" in data else "",
        core=_text(data, "core", file),
        clock_mhz=_number(data, "clock_mhz", file, positive=True),
        sram_bytes=_kilobytes(data, "sram_kb", file, positive=True),
        flash_bytes=_kilobytes(data, "flash_kb", file, positive=True),
        reserved_ram_bytes=_kilobytes(data, "reserved_ram_kb", file),
        reserved_flash_bytes=_kilobytes(data, "reserved_flash_kb", file),
        throughput=throughput,
        ops_per_second=ops,
        source=_text(data, "source", file),
    )
    for key, budget, memory in (("reserved_ram_kb", target.ram_budget_bytes, "SRAM"),
                                ("reserved_flash_kb", target.flash_budget_bytes, "flash")):
        if budget <= 0:
            raise TargetError(f"{file}: key '{key}': the runtime's share must be smaller than "
                              f"the {memory} size")
    return target


def _check_keys(table: Mapping[str, object], required: tuple[str, ...],
                optional: tuple[str, ...], file: str, prefix: str) -> None:
    for key in table:
        if key not in required and key not in optional:
            known = ", ".join(required + optional)
            raise TargetError(f"{file}: key '{prefix}{key}': unknown key (known: {known})")
    for key in required:
        if key not in table:
            raise TargetError(f"{file}: key '{prefix}{key}': missing")


def _number(table: Mapping[str, object], key: str, file: str, prefix: str = "",
            positive: bool = False) -> float:
    value = table[key]
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not (value > 0 if positive else value >= 0)):
        bound = "a positive number" if positive else "a number, 0 or more"
        raise TargetError(f"{file}: key '{prefix}{key}': must be {bound}, not {value!r}")
    return float(value)


def _kilobytes(table: Mapping[str, object], key: str, file: str, positive: bool = False) -> int:
    value = _number(table, key, file, positive=positive)
    if value > MAX_KB:
        raise TargetError(f"{file}: key '{key}': must be at most {MAX_KB:,} KB (1 TB), "
                          f"not {value:g}")
    return round(value * KB)


def _text(table: Mapping[str, object], key: str, file: str) -> str:
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        raise TargetError(f"{file}: key '{key}': must be a non-empty string, not {value!r}")
    return value
