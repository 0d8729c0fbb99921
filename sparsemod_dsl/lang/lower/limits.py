"""How far a space may unroll: the limits lowering enforces, and how it stops at them.

docs/language.md states these numbers; tests/test_docs.py keeps the two in step.
"""

from __future__ import annotations

#: Most instances one `repeat` may have.
MAX_REPEAT = 64
#: Most parameters and layers a space may unroll to.
MAX_PARAMETERS = 5000
MAX_LAYERS = 20000


class TooBig(Exception):
    """The space unrolls beyond the limits; lowering stops at once."""
