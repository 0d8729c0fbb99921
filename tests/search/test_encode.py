"""The unit-cube encoding of points for the error surrogate."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import PROGRAM_NAMES, program
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsemod_dsl.lang import ir
from sparsemod_dsl.nets.point import active, complete, draw, sample
from sparsemod_dsl.search.encode import Encoder


@pytest.mark.parametrize("name", PROGRAM_NAMES)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_points_land_in_the_cube_and_inactive_values_do_not_matter(name: str, seed: int) -> None:
    """Every column lies in [0, 1]; redrawing the parameters a point leaves inactive
    (instances past a count, unchosen alternatives) leaves its encoding unchanged."""
    import random

    prog = program(name)
    encoder = Encoder(prog)
    point = sample(prog, 1, seed)[0]
    rng = random.Random(seed)
    full = complete(prog, point)
    noisy = {p.name: full[p.name] if p.name in point else draw(p.domain, rng)
             for p in prog.parameters}
    assert active(prog, noisy) == active(prog, point)
    rows = encoder.encode([point, noisy])
    assert rows.shape == (2, encoder.width)
    assert ((rows >= 0.0) & (rows <= 1.0)).all()
    assert np.array_equal(rows[0], rows[1])


def test_columns_by_kind_of_domain() -> None:
    prog = ir.Program(
        name="p", input=ir.InputSpec("image", (1, 8, 8)), classes=10,
        parameters=(
            ir.Parameter("a", ir.IntDomain(1, 5)),
            ir.Parameter("lr", ir.FloatDomain(1e-4, 1e-2, log=True)),
            ir.Parameter("act", ir.ChoiceDomain(("relu", "tanh", "gelu"))),
            ir.Parameter("width", ir.ChoiceDomain((8, 16, 32), ordered=True)),
            ir.Parameter("pool", ir.ChoiceDomain((False, True))),
            ir.Parameter("k", ir.IntDomain(1, 7), when=(ir.Condition("a", ">=", 3),)),
            ir.Parameter("fixed", ir.FixedDomain(4)),
        ),
        network=(),
    )
    encoder = Encoder(prog)
    assert encoder.width == 1 + 1 + 3 + 1 + 1 + 1
    row = encoder.encode([{"a": 3, "lr": 1e-3, "act": "tanh", "width": 32, "pool": True,
                           "k": 4}])[0]
    assert np.allclose(row, [0.5, 0.5, 0, 1, 0, 1.0, 1.0, 0.5])
    absent = encoder.encode([{"a": 2, "lr": 1e-4, "act": "gelu", "width": 8, "pool": False,
                              "k": 7}])[0]
    assert np.allclose(absent, [0.25, 0.0, 0, 0, 1, 0.0, 0.0, 0.0])  # k inactive: 0
