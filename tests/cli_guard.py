"""A safety net for tests that point `sparsemodc` at devices (/dev/null, /dev/full).

The tests run as whatever user runs them, root included: an output written the wrong way
(a temporary file renamed over the path) would replace /dev/null with a regular file.
`guard_replace` makes `os.replace` refuse any destination outside the test's folder, so
such a regression fails the test (an internal error) instead of damaging the machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def guard_replace(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Let `os.replace` rename only within `root`."""
    replace, inside = os.replace, root.resolve()

    def guarded(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if not Path(os.path.realpath(dst)).is_relative_to(inside):
            raise AssertionError(f"refused: a test tried to replace {dst} (outside {inside})")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", guarded)
