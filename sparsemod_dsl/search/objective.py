"""How the error objective reads, per task.

A classifier (`classes`, cross-entropy) is scored by the fraction of examples it gets
wrong, shown in per cent; a regression or reconstruction network (`output: vector(N)`,
`loss = mse`) by its mean squared error over every output value, in the squared units
of the data's targets, shown as is; an anomaly detector (an `mse` autoencoder on an
anomaly set, `anomaly`) by `1 - AUC`, shown as the AUC itself. The journal stores the
raw value (a fraction, the MSE, or 1 - AUC); the report, the progress lines and
trials.csv show it in these units. `loss` here is the data's `measure`: `cross_entropy`,
`mse` or `auc`.
"""

from __future__ import annotations

#: Per measure: the error's name in tables and its trials.csv column.
_UNITS = {
    "cross_entropy": ("error %", "error_pct"),
    "mse": ("MSE", "error_mse"),
    "auc": ("AUC", "auc"),
}


def error_label(loss: str) -> str:
    """The error's heading: `error %`, `MSE` or `AUC`."""
    return _UNITS[loss][0]


def error_column(loss: str) -> str:
    """The error's trials.csv column: `error_pct`, `error_mse` or `auc`."""
    return _UNITS[loss][1]


def in_units(value: float, loss: str) -> float:
    """A stored error as people read it: per cent, the MSE, or the AUC (1 - error)."""
    return 100 * value if loss == "cross_entropy" else 1 - value if loss == "auc" else value


def show_error(value: float | None, loss: str = "cross_entropy") -> str:
    """A stored error in its units: `12.5` (per cent), `0.0123` (MSE) or `0.931` (AUC);
    `-` when None."""
    if value is None:
        return "-"
    if loss == "cross_entropy":
        return f"{100 * value:.1f}"
    return f"{1 - value:.3f}" if loss == "auc" else f"{value:.4g}"


def error_phrase(value: float | None, loss: str = "cross_entropy") -> str:
    """The error with its name: `error 12.5%`, `MSE 0.0123` or `AUC 0.931`."""
    if loss == "cross_entropy":
        return f"error {show_error(value)}%"
    return f"{error_label(loss)} {show_error(value, loss)}"
