"""Infinite-width NNGP and NTK: closed forms, a dense 2-D reference, finite networks, jit/vmap."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit as ji
from jaxinit import theory as T
from tests._tolerances import (
    KERNEL_MC_SEEDS,
    KERNEL_MC_WIDTH,
    KERNEL_NTK_SEEDS,
    THEORY_QUAD_ATOL,
    THEORY_QUAD_RTOL,
    kernel_nngp_atol,
    kernel_ntk_atol,
)

# four inputs of different norms and angles (d_in = 3): q1 != q2 off the diagonal
X = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-1.2, 0.5, 0.3], [0.2, -0.4, 1.5]])


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=THEORY_QUAD_RTOL, atol=THEORY_QUAD_ATOL)


def _recursion(pair, x, depth, w, b):
    """The NNGP/NTK recursion in float64 NumPy, ``pair(q1, q2, k) -> (E[φφ'], E[φ'φ'])``."""
    k = w * (x @ x.T) / x.shape[1] + b
    t = k
    for _ in range(depth - 1):
        q = np.diag(k)
        e, ed = pair(q[:, None], q[None, :], k)
        k_next = w * e + b
        t, k = k_next + w * ed * t, k_next
    return k, t


def _relu_pair(q1, q2, k):  # arc-cosine kernels of degree 1 and 0 (Cho & Saul 2009)
    s = np.sqrt(q1 * q2)
    theta = np.arccos(np.clip(k / s, -1, 1))
    return s * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi), (np.pi - theta) / (
        2 * np.pi
    )


def _erf_pair(q1, q2, k):  # Williams 1997
    a = (1 + 2 * q1) * (1 + 2 * q2)
    return 2 / np.pi * np.arcsin(2 * k / np.sqrt(a)), 4 / np.pi / np.sqrt(a - 4 * k * k)


# -- closed forms -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pair", "w", "b"),
    [("relu", _relu_pair, 2.0, 0.0), ("relu", _relu_pair, 1.3, 0.2), ("erf", _erf_pair, 1.5, 0.1)],
)
def test_closed_forms(name, pair, w, b):
    for depth in (1, 2, 5):
        got = T.kernels(name, X, depth=depth, sigma_w2=w, sigma_b2=b)
        want = _recursion(pair, X, depth, w, b)
        _close(got.nngp, want[0])
        _close(got.ntk, want[1])


def test_relu_critical_keeps_the_norms_and_linear_is_exact():
    # σ_w² = 2, σ_b² = 0: K_l(x, x) = 2‖x‖²/d_in at every depth; Θ_L(x, x) = L K_1(x, x)
    k = T.kernels("relu", X, depth=4, sigma_w2=2.0, sigma_b2=0.0)
    q = 2 * (X**2).sum(1) / 3
    _close(np.diag(k.nngp), q)
    _close(np.diag(k.ntk), 4 * q)
    # linear: K_L = w^L x·x'/d + b (1 + w + ... + w^(L-1)), Θ_L = Σ_l w^(L-l) K_l
    w, b, depth = 0.8, 0.3, 3
    k = T.kernels("linear", X, depth=depth, sigma_w2=w, sigma_b2=b)
    ks = [w ** (l + 1) * (X @ X.T) / 3 + b * sum(w**j for j in range(l + 1)) for l in range(depth)]
    _close(k.nngp, ks[-1])
    _close(k.ntk, sum(w ** (depth - 1 - l) * ks[l] for l in range(depth)))


@pytest.mark.parametrize("name", ["relu", pytest.param("tanh", marks=pytest.mark.slow)])
def test_two_input_sets_match_the_joint_kernel(name):
    both = T.kernels(name, X, depth=3, sigma_w2=1.7, sigma_b2=0.1)
    part = T.kernels(name, X[:3], X[1:], depth=3, sigma_w2=1.7, sigma_b2=0.1)
    _close(part.nngp, both.nngp[:3, 1:])
    _close(part.ntk, both.ntk[:3, 1:])
    if name == "relu":  # x2 = x1 given: the general path, with c = 1 up to rounding
        _close(T.kernels(name, X, X, depth=3, sigma_w2=1.7, sigma_b2=0.1).ntk, both.ntk)
    np.testing.assert_array_equal(both.nngp, both.nngp.T)
    assert part.nngp.shape == part.ntk.shape == (3, 3)


# -- quadrature activations against a dense float64 reference ---------------------------------


def _dense_pair(name, q1, q2, k, kinks=()):
    """(E[φ(u)φ(u')], E[φ'(u)φ'(u')]) by composite Gauss–Legendre on [-10, 10]²: 200 panels of
    8 nodes a side, u = √q1 z1, u' = √q2 (c z1 + s z2), cut at every kink of u and of u'."""
    c = k / math.sqrt(q1 * q2)
    s = math.sqrt(max(1 - c * c, 0.0))
    gx, gw = np.polynomial.legendre.leggauss(8)

    def rule(edges):  # edges (..., E) sorted -> nodes and weights (..., (E-1)·8)
        half, mid = np.diff(edges) / 2, (edges[..., 1:] + edges[..., :-1]) / 2
        z = (mid[..., None] + half[..., None] * gx).reshape(*edges.shape[:-1], -1)
        w = (half[..., None] * gw).reshape(z.shape) * np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
        return z, w

    grid = np.linspace(-10, 10, 201)
    kinks = np.asarray(kinks, np.float64)
    z1, w1 = rule(np.unique(np.concatenate([grid, np.clip(kinks / math.sqrt(q1), -10, 10)])))
    with np.errstate(divide="ignore", invalid="ignore"):  # s = 0: u' does not depend on z2
        cuts = (kinks[None, :] / math.sqrt(q2) - c * z1[:, None]) / s
    cuts = np.nan_to_num(cuts, nan=10.0, posinf=10.0, neginf=-10.0)
    inner = np.concatenate([np.broadcast_to(grid, (z1.size, grid.size)), cuts.clip(-10, 10)], 1)
    z2, w2 = rule(np.sort(inner, axis=1))
    act = ji.activations.get(name)
    u1 = jnp.asarray(math.sqrt(q1) * z1, jnp.float32)
    u2 = jnp.asarray(math.sqrt(q2) * (c * z1[:, None] + s * z2), jnp.float32)

    def phi_dphi(u):
        y, dy = jax.jvp(act.fn, (u,), (jnp.ones_like(u),))
        return np.asarray(y, np.float64), np.asarray(dy, np.float64)

    (p1, d1), (p2, d2) = phi_dphi(u1), phi_dphi(u2)
    weights = w1[:, None] * w2
    return (weights * p1[:, None] * p2).sum(), (weights * d1[:, None] * d2).sum()


@pytest.mark.parametrize(
    ("name", "kinks"),
    [
        ("tanh", ()),
        ("gelu", ()),
        ("hard_tanh", (-1.0, 1.0)),
        ("selu", (0.0,)),
        ("leaky_relu(negative_slope=0.2)", (0.0,)),  # a closed form, against the reference too
    ],
)
def test_one_layer_step_against_dense_reference(name, kinks):
    # two inputs in d_in = 2 at 100°, norms² 1 and 2.6: K₁ = w·x·x'/2 + b
    a = math.radians(100.0)
    x = np.array([[1.0, 0.0], [math.sqrt(2.6) * math.cos(a), math.sqrt(2.6) * math.sin(a)]])
    w, b = 1.6, 0.15
    k1 = w * (x @ x.T) / 2 + b
    got = T.kernels(name, x[:1], x, depth=2, sigma_w2=w, sigma_b2=b)
    want_k, want_t = np.zeros((1, 2)), np.zeros((1, 2))
    for j in range(2):
        e, ed = _dense_pair(name, k1[0, 0], k1[j, j], k1[0, j], kinks)
        want_k[0, j] = w * e + b
        want_t[0, j] = want_k[0, j] + w * ed * k1[0, j]
    _close(got.nngp, want_k)
    _close(got.ntk, want_t)


# -- against finite networks sampled with jaxinit's initializers ------------------------------

MC_CASES = {"relu": (2.0, 0.1), "tanh": (1.5, 0.05)}
MC_DEPTH = 3
XMC = jnp.asarray(X, jnp.float32)


def _nngp_sample(name, w2, b2, key):
    """One network in the standard parameterization, W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²),
    every layer KERNEL_MC_WIDTH wide: the empirical kernel z_L z_L^T / width, (n, n)."""
    act, n = ji.activations.get(name), KERNEL_MC_WIDTH
    h, fan_in = XMC, XMC.shape[1]
    for l, k in enumerate(jax.random.split(key, MC_DEPTH)):
        kw, kb = jax.random.split(k)
        weight = ji.initializers.get(f"normal(stddev={math.sqrt(w2 / fan_in)!r})")(kw, (fan_in, n))
        bias = ji.initializers.get(f"normal(stddev={math.sqrt(b2)!r})")(kb, (1, n))
        z = (act.fn(h) if l else h) @ weight + bias
        h, fan_in = z, n
    return z @ z.T / n


def _ntk_sample(name, w2, b2, key):
    """One network in the NTK parameterization (weights and biases N(0, 1), forward scaled by
    √(σ_w²/fan_in) and √σ_b²), one output: its empirical NTK Σ_θ ∂f(x)/∂θ ∂f(x')/∂θ, (n, n)."""
    act, n = ji.activations.get(name), KERNEL_MC_WIDTH
    std = ji.initializers.get("normal(stddev=1.0)")
    widths = [XMC.shape[1]] + [n] * (MC_DEPTH - 1) + [1]
    params = []
    for l, k in enumerate(jax.random.split(key, MC_DEPTH)):
        kw, kb = jax.random.split(k)
        params.append((std(kw, (widths[l], widths[l + 1])), std(kb, (1, widths[l + 1]))))

    def f(params):
        h = XMC
        for l, (weight, bias) in enumerate(params):
            pre = act.fn(h) if l else h
            h = math.sqrt(w2 / widths[l]) * pre @ weight + math.sqrt(b2) * bias
        return h[:, 0]

    jac = jax.tree.leaves(jax.jacrev(f)(params))
    return sum(j.reshape(j.shape[0], -1) @ j.reshape(j.shape[0], -1).T for j in jac)


def _scaled_error(measured, k):
    """|measured - K| in units of sqrt(K(x,x) K(x',x')), the scale of the Monte-Carlo error."""
    d = np.sqrt(np.diag(k))
    return np.abs(measured - k) / (d[:, None] * d[None, :])


@pytest.mark.parametrize("name", list(MC_CASES))
def test_nngp_matches_finite_networks(name, key):
    w2, b2 = MC_CASES[name]
    sample = jax.jit(lambda k: _nngp_sample(name, w2, b2, k))
    measured = np.mean([sample(k) for k in jax.random.split(key, KERNEL_MC_SEEDS)], axis=0)
    k = np.asarray(T.kernels(name, X, depth=MC_DEPTH, sigma_w2=w2, sigma_b2=b2).nngp)
    assert _scaled_error(measured, k).max() <= kernel_nngp_atol(MC_DEPTH)


@pytest.mark.parametrize("name", list(MC_CASES))
def test_ntk_matches_finite_networks(name, key):
    w2, b2 = MC_CASES[name]
    sample = jax.jit(lambda k: _ntk_sample(name, w2, b2, k))
    measured = np.mean([sample(k) for k in jax.random.split(key, KERNEL_NTK_SEEDS)], axis=0)
    t = np.asarray(T.kernels(name, X, depth=MC_DEPTH, sigma_w2=w2, sigma_b2=b2).ntk)
    assert _scaled_error(measured, t).max() <= kernel_ntk_atol(MC_DEPTH)


# -- jit, vmap, bad input ---------------------------------------------------------------------


def test_jit_and_vmap():
    x = jnp.asarray(X, jnp.float32)
    f = jax.jit(lambda x, w: T.kernels("tanh", x, depth=3, sigma_w2=w, sigma_b2=0.1))
    ref = T.kernels("tanh", x, depth=3, sigma_w2=1.2, sigma_b2=0.1)
    _close(f(x, 1.2).ntk, ref.ntk)
    ws = jnp.array([0.8, 1.2, 2.0])
    by_w = jax.vmap(lambda w: T.kernels("relu", x, depth=3, sigma_w2=w, sigma_b2=0.1))(ws)
    assert by_w.nngp.shape == by_w.ntk.shape == (3, 4, 4)
    for i, w in enumerate(ws):
        _close(by_w.ntk[i], T.kernels("relu", x, depth=3, sigma_w2=float(w), sigma_b2=0.1).ntk)
    xs = jnp.stack([x, 2 * x])  # a batch of input sets
    g = lambda a: T.kernels("relu", a, x[:2], depth=3, sigma_w2=1.2, sigma_b2=0.1)  # noqa: E731
    by_x = jax.jit(jax.vmap(g))(xs)
    _close(by_x.nngp[0], g(x).nngp)
    _close(by_x.ntk[1], g(2 * x).ntk)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"depth": 0}, ValueError, "depth must be an int >= 1; got 0"),
        ({"depth": 2.0}, TypeError, "depth must be an int >= 1; got 2.0"),
        ({"depth": True}, TypeError, "depth must be an int >= 1; got True"),
        ({"sigma_w2": 0.0}, ValueError, "kernels: sigma_w2 must be a finite number > 0; got 0.0"),
        ({"sigma_w2": math.inf}, ValueError, "sigma_w2 must be finite and >= 0; got inf"),
        (
            {"sigma_b2": -0.1},
            ValueError,
            "kernels: sigma_b2 must be finite and >= 0; got -0.1",
        ),
        ({"sigma_b2": math.nan}, ValueError, "sigma_b2 must be finite and >= 0; got nan"),
        ({"sigma_w2": [1.0, 2.0]}, ValueError, "sigma_w2 must be a scalar; got shape (2,)"),
        (
            {"sigma_w2": "big"},
            TypeError,
            "sigma_w2 must be a real number or an array of real numbers; got 'big'",
        ),
        ({"x1": X[0]}, ValueError, "x1 must be 2-D (n, d_in), each axis >= 1; got shape (3,)"),
        ({"x1": X[:0]}, ValueError, "got shape (0, 3)"),
        (
            {"x2": X[:, :2]},
            ValueError,
            "x1 and x2 must have the same feature dimension d_in; got x1 (4, 3) and x2 (4, 2)",
        ),
        ({"x1": X * np.nan}, ValueError, "kernels: x1 has non-finite entries"),
        ({"activation": "rleu"}, ValueError, "unknown activation 'rleu'. Did you mean 'relu'?"),
    ],
)
def test_bad_input_is_named(kwargs, error, message):
    args = {"activation": "relu", "x1": X, "x2": None, "depth": 2, "sigma_w2": 2.0, "sigma_b2": 0.0}
    args.update(kwargs)
    with pytest.raises(error) as info:
        T.kernels(args.pop("activation"), args.pop("x1"), args.pop("x2"), **args)
    assert message in str(info.value)
