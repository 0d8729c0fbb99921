"""Morphisms: small changes to a point of the space, and weight inheritance.

The third SpArSe stage mutates networks of the Pareto front and re-trains the
children from their parents' weights. This module holds the interface the
search engine uses, with a first, generic operator (`perturb`: move one active
parameter to a neighbouring value) that works for every space; richer
operators derived from the IR structure plug in through the same interface.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

from . import ir
from .point import Point, active, draw, validate

#: An operator: (program, parent point, rng) -> (child point, what changed) or None
#: when it has nothing to change.
Morphism = Callable[[ir.Program, Point, random.Random], "Mutation | None"]


@dataclass(frozen=True)
class Mutation:
    """A child point and, in readable names, what changed from its parent."""

    point: Point
    changes: tuple[str, ...]
    operator: str


def _neighbour(domain: ir.Domain, value: ir.Scalar, rng: random.Random) -> ir.Scalar:
    """A value near `value` in `domain` (log-aware for log scales)."""
    if isinstance(domain, ir.IntDomain):
        span = max(domain.step, (domain.high - domain.low) // 8 // domain.step * domain.step)
        moved = int(value) + rng.choice((-1, 1)) * rng.randrange(domain.step, span + 1, domain.step)
        return min(max(moved, domain.low), domain.high)
    if isinstance(domain, ir.FloatDomain):
        if domain.log:
            factor = math.exp(rng.gauss(0.0, 0.3))
            return min(max(float(value) * factor, domain.low), domain.high)
        moved = float(value) + rng.gauss(0.0, (domain.high - domain.low) / 8)
        return min(max(moved, domain.low), domain.high)
    if isinstance(domain, ir.ChoiceDomain) and domain.ordered:
        index = domain.values.index(value) + rng.choice((-1, 1))
        return domain.values[min(max(index, 0), len(domain.values) - 1)]
    return draw(domain, rng)


def perturb(program: ir.Program, point: Point, rng: random.Random) -> Mutation | None:
    """Move one active searchable parameter to a neighbouring value."""
    current = active(program, point)
    names = [p for p in program.searchable if p.name in current]
    if not names:
        return None
    param = rng.choice(names)
    value = _neighbour(param.domain, current[param.name], rng)
    if value == current[param.name]:
        return None
    child = active(program, {**current, param.name: value})
    return Mutation(child, (f"{param.name}: {current[param.name]!r} -> {value!r}",), "perturb")


DEFAULT_MORPHISMS: tuple[Morphism, ...] = (perturb,)


def mutate(
    program: ir.Program,
    point: Point,
    rng: random.Random,
    operators: Sequence[Morphism] = DEFAULT_MORPHISMS,
    tries: int = 20,
) -> Mutation | None:
    """A valid child of `point` from a random operator, or None after `tries` attempts."""
    for _ in range(tries):
        mutation = rng.choice(list(operators))(program, point, rng)
        if mutation is not None and validate(program, mutation.point):
            return mutation
    return None


def inherit(child: torch.nn.Module, parent_state: Mapping[str, torch.Tensor]) -> int:
    """Copy every parent tensor whose key and shape the child shares; returns how many.

    Module keys follow IR positions, so a layer that exists in both networks
    keeps its weights, whatever was added or removed around it.
    """
    own = child.state_dict()
    shared = {
        key: value for key, value in parent_state.items()
        if key in own and own[key].shape == value.shape
    }
    child.load_state_dict(shared, strict=False)
    return len(shared)
