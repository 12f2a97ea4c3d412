"""Mean-field theory at its edges: large q, c -> 1, near criticality, float32 fixed points,
and activations without a continuous order-to-chaos transition (issue 13)."""

import itertools
import math

import jax
import numpy as np
import pytest
from scipy import integrate, special

from jaxinit import theory as T
from tests._tolerances import THEORY_CHI_EXCESS_ATOL, THEORY_LARGE_Q_RTOL

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


# -- near the edge of chaos: chi_c and xi_c from differences, against float64 ---------------


def _scales64(act, w, b):
    with jax.enable_x64(True):
        d = T.depth_scales(act, sigma_w2=np.float64(w), sigma_b2=np.float64(b), tol=1e-12)
        assert d.chi_c.dtype == np.float64
        return {k: float(v) for k, v in d._asdict().items()}


@pytest.mark.parametrize("factor", [1.001, 1.0001, 1.00001])
def test_chi_c_near_the_edge_of_chaos_against_float64(factor):
    b = 0.05
    with jax.enable_x64(True):
        w_c = float(T.critical_sigma_w2("tanh", sigma_b2=np.float64(b)))
    w = float(np.float32(w_c * factor))  # the same σ_w² in both precisions
    want = _scales64("tanh", w, b)
    got = T.depth_scales("tanh", sigma_w2=w, sigma_b2=b)
    assert float(got.chi1) > 1  # chaotic
    excess = float(got.chi_c) - 1
    assert excess == pytest.approx(want["chi_c"] - 1, abs=THEORY_CHI_EXCESS_ATOL)
    assert want["chi_c"] < 1 - THEORY_CHI_EXCESS_ATOL or factor == 1.00001
    if want["chi_c"] < 1 - THEORY_CHI_EXCESS_ATOL:  # resolved: never called critical
        assert excess < 0
        assert np.isfinite(float(got.xi_c))
        rel = THEORY_CHI_EXCESS_ATOL / (1 - want["chi_c"])
        assert float(got.xi_c) == pytest.approx(want["xi_c"], rel=rel)
    assert float(got.c_star) == pytest.approx(want["c_star"], abs=1e-5)


def test_depth_scales_at_large_sigma_w2_against_adaptive_quadrature():
    """tanh at σ_w² = 1000, σ_b² = 0.05: q* ≈ 975, deep in the chaotic phase, c* ≈ 1.5e-4.
    sech² is even, so E[φ'(u1)φ'(u2)] = E[φ']² + O(c*²): χ_c = σ_w² E[sech²(√q* z)]²."""
    w, b = 1e3, 0.05
    got = T.depth_scales("tanh", sigma_w2=w, sigma_b2=b)
    q = float(got.q_star)
    assert w * _ref_second("tanh", q) + b == pytest.approx(q, rel=THEORY_LARGE_Q_RTOL)
    sech2 = _gauss(lambda x: 1.0 - math.tanh(x) ** 2, 0.0, math.sqrt(q))
    chi_c = w * sech2**2
    assert float(got.c_star) < 1e-3
    assert float(got.chi_c) == pytest.approx(chi_c, rel=THEORY_LARGE_Q_RTOL)
    assert float(got.xi_c) == pytest.approx(-1 / math.log(chi_c), rel=THEORY_LARGE_Q_RTOL)


# -- fixed points that float32 cannot resolve, and linear growth ------------------------------


def test_q_star_says_when_float32_cannot_resolve_it():
    # V' = σ_w²/2 = 0.999995: float32 places q* (exactly 0.05/(1 - V')) only to ~5%
    fp = T.q_star("relu", sigma_w2=1.99999, sigma_b2=0.05)
    assert not bool(fp.converged)
    assert not bool(fp.diverged)
    assert float(fp.resolution) > 1e-2
    with pytest.warns(RuntimeWarning, match="resolves"):
        fp.checked()
    with jax.enable_x64(True):
        fp64 = T.q_star("relu", sigma_w2=np.float64(1.99999), sigma_b2=np.float64(0.05))
        assert bool(fp64.converged)
        assert float(fp64.q) == pytest.approx(0.05 / (1 - 1.99999 / 2), rel=1e-6)
    # a well-conditioned point resolves far below the default tolerance
    fp = T.q_star("tanh", sigma_w2=1.5, sigma_b2=0.05)
    assert bool(fp.converged)
    assert float(fp.resolution) < T.Q_STAR_TOL


def test_linear_growth_is_named_divergence():
    fp = T.q_star("relu", sigma_w2=2.0, sigma_b2=0.05)  # q grows by σ_b² a layer
    assert bool(fp.diverged)
    assert not bool(fp.converged)
    fp = T.q_star("relu", sigma_w2=2.0, sigma_b2=0.0)  # every q is fixed: not divergence
    assert bool(fp.converged)
    assert not bool(fp.diverged)


# -- activations without a continuous order-to-chaos transition ------------------------------


@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_no_continuous_edge_of_chaos_and_the_jump(name):
    b = 0.1
    assert np.isnan(float(T.critical_sigma_w2(name, sigma_b2=b)))
    w_div = float(T.divergence_sigma_w2(name, sigma_b2=b))
    assert 2.0 < w_div < 3.0
    # just below the saddle-node, from a q0 below the unstable fixed point: ordered
    below = T.q_star(name, sigma_w2=0.99 * w_div, sigma_b2=b, q0=0.1)
    assert bool(below.converged)
    chi = float(T.chi1(name, q=below.q, sigma_w2=0.99 * w_div))
    assert chi < 1
    assert bool(T.q_star(name, sigma_w2=1.01 * w_div, sigma_b2=b, q0=0.1).diverged)
    # χ₁ = 1 does happen along the fixed points (q = σ_w²(q) E[φ²] + σ_b²), on the unstable
    # branch past the saddle-node: those roots are not reported as the edge
    q = np.logspace(-1, 3, 41)
    w = (q - b) / np.asarray(T.variance_map(name, q, sigma_w2=1.0, sigma_b2=0.0))
    excess = np.asarray(T.chi1(name, q=q, sigma_w2=w)) - 1
    crossing = np.nonzero(np.diff(np.sign(excess)))[0]
    assert crossing.size
    assert (np.diff(w)[crossing] < 0).all()  # σ_w²(q) falling there: unstable


def test_the_edge_where_it_exists():
    assert float(T.critical_sigma_w2("tanh", sigma_b2=0.1)) == pytest.approx(1.98607, rel=1e-4)
    assert np.isinf(float(T.divergence_sigma_w2("tanh", sigma_b2=0.1)))
    for name in ("relu", "softplus"):  # the edge is q* -> ∞ itself
        crit = float(T.critical_sigma_w2(name, sigma_b2=0.1))
        assert crit == pytest.approx(2.0, rel=1e-5)
        assert float(T.divergence_sigma_w2(name, sigma_b2=0.1)) == pytest.approx(crit, rel=1e-5)
