"""How far a space may unroll: the limits lowering enforces, and how it stops at them.

docs/language.md states these numbers; tests/test_docs.py keeps the two in step.
"""

from __future__ import annotations

#: Most instances one `repeat` may have.
MAX_REPEAT = 64
#: Most parameters and layers a space may unroll to.
MAX_PARAMETERS = 5000
MAX_LAYERS = 20000
#: Most block calls a space may unroll to (blocks calling blocks twice grow fast).
MAX_CALLS = 20000
#: Deepest chain of block calls (a block calling a block calling ...).
MAX_CALL_DEPTH = 32
#: Deepest nesting of repeat, choose, optional, residual and time_distributed,
#: once blocks are inlined: every later pass walks the network to this depth.
MAX_STRUCTURE_DEPTH = 64


class TooBig(Exception):
    """The space unrolls beyond the limits; lowering stops at once."""
