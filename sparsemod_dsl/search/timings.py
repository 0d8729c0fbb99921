"""Where a search's wall time goes: choosing points, training networks, the whole run.

The engine adds to a `Timings` as it runs; the CLI prints it at the end of a search
and the benchmarks compare it between settings.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class Timings:
    """Wall-clock seconds of one run: choosing points (`generation`), training and
    measuring networks (`training`), and the whole run (`total`)."""

    generation: float = 0.0
    training: float = 0.0
    total: float = 0.0
    #: (stage, points asked for, seconds) of every call for points.
    batches: list[tuple[str, int, float]] = field(default_factory=list)

    @contextmanager
    def measure(self, part: str) -> Iterator[None]:
        """Add the time spent in the `with` body to `part`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, part, getattr(self, part) + time.perf_counter() - start)
