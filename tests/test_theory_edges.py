"""Mean-field theory at its edges: large q, c -> 1, near criticality, float32 fixed points,
and activations without a continuous order-to-chaos transition (issue 13)."""

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, special

from jaxinit import theory as T
from tests._tolerances import THEORY_LARGE_Q_RTOL

# float64 references of φ, independent of jaxinit's own definitions
PHI = {
    "tanh": np.tanh,
    "sigmoid": special.expit,
    "elu": lambda x: x if x > 0 else math.expm1(x),
    "softplus": lambda x: float(np.logaddexp(0.0, x)),
}


def _gauss(f, m, sd, points=(-3.0, -1.0, 0.0, 1.0, 3.0)):
    """E[f(x)], x ~ N(m, sd²), by adaptive quadrature over m ± 12 sd split at ``points``."""
    lo, hi = m - 12 * sd, m + 12 * sd
    edges = sorted({lo, hi, *(p for p in points if lo < p < hi)})
    norm = sd * math.sqrt(2 * math.pi)

    def g(x):
        return f(x) * math.exp(-0.5 * ((x - m) / sd) ** 2) / norm

    return sum(
        integrate.quad(g, a, b, epsabs=1e-14, epsrel=1e-12, limit=200)[0]
        for a, b in itertools.pairwise(edges)
    )


def _ref_second(name, q):
    return _gauss(lambda x: PHI[name](x) ** 2, 0.0, math.sqrt(q))


def _ref_c_map(name, c, q, w, b):
    """(w E[φ(u1)φ(u2)] + b) / (w E[φ²] + b): the inner expectation given u1 = x1 is
    E[φ(c x1 + √(q(1-c²)) z)], itself an adaptive quadrature."""
    phi, sd, tau = PHI[name], math.sqrt(q), math.sqrt(q * (1 - c * c))
    inner = lambda x1: _gauss(phi, c * x1, tau)  # noqa: E731
    points = (-3.0, -1.0, 0.0, 1.0, 3.0, *(k * tau / c for k in (-9, -3, -1, 1, 3, 9)))
    cov = _gauss(lambda x1: phi(x1) * inner(x1), 0.0, sd, points)
    return (w * cov + b) / (w * _ref_second(name, q) + b)


def _erf_c_map(c, q):
    """erf's closed form at σ_w² = 1, σ_b² = 0: arcsin(2qc/(1+2q)) / arcsin(2q/(1+2q))."""
    return math.asin(2 * q * c / (1 + 2 * q)) / math.asin(2 * q / (1 + 2 * q))


@pytest.mark.parametrize(("q", "c"), [(1e3, 0.99), (1e6, 0.999), (1e4, 0.9), (1e6, 0.3)])
def test_erf_c_map_at_large_q_is_the_closed_form(q, c):
    got = float(T.c_map("erf", c, q=q, sigma_w2=1.0, sigma_b2=0.0))
    assert got == pytest.approx(_erf_c_map(c, q), rel=THEORY_LARGE_Q_RTOL)


@pytest.mark.parametrize(
    ("name", "q", "c"),
    [("tanh", 1e3, 0.99), ("tanh", 1e6, 0.999), ("sigmoid", 1e6, 0.999), ("elu", 1e3, 0.99)],
)
def test_c_map_and_length_map_at_large_q_against_adaptive_quadrature(name, q, c):
    got = float(T.c_map(name, c, q=q, sigma_w2=1.3, sigma_b2=0.1))
    assert got == pytest.approx(_ref_c_map(name, c, q, 1.3, 0.1), rel=THEORY_LARGE_Q_RTOL)
    v = float(T.variance_map(name, q, sigma_w2=1.0, sigma_b2=0.0))
    assert v == pytest.approx(_ref_second(name, q), rel=THEORY_LARGE_Q_RTOL)


def test_beyond_the_guaranteed_range_warns():
    with pytest.warns(RuntimeWarning, match="beyond 1e"):
        T.variance_map("tanh", 2e6, sigma_w2=1.0, sigma_b2=0.0)
    with pytest.warns(RuntimeWarning, match="q = 5e"):
        T.c_map("tanh", 0.5, q=5e7, sigma_w2=1.0, sigma_b2=0.0)
