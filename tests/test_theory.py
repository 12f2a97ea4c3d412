"""Mean-field theory: closed forms, quadrature against a dense reference, fixed points, predict."""

import math
import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit as ji
from jaxinit import theory as T
from jaxinit._jax_compat import compiled_count
from jaxinit.theory import _quadrature as Q
from tests._tolerances import (
    SWEEP_BATCH,
    SWEEP_SEEDS,
    SWEEP_VAR_RTOL,
    SWEEP_WIDTH,
    THEORY_BATCH,
    THEORY_NEAR_CRITICAL_RTOL,
    THEORY_QUAD_ATOL,
    THEORY_QUAD_RTOL,
    THEORY_SEEDS,
    THEORY_WIDTH,
    theory_var_rtol,
)

ACTIVATIONS = ji.activations.names()
# Every activation is checked against the reference; the fast run takes one of each
# kind of panel cut (kink at 0, kinks at ±1, smooth features) and a seeded sample
# of the rest, the others are marked slow (one compilation each).
_KINDS = {"relu", "hard_tanh", "tanh", "selu"}
_FAST = _KINDS | set(random.Random(0).sample([a for a in ACTIVATIONS if a not in _KINDS], 2))
ACTIVATION_CASES = [
    pytest.param(a, marks=() if a in _FAST else pytest.mark.slow) for a in ACTIVATIONS
]
# where the reference's panels are cut (kinks), in x; independent of the module's table
KINKS = {"hard_tanh": (-1.0, 1.0), "linear": ()}


# -- a dense float64 reference ----------------------------------------------------------------


def _reference_rule(cuts_z):
    """Composite Gauss–Legendre on [-10, 10]: 2000 panels of 8 nodes, edges at ``cuts_z``."""
    edges = np.unique(np.concatenate([np.linspace(-10, 10, 2001), np.clip(cuts_z, -10, 10)]))
    gx, gw = np.polynomial.legendre.leggauss(8)
    half, mid = np.diff(edges) / 2, (edges[1:] + edges[:-1]) / 2
    z = (mid[:, None] + half[:, None] * gx).ravel()
    w = (half[:, None] * gw).ravel() * np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
    return z, w


def _ref_moments(name, m, q):
    act = ji.activations.get(name)
    kinks = KINKS.get(name, (0.0,))
    z, w = _reference_rule((np.asarray(kinks) - m) / math.sqrt(q))
    x = jnp.asarray(m + math.sqrt(q) * z, jnp.float32)
    phi = np.asarray(act.fn(x), np.float64)
    dphi = np.asarray(jax.jvp(act.fn, (x,), (jnp.ones_like(x),))[1], np.float64)
    return z, w, phi, dphi


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=THEORY_QUAD_RTOL, atol=THEORY_QUAD_ATOL)


# -- closed forms -----------------------------------------------------------------------------
# Calls reuse a few argument shapes on purpose: each new shape is a new compilation.


def test_relu_closed_forms():
    q = np.array([0.0, 0.3, 1.0, 7.0])
    sw, sb = np.array([[2.0], [1.3], [3.0]]), np.array([[0.0], [0.2], [1.0]])
    _close(T.variance_map("relu", q, sigma_w2=sw, sigma_b2=sb), sw * q / 2 + sb)
    _close(T.chi1("relu", q=q, sigma_w2=sw), np.broadcast_to(sw / 2, (3, 4)))
    np.testing.assert_allclose(T.critical_sigma_w2("relu", sigma_b2=sb[:, 0]), 2.0, rtol=1e-5)
    # fixed point with a bias: q* = σ_b² / (1 - σ_w²/2)
    fp = T.q_star("relu", sigma_w2=1.5, sigma_b2=0.5)
    assert bool(fp.converged)
    assert not bool(fp.diverged)
    assert float(fp.q) == pytest.approx(2.0, rel=1e-5)


def test_relu_c_map_closed_form():
    c = jnp.array([-0.9, -0.3, 0.0, 0.4, 0.8, 0.99, 0.9999, 1.0])
    got = T.c_map("relu", c, q=1.7, sigma_w2=2.0, sigma_b2=0.0)
    _close(got, (np.sqrt(1 - c**2) + (np.pi - np.arccos(c)) * c) / np.pi)
    assert float(got[2]) == pytest.approx(1 / math.pi, rel=1e-6)  # f(0) at criticality
    # χ_c's integrand: E[relu'(u1) relu'(u2)] = (π - arccos c)/(2π), steps that meet as c → 1
    relu = ji.activations.get("relu")
    step = lambda u, v: (Q.dphi(relu, u) * Q.dphi(relu, v),)  # noqa: E731
    pair = jax.jit(jax.vmap(lambda c: Q.expect2(relu, 0.0, 1.0, 1.0, c, step)[0]))(c)
    _close(pair, (np.pi - np.arccos(c)) / (2 * np.pi))


def test_erf_closed_forms():
    # the registered erf is erf(x) itself, so φ'(0) = 2/√π and σ_w²·4/π = 1 at q* → 0
    assert float(ji.activations.get("erf").fn(0.5)) == pytest.approx(math.erf(0.5), rel=1e-6)
    assert float(T.critical_sigma_w2("erf")) == pytest.approx(math.pi / 4, rel=1e-5)
    # E[erf(u1) erf(u2)] = (2/π) arcsin(2 q c / (1 + 2q)) (Williams 1997)
    c = np.array([-0.5, 0.0, 0.3, 0.9, 0.999])
    q, sw, sb = (np.array(v)[:, None] for v in ([0.1, 1.0, 30.0], [1.0, 2.0, 1.5], [0.0, 0.1, 0.5]))
    k = lambda c: 2 / np.pi * np.arcsin(2 * q * c / (1 + 2 * q))  # noqa: E731
    _close(T.c_map("erf", c, q=q, sigma_w2=sw, sigma_b2=sb), (sw * k(c) + sb) / (sw * k(1) + sb))
    _close(T.variance_map("erf", q, sigma_w2=sw, sigma_b2=sb), sw * k(1) + sb)


def test_tanh_edge_of_chaos():
    assert float(T.critical_sigma_w2("tanh")) == pytest.approx(1.0, abs=1e-5)
    w = float(T.critical_sigma_w2("tanh", sigma_b2=0.05))  # a bias moves the edge up
    assert 1.0 < w < 3.0
    fp = T.q_star("tanh", sigma_w2=w, sigma_b2=0.05)
    assert float(T.chi1("tanh", q=fp.q, sigma_w2=w)) == pytest.approx(1.0, abs=1e-4)


# One tanh mesh for the depth-scale tests (one compilation): σ_w² rows, σ_b² columns.
MESH_W2, MESH_B2 = [0.9, 1.0, 2.5], [0.0, 0.05]


@pytest.fixture(scope="module")
def mesh():
    return T.phase_diagram("tanh", sigma_w2=jnp.array(MESH_W2), sigma_b2=jnp.array(MESH_B2))


def test_phase_diagram_layout(mesh):
    assert isinstance(mesh, T.DepthScales)
    assert all(a.shape == (3, 2) for a in mesh)
    assert mesh.converged.all()
    assert not mesh.diverged.any()


def test_depth_scales_ordered_critical_chaotic(mesh):
    s = jax.tree.map(np.asarray, mesh)
    # ordered, no bias: q* = 0, so χ1 = σ_w² φ'(0)² = σ_w² and c* = 1
    assert s.q_star[0, 0] == 0.0
    assert s.chi1[0, 0] == pytest.approx(0.9, rel=1e-5)
    assert s.xi_grad[0, 0] == pytest.approx(-1 / math.log(0.9), rel=1e-4)
    assert s.c_star[0, 1] == 1.0
    assert s.chi_c[0, 1] == s.chi1[0, 1] < 1
    # the edge: every scale is infinite
    assert np.isinf([s.xi_q[1, 0], s.xi_c[1, 0], s.xi_grad[1, 0]]).all()
    # chaotic: gradients explode (ξ_∇ < 0); odd φ without bias keeps c* = 0
    assert s.xi_grad[2, 0] < 0
    assert s.c_star[2, 0] == pytest.approx(0.0, abs=1e-6)
    # chaotic with a bias: c* is a fixed point of the public c-map, χ_c its slope there
    cs, q = float(s.c_star[2, 1]), float(s.q_star[2, 1])
    assert 0 < cs < 1
    f = T.c_map("tanh", jnp.array([cs - 1e-2, cs, cs + 1e-2]), q=q, sigma_w2=2.5, sigma_b2=0.05)
    assert float(f[1]) == pytest.approx(cs, abs=1e-5)
    assert s.chi_c[2, 1] == pytest.approx(float(f[2] - f[0]) / 2e-2, rel=1e-3)
    assert s.xi_c[2, 1] == pytest.approx(-1 / math.log(s.chi_c[2, 1]), rel=1e-6)


def test_xi_q_is_schoenholz_formula(mesh):
    # ξ_q⁻¹ = -log(χ1 + σ_w² E[φ''φ]) at q*, with φ'' by autodiff (tanh is smooth)
    sw, q = 2.5, float(mesh.q_star[2, 1])
    z, w, phi, dphi = _ref_moments("tanh", 0.0, q)
    x = jnp.asarray(math.sqrt(q) * z, jnp.float32)
    d2phi = np.asarray(jax.vmap(jax.grad(jax.grad(jnp.tanh)))(x), np.float64)
    rate = sw * (w @ dphi**2) + sw * (w @ (d2phi * phi))
    assert float(mesh.xi_q[2, 1]) == pytest.approx(-1 / math.log(rate), rel=1e-4)
    assert float(mesh.chi1[2, 1]) == pytest.approx(sw * (w @ dphi**2), rel=1e-5)


def test_selu_self_normalizes():
    # LeCun normal: σ_w² = fan_in · Var(w) = 1 exactly; SELU keeps q = 1 (Klambauer et al.)
    assert T.sigma_w2("lecun_normal", (300, 300)) == pytest.approx(1.0, rel=1e-12)
    fp = T.q_star("selu", sigma_w2=1.0, sigma_b2=0.0, q0=3.0)
    assert bool(fp.converged)
    assert float(fp.q) == pytest.approx(1.0, rel=1e-5)
    m = T.propagate("selu", 1.0, 5, sigma_w2=1.0, sigma_b2=0.0)
    np.testing.assert_allclose(m.pre_var, 1.0, rtol=1e-5)
    np.testing.assert_allclose(m.post_mean, 0.0, atol=1e-5)


# -- quadrature -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ACTIVATION_CASES)
def test_quadrature_against_dense_reference(name):
    act = ji.activations.get(name)
    m, q = np.array([0.0, 0.0, 0.3, -0.5]), np.array([0.05, 1.0, 2.5, 40.0])
    c, q2, sw, sb = np.array([-0.6, 0.0, 0.5, 1.0]), 1.3, 1.2, 0.1

    @jax.jit
    def quadrature(m, q, c):
        f = lambda x: (act.fn(x), act.fn(x) ** 2, Q.dphi(act, x) ** 2)  # noqa: E731
        moments = jax.vmap(lambda m, q: jnp.stack(Q.expect1(act, m, q, f)))(m, q)
        return moments, T.c_map(name, c, q=q2, sigma_w2=sw, sigma_b2=sb)

    moments, c_map = quadrature(m, q, c)
    for i in range(4):
        _, w, phi, dphi = _ref_moments(name, m[i], q[i])
        _close(moments[i], [w @ phi, w @ phi**2, w @ dphi**2])
    # 2-D, by Mehler's formula E[φ(u1)φ(u2)] = Σ_k c^k E[φ(√q z) He_k(z)]²/k! on the reference
    z, w, phi, _ = _ref_moments(name, 0.0, q2)
    norm = np.sqrt([float(math.factorial(k)) for k in range(41)])
    a2 = (w @ (phi[:, None] * np.polynomial.hermite_e.hermevander(z, 40) / norm)) ** 2
    want = (sw * (a2 * c[:, None] ** np.arange(41)).sum(1) + sb) / (sw * (w @ phi**2) + sb)
    _close(c_map[:3], want[:3])  # at c = 1 the truncated series falls short; the map does not
    assert float(c_map[3]) == pytest.approx(1, abs=1e-6)


# -- fixed points, depth scales, jit and vmap -------------------------------------------------


def test_q_star_reports_divergence_and_convergence():
    fp = T.q_star("relu", sigma_w2=3.0, sigma_b2=0.0)
    assert bool(fp.diverged)
    assert not bool(fp.converged)
    assert int(fp.iterations) < 100  # extrapolated growth, not 170 doublings
    with pytest.raises(ValueError, match="diverges"):
        fp.checked()
    # at the edge with a bias q grows by σ_b² a step without end: named as diverging
    # (float32's iterate stops moving near 1e7, where q + σ_b² rounds to q)
    fp = T.q_star("relu", sigma_w2=2.0, sigma_b2=0.5)
    assert not bool(fp.converged)
    assert bool(fp.diverged)
    with pytest.raises(ValueError, match="diverges"):
        fp.checked()
    # a point that iterates past max_iter without converging warns
    fp = T.q_star("tanh", sigma_w2=2.0, sigma_b2=0.1, q0=5.0, max_iter=1, tol=1e-12)
    assert not bool(fp.converged)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        fp.checked()
    fp = T.q_star("tanh", sigma_w2=2.0, sigma_b2=0.1, q0=5.0)
    assert bool(fp.converged)
    assert not bool(fp.diverged)
    q = float(fp.checked())
    next_q = T.variance_map("tanh", q, sigma_w2=2.0, sigma_b2=0.1)
    assert float(next_q) == pytest.approx(q, rel=1e-5)


def test_jit_vmap_and_grad():
    f = jax.jit(lambda q, w: T.variance_map("tanh", q, sigma_w2=w, sigma_b2=0.1))
    qs = jnp.linspace(0.1, 3.0, 7)
    batched = f(qs, 1.5)
    looped = [float(T.variance_map("tanh", q, sigma_w2=1.5, sigma_b2=0.1)) for q in qs]
    np.testing.assert_allclose(batched, looped, rtol=1e-6)
    f(qs + 1.0, 2.0)
    assert compiled_count(f) == 1  # the second call does not recompile
    c = jnp.linspace(-0.9, 1.0, 8)
    one = lambda c: T.c_map("relu", c, q=1.7, sigma_w2=2.0, sigma_b2=0.0)  # noqa: E731
    np.testing.assert_allclose(jax.vmap(one)(c), one(c), rtol=1e-6)
    # the map's slope is 2 E[φφ'z]/√q·σ_w²/2 = σ_w²/2 for relu
    slope = jax.grad(lambda q: T.variance_map("relu", q, sigma_w2=1.6, sigma_b2=0.3))(0.8)
    assert float(slope) == pytest.approx(0.8, rel=1e-5)


@pytest.mark.slow
def test_phase_diagram_2500_cells():
    grid = dict(sigma_w2=jnp.linspace(0.5, 4.0, 50), sigma_b2=jnp.linspace(0.0, 0.5, 50))
    # its speed is benchmarks/README.md's business; here, that 2,500 cells converge
    pd = T.phase_diagram("tanh", **{**grid, "sigma_w2": grid["sigma_w2"] + 0.01})
    # converged everywhere but where V'(q*) is within ~1e-2 of 1, at the edge of chaos,
    # where float32 resolves q* only to 2·eps/(1 - V') > the 1e-5 asked (σ_b² = 0, σ_w² ≈ 1)
    assert (pd.converged | (np.abs(pd.chi1 - 1) < 1e-2)).all()
    assert pd.converged.mean() > 0.99
    assert not pd.diverged.any()
    off_edge = np.abs(pd.chi1 - 1) > 1e-3  # at the edge ξ_c is infinite
    assert np.isfinite(np.asarray(pd.xi_c)[off_edge]).all()


# -- initializers -----------------------------------------------------------------------------


def test_sigma_w2_and_sigma_b2():
    assert T.sigma_w2("he_normal", (784, 256)) == pytest.approx(2.0, rel=1e-12)
    assert T.sigma_w2("glorot_uniform", (256, 256)) == pytest.approx(1.0, rel=1e-12)
    # torch lays weights out as (out, in): the fan-in is axis 1
    assert T.sigma_w2("he_normal(convention='torch')", (256, 784)) == pytest.approx(2.0, rel=1e-12)
    # in the kernel's (in, out) layout the same initializer scales by the other fan
    got = T.sigma_w2("he_normal(convention='torch')", (784, 256), in_axis=-2)
    assert got == pytest.approx(784 * 2 / 256, rel=1e-12)
    # layout="flax" keeps torch's variance 2/fan_in on a Flax (in, out) kernel: sigma_w2 counts
    # the fan-in where the initializer does (init.fan_axes), not where its convention would
    flax_layout = "he_normal(convention='torch', layout='flax')"
    assert T.sigma_w2(flax_layout, (784, 256)) == pytest.approx(2.0, rel=1e-12)
    assert T.sigma_w2("orthogonal(scale=1.5, convention='torch', layout='flax')", (50, 100)) == (
        pytest.approx(2.25 * 50 / 100, rel=1e-12)
    )
    # Keras counts explicit axes alone: on a conv kernel fan_in is 16, not 16·9, both in the
    # variance and in sigma_w2
    keras = "he_normal(convention='keras', in_axis=2, out_axis=3)"
    assert ji.initializers.get(keras).variance((3, 3, 16, 32)) == pytest.approx(2 / 16, rel=1e-12)
    assert T.sigma_w2(keras, (3, 3, 16, 32)) == pytest.approx(2.0, rel=1e-12)
    assert T.sigma_w2("orthogonal(scale=1.5)", (100, 100)) == pytest.approx(2.25, rel=1e-12)
    truncated = 0.87962566103423978**2  # variance of N(0, 1) cut at ±2
    assert T.sigma_w2("truncated_normal(stddev=0.1)", (100, 50)) == pytest.approx(truncated)
    assert T.sigma_b2("normal(stddev=0.1, mean=0.2)", 64) == pytest.approx(0.05)
    assert T.sigma_b2("zeros", 64) == 0.0
    for bad in ["identity", "normal(stddev=0.1, mean=0.5)", "uniform(low=0.0, high=0.1)"]:
        with pytest.raises(ValueError, match=r"nonzero mean|has mean"):
            T.sigma_w2(bad, (10, 10))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="tanh"):
        T.variance_map("tahn", 1.0, sigma_w2=1.0, sigma_b2=0.0)
    with pytest.raises(ValueError, match="depth"):
        T.propagate("relu", 1.0, 0, sigma_w2=2.0, sigma_b2=0.0)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        T.propagate("relu", 1.0, 3, sigma_w2=jnp.ones(2), sigma_b2=0.0)
    with pytest.raises(ValueError, match="1-D"):
        T.phase_diagram("relu", sigma_w2=jnp.ones((2, 2)), sigma_b2=jnp.ones(2))
    with pytest.raises(TypeError, match="Grid"):
        T.predict({"inits": ["he_normal"]})
    with pytest.raises(ValueError, match="identity"):
        T.predict(ji.Grid(inits=["identity"], activations=["relu"], depth=2, width=8, batch_size=4))


def test_predict_returns_a_prediction_that_loads_back_as_one(tmp_path):
    """A prediction is a Result of its own kind, not a SweepResult (nothing in it was
    measured), and a saved one loads back as a Prediction."""
    grid = ji.Grid(
        inits=["he_normal"], activations=["relu", "tanh"], depth=3, width=8, batch_size=4
    )
    predicted = T.predict(grid)
    assert type(predicted) is T.Prediction
    assert isinstance(predicted, ji.Result)
    assert not isinstance(predicted, ji.SweepResult)
    assert type(predicted.sel(activation="tanh")) is T.Prediction
    predicted.save(tmp_path / "p")
    back = ji.Result.load(tmp_path / "p")
    assert type(back) is T.Prediction
    assert back.equals(predicted)


# -- against sampled networks -----------------------------------------------------------------


def test_variance_matches_sampled_networks(key):
    """THEORY_SEEDS plain-jax MLPs of width THEORY_WIDTH, relu (He) and tanh on the same draws."""
    depth, n = 6, THEORY_WIDTH
    cases = {"relu": (2.0, 0.0), "tanh": (1.5, 0.05)}

    @jax.jit
    def sample(key):  # per case, Var(z_l) over the batch and units, (cases, depth)
        kx, kw, kb = jax.random.split(key, 3)
        x = jax.random.normal(kx, (THEORY_BATCH, n))  # E[x²] = 1
        w = jax.random.normal(kw, (depth, n, n)) / math.sqrt(n)
        b = jax.random.normal(kb, (depth, 1, n))
        out = []
        for name, (sw, sb) in cases.items():
            act = ji.activations.get(name)

            def layer(h, wb, act=act, sw=sw, sb=sb):
                z = h @ wb[0] * math.sqrt(sw) + wb[1] * math.sqrt(sb)
                return act.fn(z), z.var()

            out.append(jax.lax.scan(layer, x, (w, b))[1])
        return jnp.stack(out)

    measured = np.mean([sample(k) for k in jax.random.split(key, THEORY_SEEDS)], axis=0)
    for i, (name, (sw, sb)) in enumerate(cases.items()):
        predicted = np.asarray(T.propagate_variance(name, 1.0, depth, sigma_w2=sw, sigma_b2=sb))
        for l in range(depth):
            assert measured[i, l] == pytest.approx(predicted[l], rel=theory_var_rtol(l)), (name, l)


# -- predict against the sweep ----------------------------------------------------------------


def test_predict_matches_sweep_layout_and_pre_var():
    grid = ji.Grid(
        inits=["he_normal", "glorot_normal"],
        activations=["relu", "tanh"],
        depth=5,
        width=SWEEP_WIDTH,
        seeds=SWEEP_SEEDS,
        batch_size=SWEEP_BATCH,
        bias_inits=["normal(stddev=0.1)"],
        cosine=True,
    )
    measured, predicted = ji.sweep(grid), T.predict(grid)
    assert predicted.dims == measured.dims
    assert predicted.coords == measured.coords
    omitted = set(measured.fields) - set(predicted.fields)
    assert omitted == {"hist", "hist_below", "hist_above", "nonfinite", "diverged_layer"}
    for f, a in predicted.fields.items():
        assert a.shape == measured.fields[f].shape
        assert a.dtype == measured.fields[f].dtype
        assert predicted.field_dims[f] == measured.field_dims[f]
    for init, act in [("he_normal", "relu"), ("glorot_normal", "tanh")]:
        got = measured.sel(init=init, activation=act).pre_var.mean(axis=-2)  # over seeds
        want = predicted.sel(init=init, activation=act).pre_var[..., 0, :]
        np.testing.assert_allclose(got, want, rtol=SWEEP_VAR_RTOL[5])
        # every seed holds the same expectation
        assert (predicted.sel(init=init, activation=act).pre_var == want[..., None, :]).all()


@pytest.mark.slow
def test_predict_batchnorm_lsuv_and_fractions_against_sweep():
    """The approximate parts of predict (batch norm's backward pass, LSUV, the underflow
    'dead' set, saturation thresholds) against small real sweeps, at ~3 standard errors."""
    grid = ji.Grid(
        inits=["he_normal", "lsuv"],
        activations=["relu", "tanh"],
        depth=4,
        width=128,
        seeds=4,
        batch_size=128,
        inputs="uniform",
        bias_inits="normal(stddev=0.3)",
        batchnorm=True,
        cosine=True,
    )
    measured, predicted = ji.sweep(grid), T.predict(grid)
    for f, rtol in [("pre_var", 1e-3), ("grad_var", 0.15), ("weight_grad_norm", 0.15)]:
        got = measured.fields[f].mean(axis=-2)
        np.testing.assert_allclose(got, predicted.fields[f][..., 0, :], rtol=rtol, err_msg=f)
    np.testing.assert_allclose(measured.cosine.mean(-2), predicted.cosine[..., 0, :], atol=0.02)
    # no batch norm: LSUV holds every layer within its tol (0.1) of the target 1
    grid = ji.Grid(
        inits=["lsuv", "normal(stddev=1.0)"],
        activations=["sigmoid", "softplus", "hard_tanh"],
        depth=3,
        width=64,
        seeds=4,
        batch_size=64,
    )
    measured, predicted = ji.sweep(grid), T.predict(grid)
    lsuv = predicted.sel(init="lsuv").pre_var
    assert (np.abs(lsuv - 1) < 0.1 + 1e-6).all()
    np.testing.assert_allclose(
        measured.sel(init="lsuv").pre_var.mean(-2), lsuv[..., 0, :], rtol=0.15
    )
    # huge weights: softplus and sigmoid underflow to exact zeros, hard_tanh saturates
    for f in ("dead", "saturated"):
        got, want = measured.fields[f].mean(-2), predicted.fields[f][..., 0, :]
        np.testing.assert_allclose(got, want, atol=0.03, err_msg=f)
    assert predicted.sel(init="normal(stddev=1.0)", activation="softplus").dead[0, -1] > 0.2


def test_q_star_at_the_marginal_relu_point_keeps_the_input_length():
    # relu at σ_w² = 2, σ_b² = 0: V(q) = q for every q, so the input's q0 is the fixed point
    for q0 in (0.3, 1.0, 7.0):
        fp = T.q_star("relu", sigma_w2=2.0, sigma_b2=0.0, q0=q0)
        assert bool(fp.converged)
        assert not bool(fp.diverged)
        assert float(fp.q) == pytest.approx(q0, rel=1e-5)
    # with a bias the map is q + σ_b²: no fixed point, never reported as converged
    assert not bool(T.q_star("relu", sigma_w2=2.0, sigma_b2=0.1).converged)


def test_c_map_at_zero_variance_is_its_limit():
    """q = 0 with σ_b² = 0 makes every pre-activation 0: the c-map's ratio is 0/0, and the map
    returns its limit q → 0+: c for activations linear at 0, the arc-cosine value for relu
    (whose c-map does not depend on q), 1 where φ(0) != 0 (both outputs are the same constant)."""
    c = 0.5
    arccos = (np.sqrt(1 - c * c) + (np.pi - np.arccos(c)) * c) / np.pi  # Cho & Saul 2009
    for act, want in (("tanh", c), ("erf", c), ("relu", arccos), ("sigmoid", 1.0)):
        got = float(ji.theory.c_map(act, c, q=0.0, sigma_w2=1.0, sigma_b2=0.0))
        assert np.isfinite(got), act
        np.testing.assert_allclose(got, want, rtol=THEORY_QUAD_RTOL, atol=THEORY_QUAD_ATOL)
        at_tiny_q = float(ji.theory.c_map(act, c, q=1e-6, sigma_w2=1.0, sigma_b2=0.0))
        # continuous at q = 0: the maps differ by O(q) = 1e-6, below the quadrature tolerance
        np.testing.assert_allclose(got, at_tiny_q, rtol=THEORY_QUAD_RTOL, atol=THEORY_QUAD_ATOL)


def test_q_star_is_exactly_zero_where_zero_attracts():
    """tanh at σ_b² = 0: q = 0 is the fixed point for σ_w² <= 1 (at σ_w² = 1 the iterates reach
    it only algebraically and used to stop at 6e-8), and just above 1 the small positive q*."""
    critical = float(ji.theory.critical_sigma_w2("tanh", sigma_b2=0.0))  # 1 - 1.2e-7 in float32
    for w in (0.5, 1.0, critical):
        fp = ji.theory.q_star("tanh", sigma_w2=w, sigma_b2=0.0)
        assert float(fp.q) == 0.0, (w, fp)
        assert bool(fp.converged), (w, fp)
    delta = 1e-4
    fp = ji.theory.q_star("tanh", sigma_w2=1 + delta, sigma_b2=0.0)
    np.testing.assert_allclose(
        float(fp.q), delta / (2 * (1 + delta)), rtol=THEORY_NEAR_CRITICAL_RTOL
    )
    assert float(ji.theory.q_star("relu", sigma_w2=2.0, sigma_b2=0.0).q) == 1.0  # marginal: q0
