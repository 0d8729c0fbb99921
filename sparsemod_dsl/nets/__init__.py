"""What is done with a compiled space: points, networks, costs, mutations.

Given the checked IR of `lang` and a point: `point` (defaults, validity, sampling),
`trace` (the network at one point, with shapes), `axspace`/`axconstraints` (the Ax
search space), `builder` with `netlib`, `network` and `modules` (PyTorch networks),
`codegen` (a standalone builder), `quantize` (int8), `cost`/`targets` (flash, RAM,
MACs, latency on a microcontroller) and `morph` (mutations with weight inheritance).
Imports `lang`, never `search`.
"""
