"""The search engine: SpArSe's Sobol -> Bayesian optimisation -> morphism stages.

`engine` runs a search from an `experiment` file: `strategy` makes the strategy that
chooses points (`exactstrategy`, the default, with `encode`, `surrogate`,
`hypervolume` and `pricing`; or `axstrategy`), `data` and `train` train, prune and
quantise each network, and the results directory is written through `results`,
`journal`, `trials`, `networks` and `state`; `report` reads it back. Imports `lang`,
`nets` and the Python API (`sparsemod_dsl.space`).
"""
