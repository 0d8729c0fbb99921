"""Points that fit where they are rare: so that a stage trains what it asks for.

Under a tight budget (target flash/RAM/latency, the program's cost constraints) few
random points fit, and Sobol points alone leave a stage short. `fill` gives every
strategy's Sobol stage its points in three steps, each only while points are
missing: Sobol points that fit (`SOBOL_DRAWS` batches); random draws repaired into
fitting ones (`nets.sampling.repair`: the parameters validation names are redrawn,
a budget's excess shrinks the point's numbers); and mutations (`nets.morph`) of the
fitting points found so far, which, being small, mostly have fitting children. The
draws are seeded by the strategy's seed and its number of calls, so a call after an
empty one looks elsewhere and a search stays reproducible. When nothing is found,
`last_rejection` says how much was tried and why the last point was rejected (the
budget it exceeds), for the engine's message.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Iterable, Sequence

from ..nets.morph import mutate
from ..nets.point import Point, PointError, complete, validate
from ..nets.sampling import Accept, find, repair
from .pricing import Pricer, key

if TYPE_CHECKING:
    from .axstrategy import Strategy

#: Sobol batches (of 4 points per point wanted) before repairing random draws.
SOBOL_DRAWS = 10
#: Repaired random draws per missing point, and at least this many per call.
REPAIR_DRAWS = 10
MIN_REPAIR_DRAWS = 200
#: Mutations of fitting points per missing point.
MUTATIONS = 40
#: What to do when no point fits (the end of the search's message).
LOOSEN = ("Loosen the budget that rejects them (the target's flash_kb, ram_kb or latency, "
          "the cost constraints) or let the space reach smaller networks")
#: Repair steps from a proposal that does not fit: a walk from one point must go
#: further than the short walks from the many random draws of `fill`.
REPAIR_WALK = 60


def fitting(pricer: Pricer) -> Accept:
    """Accept points that validate (else blame what validation names) and fit the target
    and the cost constraints (no blame: `repair` shrinks the point)."""
    def accept(point: Point) -> tuple[bool, Sequence[str]]:
        check = validate(pricer.program, point)
        if not check:
            return False, check.parameters
        return pricer.price(point).reason is None, ()
    return accept


def fill(strategy: Strategy, n: int) -> list[Point]:
    """Up to `n` untried points that fit: Sobol points, then repaired random draws, then
    mutations of the fitting points known (see the module docstring)."""
    taken: dict[str, Point] = {}
    rejected = ["every point drawn had been tried"]

    def add(points: Iterable[Point]) -> None:
        for point in points:
            name = key(point)
            if name in strategy.tried or name in taken or len(taken) >= n:
                continue
            reason = strategy.pricer.price(point).reason
            if reason is None:
                taken[name] = point
            else:
                rejected[0] = strategy.last_rejection = reason

    for draw in range(SOBOL_DRAWS):
        add(strategy._sobol(4 * n, draw))
        if len(taken) >= n:
            return list(taken.values())
    strategy.calls += 1
    seed = strategy.seed * 7919 + len(strategy.ax.trials) + 104_729 * strategy.calls
    missing = n - len(taken)
    draws = max(REPAIR_DRAWS, -(-MIN_REPAIR_DRAWS // missing))
    try:
        add(find(strategy.program, missing, seed, fitting(strategy.pricer), draws))
    except PointError:  # none: the last pricing's reason is the one to report
        pass
    rng = random.Random(seed)
    known = strategy.fitting + list(taken.values())
    mutations = MUTATIONS * (n - len(taken)) if known else 0
    for _ in range(mutations):
        if len(taken) >= n:
            break
        child = mutate(strategy.program, rng.choice(known), rng)
        if child is not None:
            add([child.point])
    if not taken:
        strategy.last_rejection = (
            f"no untried point fits after {SOBOL_DRAWS * 4 * n} Sobol points, {draws * missing}"
            f" repaired random draws and {mutations} mutations of fitting points; the last "
            f"rejected: {rejected[0]}")
    return list(taken.values())


def repaired(strategy: Strategy, points: Sequence[Point]) -> list[Point]:
    """Proposed points, each that does not fit replaced by the first fitting point on a
    repair walk from it (shrinking what the budget's excess blames); kept when the walk
    finds none, for the engine to record as infeasible with the reason."""
    rng = random.Random(strategy.seed * 7919 + len(strategy.ax.trials))
    accept = fitting(strategy.pricer)
    out: list[Point] = []
    for point in points:
        fixed = None
        if not accept(point)[0]:
            fixed = repair(strategy.program, complete(strategy.program, point), accept, rng,
                           REPAIR_WALK)
        out.append(point if fixed is None else fixed)
    return out
