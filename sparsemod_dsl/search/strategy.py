"""How a search chooses the points it trains: the optimisation strategies.

Each strategy answers three questions of the search engine: which points to
train first (`initial`, the Sobol stage), which next given every observation
(`propose`, the BO stage), and which of some morphism children is most
promising (`best`, the morph stage). `experiment.toml` picks one by name:

- `exact` (the default): the error alone is modelled, by a Gaussian process
  (`surrogate`) over the encoded parameters (`encode`) and the network's exact
  weights, MACs and peak activation bytes (`FEATURES`); flash, RAM and latency
  are computed exactly from the IR for every candidate (`cost`, well under a
  millisecond each). Candidates are drawn at random from the space and by
  mutating the front and the best candidates (an evolutionary search of the
  acquisition), priced, and those that fail
  `validate` or do not fit the target are dropped before anything is scored:
  infeasible points are never proposed. The rest are scored by their expected
  hypervolume improvement in closed form (`hypervolume`), and a batch is
  chosen greedily, each choice believed observed at its predicted error before
  the next.
- `gp`: the earlier implementation's approach through Ax: every objective,
  flash and RAM included, is modelled by a GP, and Ax's qLogNEHVI is optimised
  with cheap settings (`ACQUISITION`). A point it proposes that does not fit is
  repaired (`feasible.repaired`), or else recorded by the search as infeasible.
- `ax`: as `gp` with Ax's default acquisition settings (minutes per batch).
- `sobol`: quasi-random points only; the baseline BO has to beat.

Every strategy's Sobol points fit: where fitting points are rare, `feasible.fill`
repairs random draws and mutates the fitting points found so far. docs/performance.md
compares the strategies.

This module picks a strategy by name (`make_strategy`); the strategies live in
`exactstrategy` (the default, with its candidate pools and `FEATURES`) and
`axstrategy` (the Ax-based ones, their `ACQUISITION` settings, and the `Strategy`
base of all), and the exact pricing of points in `pricing`.
"""

from __future__ import annotations

from typing import Sequence

from ..lang import ir
from .axstrategy import (
    ACQUISITION,
    FAST_ACQUISITION,
    GPStrategy,
    SobolStrategy,
    Strategy,
)
from .exactstrategy import DEFAULT_POOL, FAST_POOL, ExactStrategy
from .experiment import STRATEGIES
from .pricing import Pricer


def make_strategy(name: str, program: ir.Program, objectives: Sequence[str], pricer: Pricer,
                  seed: int, fast: bool = False) -> Strategy:
    """The strategy called `name` (one of `STRATEGIES`); `fast` shrinks its effort."""
    if name == "exact":
        return ExactStrategy(program, objectives, pricer, seed,
                             FAST_POOL if fast else DEFAULT_POOL)
    if name == "sobol":
        return SobolStrategy(program, objectives, pricer, seed)
    if name == "gp":
        return GPStrategy(program, objectives, pricer, seed,
                          FAST_ACQUISITION if fast else ACQUISITION)
    if name == "ax":
        return Strategy(program, objectives, pricer, seed, FAST_ACQUISITION if fast else None)
    raise ValueError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")
