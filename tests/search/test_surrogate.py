"""The error GP: it learns, it is sure where it has data, it re-fits on schedule."""

from __future__ import annotations

import numpy as np

from sparsemod_dsl.search.surrogate import REFIT_GROWTH, ErrorModel


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 3))
    return x, 0.1 + 0.6 * x[:, 0] ** 2 + 0.01 * rng.normal(size=n)


def test_it_learns_a_smooth_error() -> None:
    model = ErrorModel()
    x, y = data(40)
    model.update(x, y)
    test, truth = data(50, seed=1)
    mean, std = model.predict(test)
    assert np.abs(mean - truth).mean() < 0.05
    assert (std >= 0).all()
    _, far = model.predict(np.full((1, 3), 3.0))  # far outside the data
    assert far[0] > 3 * std.mean()


def test_hyperparameters_are_refitted_as_the_data_grows() -> None:
    model = ErrorModel()
    x, y = data(60)
    model.update(x[:20], y[:20])
    assert model.fits == 1
    grown = int(REFIT_GROWTH * 20)
    model.update(x[:grown - 1], y[:grown - 1])  # not grown enough: the same hyperparameters
    assert model.fits == 1
    model.update(x[:grown], y[:grown])
    assert model.fits == 2
    mean, _ = model.predict(x[:grown])  # the kept and re-fitted models both use all the data
    assert np.abs(mean - y[:grown]).mean() < 0.05


def test_believing_a_point_makes_the_model_sure_there() -> None:
    model = ErrorModel()
    x, y = data(15)
    model.update(x, y)
    new = np.array([[2.0, 2.0, 2.0]])  # away from the data: unsure before
    mean, before = model.predict(new)
    model.believe(new, mean)
    after_mean, after = model.predict(new)
    assert after[0] < 0.5 * before[0]
    assert abs(after_mean[0] - mean[0]) < 1e-3
