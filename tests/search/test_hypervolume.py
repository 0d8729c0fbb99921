"""Hypervolumes and the closed-form expected improvement, against brute force."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sparsemod_dsl.search.hypervolume import expected_improvement, hypervolume


def brute_hypervolume(values: np.ndarray, ref: np.ndarray) -> float:
    """Inclusion-exclusion over every subset of points (fraction of the box)."""
    total = 0.0
    for size in range(1, len(values) + 1):
        for subset in itertools.combinations(values, size):
            corner = np.max(subset, axis=0)
            total += (-1) ** (size + 1) * np.prod(np.clip(ref - corner, 0.0, None))
    return float(total / np.prod(ref))


def fronts(m: int, max_points: int = 5) -> st.SearchStrategy[np.ndarray]:
    return st.integers(0, max_points).flatmap(lambda n: arrays(
        float, (n, m), elements=st.floats(0.0, 1.2, allow_nan=False).map(lambda v: round(v, 2))))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3).flatmap(fronts))
def test_hypervolume_matches_inclusion_exclusion(values: np.ndarray) -> None:
    ref = np.ones(values.shape[1])
    assert abs(hypervolume(values, ref) - brute_hypervolume(values, ref)) < 1e-9


def test_hypervolume_is_a_fraction_of_the_reference_box() -> None:
    ref = np.array([0.9, 16384.0, 16384.0])
    point = np.array([[0.45, 8192.0, 4096.0]])
    assert abs(hypervolume(point, ref) - 0.5 * 0.5 * 0.75) < 1e-12
    assert hypervolume(np.array([[0.95, 1.0, 1.0]]), ref) == 0.0  # beyond the reference
    assert hypervolume(np.empty((0, 3)), ref) == 0.0


def expected_by_quadrature(front: np.ndarray, ref: np.ndarray, mean: float, std: float,
                           exact: np.ndarray) -> float:
    """E[HV(front + (Z, exact)) - HV(front)] on a fine grid of Z ~ N(mean, std)."""
    base = brute_hypervolume(front, ref)
    z = np.linspace(mean - 8 * std, mean + 8 * std, 1601)
    gains = [brute_hypervolume(np.vstack([front, [v, *exact]]), ref) - base for v in z]
    density = np.exp(-0.5 * ((z - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))
    return float(np.trapezoid(density * np.array(gains), z))


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 3).flatmap(lambda m: st.tuples(
        fronts(m, 4),
        st.floats(0.0, 1.0), st.floats(0.02, 0.5),
        arrays(float, (m - 1,), elements=st.floats(0.0, 1.1)),
    ))
)
def test_expected_improvement_matches_quadrature(
        case: tuple[np.ndarray, float, float, np.ndarray]) -> None:
    front, mean, std, exact = case
    ref = np.ones(front.shape[1])
    got = expected_improvement(front, ref, np.array([mean]), np.array([std]), exact[None, :])
    assert abs(got[0] - expected_by_quadrature(front, ref, mean, std, exact)) < 2e-4


def test_no_uncertainty_gives_the_plain_improvement() -> None:
    front = np.array([[0.3, 0.5], [0.6, 0.2]])
    ref = np.array([1.0, 1.0])
    for mean, cost in ((0.2, 0.4), (0.7, 0.7), (0.05, 0.9)):
        gain = expected_improvement(front, ref, np.array([mean]), np.array([0.0]),
                                    np.array([[cost]]))[0]
        truth = brute_hypervolume(np.vstack([front, [mean, cost]]), ref) \
            - brute_hypervolume(front, ref)
        assert abs(gain - truth) < 1e-9


def test_units_do_not_change_the_ranking() -> None:
    """Scaling an objective and its reference together changes nothing."""
    rng = np.random.default_rng(3)
    front = rng.uniform(0, 1, (6, 3))
    mean, std, exact = rng.uniform(0, 1, 20), rng.uniform(0.01, 0.3, 20), rng.uniform(0, 1, (20, 2))
    ref = np.ones(3)
    scale = np.array([1.0, 1024.0, 4096.0])
    a = expected_improvement(front, ref, mean, std, exact)
    b = expected_improvement(front * scale, ref * scale, mean, std, exact * scale[1:])
    assert np.allclose(a, b)
