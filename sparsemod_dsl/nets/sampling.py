"""Sampling that finds valid points where they are rare: repair, not more draws.

Uniform draws fail where a space is mostly invalid (kernels larger than the feature
map in most points, a tight MAC budget) and `point.sample` gives up after a fixed
number of draws. Here a failing draw is *repaired*: the parameters its failure
names (`Validation.parameters`: a kernel, the terms of a constraint) are drawn
again, half of the time within the part of their domain below their value (shrinking
is what most failures want: a smaller kernel, fewer filters), the others kept. A
failure that names no parameter (a budget: `accept` says only "too big") shrinks
some of the point's numbers, never drawing them anew: each step walks down towards
the budget. `survey` measures how rare valid points are, and which
parameter is most often at fault, for `sparsemodc check`'s warning.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

from ..lang import ir
from .budgets import failing_cost_constraint
from .cost import cost
from .point import Point, PointError, active, draw, validate
from .targets import Target

#: `accept(point)`: whether a point (active parameters) is wanted, and if not, the
#: parameters to blame (empty: unknown).
Accept = Callable[[Point], tuple[bool, Sequence[str]]]

#: Repair steps from one random draw before a fresh one.
REPAIR_STEPS = 12
#: Fresh draws per point asked for before giving up (each repaired up to REPAIR_STEPS).
DRAWS_PER_POINT = 60


def valid(program: ir.Program) -> Accept:
    """Accept points that validate (domains, constraints, shapes); blame what it names."""
    def accept(point: Point) -> tuple[bool, Sequence[str]]:
        check = validate(program, point)
        return check.ok, check.parameters
    return accept


def within_budget(program: ir.Program, target: Target | None = None) -> Accept:
    """Accept points that validate and meet the cost constraints (priced on `target`;
    without one, a latency constraint fails at every point)."""
    validates = valid(program)

    def accept(point: Point) -> tuple[bool, Sequence[str]]:
        ok, named = validates(point)
        if not ok or not program.cost_constraints:
            return ok, named
        return failing_cost_constraint(program, point, cost(program, point, target)) is None, ()
    return accept


def shrink(domain: ir.Domain, value: ir.Scalar, rng: random.Random) -> ir.Scalar:
    """A random value of `domain` not above `value` (numbers and ordered choices); any
    value of the domain otherwise."""
    if isinstance(domain, ir.IntDomain) and isinstance(value, int) and value >= domain.low:
        return domain.low + domain.step * rng.randint(0, (value - domain.low) // domain.step)
    if isinstance(domain, ir.FloatDomain) and isinstance(value, (int, float)):
        return rng.uniform(domain.low, max(domain.low, min(float(value), domain.high)))
    if isinstance(domain, ir.ChoiceDomain) and domain.ordered and value in domain.values:
        numbers = all(isinstance(v, (int, float)) for v in domain.values)
        ranked = sorted(domain.values) if numbers else list(domain.values)  # type: ignore
        return ranked[rng.randint(0, ranked.index(value))]
    return draw(domain, rng)


def repair(program: ir.Program, full: Point, accept: Accept, rng: random.Random,
           steps: int = REPAIR_STEPS, blame: Counter[str] | None = None) -> Point | None:
    """The first accepted point on a walk from the complete point `full`, each step
    redrawing (or shrinking) the parameters the last failure named; None after `steps`.
    `blame` counts the parameters named."""
    params = {p.name: p for p in program.searchable}
    current = dict(full)
    for _ in range(steps + 1):
        point = active(program, current)
        ok, named = accept(point)
        if ok:
            return point
        at_fault = [n for n in dict.fromkeys(named) if n in params]
        if blame is not None:
            blame.update(at_fault)
        budget = not at_fault  # too big, say: shrink (never grow) some of its parameters
        if budget:
            live = [n for n in point if n in params]
            at_fault = rng.sample(live, max(1, len(live) // 3)) if live else []
        for name in at_fault:
            domain = params[name].domain
            current[name] = (shrink(domain, current[name], rng) if budget or rng.random() < 0.5
                             else draw(domain, rng))
    return None


def find(program: ir.Program, n: int, seed: int = 0, accept: Accept | None = None,
         draws: int = DRAWS_PER_POINT) -> list[Point]:
    """`n` different accepted points (default: valid ones), reproducible for a seed.

    Fewer when the space has fewer than `n` accepted points within `draws * n` repaired
    draws. Raises `PointError` when none is found, naming the parameter most often at
    fault.
    """
    accept = accept or valid(program)
    rng = random.Random(seed)
    found: dict[str, Point] = {}
    blame: Counter[str] = Counter()
    for _ in range(draws * n):
        if len(found) >= n:
            break
        full = {p.name: draw(p.domain, rng) for p in program.parameters}
        point = repair(program, full, accept, rng, blame=blame)
        if point is not None:
            found.setdefault(json.dumps(point, sort_keys=True, default=str), point)
    if not found and n:
        raise PointError(f"no point could be built in {draws * n} repaired random draws"
                         + _most_blamed(blame))
    return list(found.values())


@dataclass(frozen=True)
class Survey:
    """How many random points are valid, and the parameters named by the invalid ones."""

    drawn: int
    valid: int
    blame: Counter[str]

    @property
    def fraction(self) -> float:
        return self.valid / self.drawn if self.drawn else 1.0

    def warning(self) -> str | None:
        """A warning when under 10% of random points are valid (None otherwise)."""
        if self.fraction >= 0.1:
            return None
        return (f"only {self.valid} of {self.drawn} random points ({self.fraction:.0%}) can "
                f"be built{_most_blamed(self.blame, self.drawn - self.valid)}; "
                "`sample --valid` and the search repair random draws into valid points")


def survey(program: ir.Program, draws: int = 200, seed: int = 0) -> Survey:
    """Validate `draws` uniform random points (no repair)."""
    rng = random.Random(seed)
    blame: Counter[str] = Counter()
    ok = 0
    for _ in range(draws):
        full = {p.name: draw(p.domain, rng) for p in program.parameters}
        check = validate(program, active(program, full))
        ok += check.ok
        blame.update(list(dict.fromkeys(check.parameters)))
    return Survey(draws, ok, blame)


def _most_blamed(blame: Counter[str], invalid: int | None = None) -> str:
    if not blame:
        return ""
    (name, count), = blame.most_common(1)
    of = "" if invalid is None else f" (named by {count} of the {invalid} invalid ones)"
    return f"; the parameter most often at fault is {name}{of}"
