"""How the error objective reads, per task.

A classifier (`classes`, cross-entropy) is scored by the fraction of examples it gets
wrong, shown in per cent; a regression or reconstruction network (`output: vector(N)`,
`loss = mse`) by its mean squared error over every output value, in the squared units
of the data's targets, shown as is. The journal stores the raw value (a fraction, or
the MSE); the report, the progress lines and trials.csv show it in these units.
"""

from __future__ import annotations

#: Per loss: the error's name in tables, its CSV column, and the factor it is shown at.
_UNITS = {
    "cross_entropy": ("error %", "error_pct", 100.0),
    "mse": ("MSE", "error_mse", 1.0),
}


def error_label(loss: str) -> str:
    """The error's heading: `error %` or `MSE`."""
    return _UNITS[loss][0]


def error_column(loss: str) -> str:
    """The error's trials.csv column: `error_pct` or `error_mse`."""
    return _UNITS[loss][1]


def error_scale(loss: str) -> float:
    """What a stored error is multiplied by to show it: 100 for per cent, else 1."""
    return _UNITS[loss][2]


def show_error(value: float | None, loss: str = "cross_entropy") -> str:
    """A stored error in its units: `12.5` (per cent) or `0.0123` (MSE); `-` when None."""
    if value is None:
        return "-"
    return f"{100 * value:.1f}" if loss == "cross_entropy" else f"{value:.4g}"
