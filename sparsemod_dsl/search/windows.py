"""Sequence spaces on whole windows, without the splitter (`data.splitter = false`).

Each sample is then a whole window of T steps, so the network's sequence length is T: a
space's `train.max_len` is pinned to T (a fixed parameter), and the Ax space, the
strategies, the costs, the builder and the journal's points all carry that one value.
`setup.json` records T under `windows`, so that `report`, `show` and `export` compile
the same pinned space (`setup_space`). docs/data.md says what the user sees.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import ArchError
from ..lang import ir
from ..lang.check import check
from ..lang.infer import MAX_LEN
from ..space import Space, compile_file


def whole_windows(program: ir.Program, steps: int) -> ir.Program:
    """`program` with `train.max_len` fixed at `steps`, checked again (a network may
    not take `steps` steps).

    Raises:
        ArchError: no point of the space builds a network for windows of `steps` steps;
            each error has a note at the `max_len` declaration saying it was pinned.
    """
    pinned = dataclasses.replace(program, parameters=tuple(
        dataclasses.replace(p, domain=ir.FixedDomain(steps)) if p.name == MAX_LEN else p
        for p in program.parameters))
    try:
        check(pinned)
    except ArchError as error:
        span = next(p.span for p in program.parameters if p.name == MAX_LEN)
        note = (span, f"{MAX_LEN} is pinned to {steps}, the steps of a window, since "
                      "data.splitter is false")
        raise ArchError([dataclasses.replace(d, notes=(*d.notes, note))
                         for d in error.diagnostics]) from None
    return pinned


def pinned_steps(program: ir.Program) -> int | None:
    """The fixed value of the program's `train.max_len`, None when it is searched or absent."""
    for parameter in program.parameters:
        if parameter.name == MAX_LEN and isinstance(parameter.domain, ir.FixedDomain):
            return int(parameter.domain.value)
    return None


def setup_space(info: dict[str, Any]) -> Space:
    """The space a search ran, from its `setup.json` (`info`): compiled for its input
    shape and classes, `train.max_len` pinned when the search had whole windows."""
    space = compile_file(info["arch"], tuple(info["input_shape"]), int(info["classes"]))
    steps = info.get("windows")
    return Space(whole_windows(space.program, int(steps))) if steps else space
