"""The search engine: SpArSe's Sobol -> Bayesian optimisation -> morphism stages.

`engine` runs a search from an `experiment` file: `strategy` chooses points (with
`encode`, `surrogate`, `hypervolume`), `data` and `train` train, prune and quantise
each network, `results` journals everything, `report` reads it back. Imports `lang`,
`nets` and the Python API (`sparsemod_dsl.space`).
"""
