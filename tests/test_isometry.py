"""Jacobian spectra: exact isometry, free-probability spreads, key streams, vmap, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit as ji
from jaxinit import isometry
from jaxinit._jax_compat import compiled_count
from jaxinit.isometry import Histogram, Spectrum, jacobian_spectrum, spectrum_histogram
from tests._tolerances import ISO_NU_RTOL, ISO_SEEDS, ISO_WIDTH, Z_SCORE

GAUSS = "variance_scaling(distribution='normal')"  # untruncated N(0, 1/N)
# Near-critical tanh (Pennington et al. 2017, Sec. 3): orthogonal weights with
# sigma_w² = 1.05 just above 1, sigma_b² = 1e-6, inputs at the fixed point q*.
TANH_SW2, TANH_SB2 = 1.05, 1e-6
TANH = dict(
    init=f"orthogonal(scale={math.sqrt(TANH_SW2)})",
    activation="tanh",
    bias_init=f"normal(stddev={math.sqrt(TANH_SB2)})",
)


def _tanh_mean_field(sw2, sb2):
    """q*, chi_1 and mu2/mu1² - 1 of tanh by Gauss–Hermite (an independent reference)."""
    z, w = np.polynomial.hermite_e.hermegauss(101)
    w = w / w.sum()
    q = 1.0
    for _ in range(5000):
        q = sw2 * np.sum(w * np.tanh(np.sqrt(q) * z) ** 2) + sb2
    d2 = np.cosh(np.sqrt(q) * z) ** -4  # phi'(h)² for tanh
    mu1, mu2 = np.sum(w * d2), np.sum(w * d2**2)
    return q, sw2 * mu1, mu2 / mu1**2 - 1


def _spectra(depth, *, seeds=ISO_SEEDS, width=ISO_WIDTH, **kw):
    keys = jax.random.split(jax.random.key(0), seeds)
    return jax.vmap(lambda k: jacobian_spectrum(k, depth=depth, width=width, **kw))(keys)


def _nu(spec):
    """Per network: Var(s²) / mean(s²)², the normalized spread of JJᵀ's eigenvalues."""
    lam = np.asarray(spec.singular_values, np.float64).reshape(spec.mean.shape[0], -1) ** 2
    return lam.var(1) / lam.mean(1) ** 2


def test_linear_orthogonal_is_exactly_isometric():
    spec = _spectra(16, init="orthogonal", activation="linear", seeds=2, width=64)
    np.testing.assert_allclose(spec.singular_values, 1.0, atol=2e-5)
    np.testing.assert_allclose(spec.mean_squared_by_layer, 1.0, atol=2e-5)


def test_linear_gaussian_mean_one_spread_grows_like_depth():
    """E[s²] = 1 exactly for Gaussian 1/N weights; Var(s²) = L (Fuss–Catalan)."""
    width, nus = 64, {}
    for depth in (2, 8):
        spec = _spectra(depth, init=GAUSS, activation="linear", width=width)
        # tr(JJᵀ)/N of one network has relative std ~ sqrt(2L)/N (L factors ‖W‖²/N)
        atol = Z_SCORE * math.sqrt(2 * depth) / width / math.sqrt(ISO_SEEDS)
        assert float(np.mean(spec.mean_squared)) == pytest.approx(1.0, abs=atol)
        nus[depth] = _nu(spec).mean()
        assert nus[depth] == pytest.approx(depth, rel=ISO_NU_RTOL)
        assert float(spec.max.mean()) > 1.5  # no isometry: the largest s is far above 1
    assert nus[8] > 2.5 * nus[2]


def test_tanh_orthogonal_near_criticality_stays_isometric_relu_does_not():
    depth = 32
    q_star, chi1, excess = _tanh_mean_field(TANH_SW2, TANH_SB2)
    assert abs(chi1 - 1) < 1e-3  # the point is critical to 0.1%
    tanh = _spectra(depth, q=float(q_star), **TANH)
    # Theory: Var(s²)/mean² = L (mu2/mu1² - 1) ≈ 0.133, so std(s) ≈ sqrt(0.133)/2 ≈ 0.18.
    assert _nu(tanh).mean() == pytest.approx(depth * excess, rel=ISO_NU_RTOL)
    assert float(tanh.std.max()) < 0.3  # theory + 60%: no seed strays far
    assert float(tanh.max.max()) < 2.0
    assert float(np.mean(tanh.mean_squared)) == pytest.approx(chi1**depth, rel=0.35)

    relu_orth = _spectra(depth, init=f"orthogonal(scale={math.sqrt(2)})", activation="relu")
    relu_he = _spectra(depth, init="he_normal", activation="relu")
    assert _nu(relu_orth).mean() == pytest.approx(depth, rel=ISO_NU_RTOL)  # s1 = 0
    assert _nu(relu_he).mean() == pytest.approx(2 * depth, rel=ISO_NU_RTOL)  # s1 = -1
    # A ReLU network's overall gain is a product of L random factors and varies
    # wildly between seeds, so its spread and maximum are compared in units of
    # its own root-mean-square singular value (the tanh net's is 1 ± 0.2).
    for relu in (relu_orth, relu_he):
        rms = np.sqrt(np.asarray(relu.mean_squared))
        assert (np.asarray(relu.std) / rms).min() > 3 * float(tanh.std.max())
        assert (np.asarray(relu.max) / rms).min() > 2.5 * float(tanh.max.max())
        assert _nu(relu).min() > 20 * _nu(tanh).max()


def test_matches_autodiff_jacobian_of_the_documented_network(key):
    """Rebuild the network from the documented key streams; compare with jax.jacfwd."""
    depth, width, q_in = 3, 16, 0.5
    init, bias = ji.initializers.get("glorot_uniform"), ji.initializers.get("normal(stddev=0.1)")
    spec = jacobian_spectrum(
        key,
        init=init,
        activation="tanh",
        depth=depth,
        width=width,
        bias_init=bias,
        q_in=q_in,
        n_inputs=2,
    )
    k_in, k_layers = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    params = []
    for l in range(depth):
        k = jax.random.fold_in(k_layers, l)
        params.append(
            (
                init(jax.random.fold_in(k, 0), (width, width)),
                bias(jax.random.fold_in(k, 1), (width,)),
            )
        )

    def net(x):
        for w, b in params:
            x = jnp.tanh(x @ w + b)
        return x

    for i in range(2):
        x = math.sqrt(q_in) * jax.random.normal(jax.random.fold_in(k_in, i), (width,))
        jac = jax.jacfwd(net)(x)  # (out, in): J = ∂h_L/∂x
        s = np.linalg.svd(np.asarray(jac, np.float64), compute_uv=False)
        np.testing.assert_allclose(spec.singular_values[i], s, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(spec.mean_squared_by_layer[i, -1], np.mean(s**2), rtol=1e-4)
    assert spec.mean_squared_by_layer.shape == (2, depth)
    s_all = np.asarray(spec.singular_values, np.float64)
    assert float(spec.mean) == pytest.approx(s_all.mean(), rel=1e-5)
    assert float(spec.std) == pytest.approx(s_all.std(), rel=1e-4)
    assert float(spec.max) == pytest.approx(s_all.max(), rel=1e-6)
    assert float(spec.min) == pytest.approx(s_all.min(), rel=1e-5)


def test_explicit_inputs_equal_drawn_ones(key):
    kw = dict(init="lecun_normal", activation="tanh", depth=4, width=16)
    drawn = jacobian_spectrum(key, q_in=2.0, n_inputs=2, **kw)
    x = math.sqrt(2.0) * jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, 0), 1), (16,))
    given = jacobian_spectrum(key, inputs=x, **kw)  # a single (width,) input
    assert given.singular_values.shape == (1, 16)
    np.testing.assert_allclose(
        given.singular_values[0], drawn.singular_values[1], rtol=1e-5, atol=1e-6
    )


def test_deterministic_per_key_and_vmap_equals_loop():
    kw = dict(init="orthogonal", activation="relu", depth=6, width=32, n_inputs=2)
    keys = jax.random.split(jax.random.key(3), 3)
    batched = jax.vmap(lambda k: jacobian_spectrum(k, **kw))(keys)
    for i, k in enumerate(keys):
        one = jacobian_spectrum(k, **kw)
        again = jacobian_spectrum(k, **kw)
        np.testing.assert_array_equal(one.singular_values, again.singular_values)
        for field in Spectrum._fields:
            np.testing.assert_allclose(
                getattr(batched, field)[i], getattr(one, field), rtol=2e-5, atol=1e-6
            )
    assert not np.allclose(batched.singular_values[0], batched.singular_values[1])
    before = compiled_count(isometry._spectrum)  # one program for any key
    for seed in range(3):
        jacobian_spectrum(jax.random.key(10 + seed), **kw)
    assert compiled_count(isometry._spectrum) == before


def test_histogram_counts_every_value_like_numpy(key):
    spec = jacobian_spectrum(
        key, init="he_normal", activation="relu", depth=4, width=32, n_inputs=3
    )
    s = np.asarray(spec.singular_values).ravel()
    hist = spectrum_histogram(spec, bins=10, range=(0.0, 5.0))
    assert isinstance(hist, Histogram)
    np.testing.assert_array_equal(hist.counts, np.histogram(s, bins=10, range=(0.0, 5.0))[0])
    full = spectrum_histogram(spec, bins=7, squared=True)
    assert int(full.counts.sum()) == s.size  # (0, max] holds every value
    assert float(full.edges[-1]) == pytest.approx(float((s**2).max()))
    dens = spectrum_histogram(spec, bins=7, density=True)
    assert float(jnp.sum(dens.counts * jnp.diff(dens.edges))) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(activation="tanhh"), "Did you mean 'tanh'"),
        (dict(init="orthgonal"), "Did you mean 'orthogonal'"),
        (dict(depth=0), "depth must be an int >= 1; got 0"),
        (dict(q_in=-1.0), "q_in must be a finite real number >= 0; got -1.0"),
        (dict(inputs=np.zeros((2, 5))), r"inputs must have shape \(n_inputs, width=8\)"),
        (dict(bias_init="he_normal"), "rank >= 2"),
        (dict(dtype=jnp.int32), "floating dtype"),
    ],
)
def test_bad_arguments_raise(kwargs, match, key):
    kw = dict(init="orthogonal", activation="tanh", depth=2, width=8) | kwargs
    with pytest.raises(ValueError, match=match):
        jacobian_spectrum(key, **kw)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(width=2.5), "width must be an int >= 1; got 2.5"),
        (dict(n_inputs=True), "n_inputs must be an int"),
    ],
)
def test_wrong_types_are_type_errors(kwargs, match, key):
    kw = dict(init="orthogonal", activation="tanh", depth=2, width=8) | kwargs
    with pytest.raises(TypeError, match=match):
        jacobian_spectrum(key, **kw)


def test_histogram_bad_arguments(key):
    spec = jacobian_spectrum(key, init="orthogonal", activation="tanh", depth=1, width=4)
    with pytest.raises(ValueError, match="lo < hi"):
        spectrum_histogram(spec, range=(1.0, 1.0))
    with pytest.raises(ValueError, match="bins must be an int >= 1"):
        spectrum_histogram(spec, bins=0)
