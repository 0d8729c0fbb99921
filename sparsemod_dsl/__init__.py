"""sparsemod-dsl: the .arch language for neural-architecture search on microcontrollers."""

__version__ = "0.1.0"
