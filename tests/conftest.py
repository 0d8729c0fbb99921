"""Shared pytest configuration: the `--update-golden` option, one torch thread."""

from __future__ import annotations

import pytest
import torch

# The tests run many tiny tensor operations: with two intra-op threads per worker
# they slow down a hundredfold when `pytest -n 2` keeps the other core busy.
torch.set_num_threads(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden files from the current output instead of comparing with them",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was asked to rewrite golden files."""
    return bool(request.config.getoption("--update-golden"))
