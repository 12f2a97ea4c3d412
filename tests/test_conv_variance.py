"""A CNN's per-position variance (``ji.theory.conv_variance``, Xiao et al. 2018): against its
closed forms (relu's linear map in Fourier space, the MLP's map per position, the border's
share of the filter) and against a Monte-Carlo CNN drawn with jaxinit's initializers."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tolerances import CNN_PREDICT_BIAS_RTOL, THEORY_QUAD_RTOL, Z_SCORE, theory_var_rtol

import jaxinit as ji

OFFSETS = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)]


def _images(n=2, size=8, channels=3, seed=0):
    """Gaussian images whose variance is 1.1 on a central square and 0.1 around it: every
    spatial mode of the profile is present."""
    profile = np.full((size, size), 0.1)
    profile[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] += 1.0
    z = np.random.default_rng(seed).standard_normal((n, size, size, channels))
    return (z * np.sqrt(profile)[None, :, :, None]).astype(np.float32)


def _spread(f):
    """Σ_d f(α + d) / 9 on the torus, in float64 numpy (independent of the library's shifts)."""
    return sum(np.roll(f, (-a, -b), axis=(-2, -1)) for a, b in OFFSETS) / 9


def test_relu_on_the_torus_is_the_filter_spectrum_power_in_fourier_space():
    """relu at σ_b² = 0: q_{l+1} = (σ_w²/2) v ⋆ q_l, so q̂_l = ((σ_w²/2) Λ_k)^(l-1) q̂_1 with
    Λ_k = Σ_d e^{2πi k·d/N} / 9; each layer's quadrature is within THEORY_QUAD_RTOL."""
    x, depth, w = _images(), 12, 1.7
    out = ji.theory.conv_variance(
        "relu", x, depth=depth, sigma_w2=w, sigma_b2=0.0, padding="CIRCULAR"
    )
    m = np.mean(np.square(x.astype(np.float64)), -1)
    q1 = w * _spread(m)
    k = np.arange(8) / 8
    lam = sum(np.exp(2j * np.pi * (k[:, None] * a + k[None, :] * b)) for a, b in OFFSETS) / 9
    want = np.stack(
        [np.fft.ifft2(np.fft.fft2(q1) * (w / 2 * lam) ** l).real for l in range(depth)], axis=1
    )
    np.testing.assert_allclose(out.q, want, rtol=depth * THEORY_QUAD_RTOL)
    # the spectrum's closed form for a 3×3 filter: (1 + 2cos 2πk₁/8)(1 + 2cos 2πk₂/8) / 9
    c = 1 + 2 * np.cos(2 * np.pi * k)
    np.testing.assert_allclose(out.spectrum, np.abs(np.outer(c, c)) / 9, atol=1e-6)
    # each mode's share of the mean falls by λ_k a layer
    ratio = np.asarray(out.spectrum)[None, None] ** np.arange(depth)[None, :, None, None]
    np.testing.assert_allclose(
        out.modes, ratio * np.asarray(out.modes)[:, :1], atol=depth * THEORY_QUAD_RTOL
    )
    assert float(out.modes[0, 0, 1, 0]) > 0.1  # the profile has the mode the test follows
    assert float(out.modes[0, -1, 1, 0]) < 0.1 * float(out.modes[0, 0, 1, 0])


@pytest.mark.parametrize("padding", ["SAME", "CIRCULAR"])
def test_delta_filters_keep_every_position_on_the_mlps_variance_map(padding):
    """Delta-orthogonal's variance sits at the centre: each position is an MLP of its own."""
    x, depth, w, b = _images(), 6, 1.5, 0.05
    out = ji.theory.conv_variance(
        "tanh", x, depth=depth, sigma_w2=w, sigma_b2=b, padding=padding, filter_variance="delta"
    )
    m = np.mean(np.square(x.astype(np.float64)), -1)
    np.testing.assert_allclose(out.q[:, 0], w * m + b, rtol=1e-6)
    following = ji.theory.variance_map("tanh", out.q[:, :-1], sigma_w2=w, sigma_b2=b)
    np.testing.assert_allclose(out.q[:, 1:], following, rtol=THEORY_QUAD_RTOL)
    np.testing.assert_array_equal(out.spectrum, np.ones((8, 8)))


def test_one_pixel_images_on_the_torus_are_the_mlp():
    x = _images(n=3, size=1, channels=5)
    depth, w, b = 5, 1.3, 0.1
    out = ji.theory.conv_variance(
        "gelu", x, depth=depth, sigma_w2=w, sigma_b2=b, padding="CIRCULAR"
    )
    q = w * np.mean(np.square(x.astype(np.float64)), -1)[:, 0, 0] + b
    for l in range(depth):
        np.testing.assert_allclose(out.q[:, l, 0, 0], q, rtol=(l + 1) * THEORY_QUAD_RTOL)
        q = np.asarray(ji.theory.variance_map("gelu", q, sigma_w2=w, sigma_b2=b))


def test_zero_padding_loses_the_filters_share_beyond_the_edge():
    """A constant image through a 3×3 SAME convolution: the interior keeps σ_w² m, an edge
    6/9 of it, a corner 4/9 (the fan-in counts every offset, as He's does)."""
    x = np.ones((1, 5, 5, 2), np.float32)
    q = ji.theory.conv_variance("relu", x, depth=1, sigma_w2=2.0, sigma_b2=0.0).q[0, 0]
    assert float(q[2, 2]) == pytest.approx(2.0, rel=1e-6)
    assert float(q[0, 2]) == pytest.approx(2.0 * 6 / 9, rel=1e-6)
    assert float(q[0, 0]) == pytest.approx(2.0 * 4 / 9, rel=1e-6)


def _monte_carlo(init, x, depth, channels, seeds):
    """Seed means of each conv output's per-position mean square over channels: a CNN of
    ``depth`` circular 3×3 convolutions (x's channels to ``channels``, then ``channels``),
    relu between, zero biases, every kernel drawn by ``init`` (a jaxinit initializer)."""
    xp = jnp.asarray(x)

    def conv(h, k):
        h = jnp.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
        return jax.lax.conv_general_dilated(
            h, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    def one(key):
        h, out = xp, []
        for k_l in jax.random.split(key, depth):
            z = conv(h, init(k_l, (3, 3, h.shape[-1], channels)))
            out.append(jnp.mean(jnp.square(z), -1))
            h = jax.nn.relu(z)
        return jnp.stack(out, 1)  # (n, depth, H, W)

    keys = jax.random.split(jax.random.key(7), seeds)
    # one seed at a time: a batch of LAPACK QRs (delta-orthogonal's draws) in one program can
    # block every XLA:CPU pool thread (jaxinit/sweeping/_kernel.py, needs_single_device_draws)
    return np.asarray(jax.jit(lambda ks: jax.lax.map(one, ks))(keys)).mean(0)


def test_a_finite_cnns_seed_mean_is_the_prediction_he_against_delta_orthogonal():
    """relu at σ_b² = 0 keeps q exactly in expectation at any width (its map is linear and a
    symmetric weight law makes E[relu(z)²] = E[z²]/2), so the seed mean of each position's
    variance measures the prediction, within theory_var_rtol (a mean of ``channels`` squares
    per layer, layer by layer) per entry. He spreads the variance over the filter
    (σ_w² = 2, uniform); delta-orthogonal at gain √2 keeps it at the centre: σ_w² = 2·3/C
    from 3 input channels (an orthogonal 3 × C centre keeps each position's norm), 2 after."""
    x, depth, channels, seeds = _images(n=2, size=8, channels=3), 4, 64, 256
    gain2 = 2.0
    cases = {
        "he": (ji.initializers.he_normal(), 2.0, "uniform"),
        "delta": (
            ji.initializers.delta_orthogonal(scale=math.sqrt(gain2)),
            [gain2 * 3 / channels] + [gain2] * (depth - 1),
            "delta",
        ),
    }
    theory = {}
    for name, (init, w, spread) in cases.items():
        theory[name] = ji.theory.conv_variance(
            "relu", x, depth=depth, sigma_w2=w, sigma_b2=0.0, padding="CIRCULAR",
            filter_variance=spread,
        ).q  # fmt: skip
        measured = _monte_carlo(init, x, depth, channels, seeds)
        for l in range(depth):
            np.testing.assert_allclose(
                measured[:, l], theory[name][:, l], rtol=theory_var_rtol(l, channels, seeds),
                err_msg=f"{name}, conv {l}",
            )  # fmt: skip
    # the two predictions differ by far more than that: the test tells them apart
    he, delta = (np.asarray(theory[k][:, -1]) for k in ("he", "delta"))
    he, delta = he / he.mean((1, 2), keepdims=True), delta / delta.mean((1, 2), keepdims=True)
    assert np.abs(he / delta - 1).max() > 3 * theory_var_rtol(depth - 1, channels, seeds)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(filter_variance="gaussian"), r"filter_variance.*'gaussian'.*'uniform', 'delta'"),
        (dict(sigma_w2=[1.0, 2.0]), r"sigma_w2 must be a scalar or shaped \(3,\); got \(2,\)"),
        (dict(sigma_w2=0.0), r"sigma_w2 must be > 0"),
        (dict(sigma_b2=-1.0), r"sigma_b2"),
        (dict(depth=0), r"depth"),
        (dict(padding="VALID"), r"padding.*'VALID'.*'SAME', 'CIRCULAR'"),
        (dict(filter_shape=(3,)), r"filter_shape must be a pair of ints"),
    ],
)
def test_bad_arguments_are_named(kw, match):
    args = dict(depth=3, sigma_w2=2.0, sigma_b2=0.0) | kw
    with pytest.raises(ValueError, match=match):
        ji.theory.conv_variance("relu", _images(n=1, size=4), **args)


def test_images_must_be_four_dimensional_and_modes_need_two_axes():
    with pytest.raises(ValueError, match=r"conv_variance: x must be images"):
        ji.theory.conv_variance("relu", np.ones((4, 4, 3)), depth=2, sigma_w2=2.0, sigma_b2=0.0)
    with pytest.raises(ValueError, match=r"spatial_modes: q needs two spatial axes"):
        ji.theory.spatial_modes(np.ones(5))


def _cnn_grid(padding, inits, seeds=16, rule=None):
    make = functools.partial(
        ji.models.CNN, in_channels=3, channels=64, depth=4, classes=None, padding=padding
    )
    extra = {} if rule is None else {"rule": rule}
    return ji.ModelGrid(model=make, inits=inits, seeds=seeds, inputs="gaussian",
                        input_shape=(8, 8, 8, 3), gradients=False, **extra)  # fmt: skip


@pytest.mark.parametrize("padding", ["SAME", "CIRCULAR"])
def test_predict_of_a_zoo_cnn_grid_is_its_sweep(padding):
    """theory.predict of a ModelGrid of the zoo CNN: each convolution's variance, averaged
    over positions as the sweep measures it, within Z_SCORE standard errors of the seed mean
    plus CNN_PREDICT_BIAS_RTOL; the pooled output is left out (NaN)."""
    inits = ["he_normal", "delta_orthogonal(scale=1.4142135623730951)", "glorot_normal"]
    grid = _cnn_grid(padding, inits)
    res, theory = ji.sweep(grid, progress=False), ji.theory.predict(grid)
    assert theory.dims == res.dims
    assert theory.attrs["layers"] == res.attrs["layers"]
    assert "Xiao" in theory.attrs["theory"]
    convs = [i for i, t in enumerate(res.attrs["layer_types"]) if t == "Conv"]
    measured = np.asarray(res.pre_var, np.float64)[..., convs]  # (init, seed, layer)
    mean, se = measured.mean(1), measured.std(1, ddof=1) / math.sqrt(len(grid.seeds))
    want = np.asarray(theory.pre_var, np.float64)[:, 0][..., convs]
    np.testing.assert_array_less(np.abs(mean - want), Z_SCORE * se + CNN_PREDICT_BIAS_RTOL * want)
    assert np.isnan(theory.pre_var[..., -1]).all()  # (model): the pooled output
    # delta-orthogonal from 3 to 64 channels keeps each position's norm: 2 · 3/64 throughout
    np.testing.assert_allclose(want[1], 2 * 3 / 64, rtol=1e-5)
    if padding == "SAME":  # He loses variance at the border, layer after layer
        assert want[0, -1] < 0.8 * want[0, 0]
    else:
        np.testing.assert_allclose(want[0], 2.0, rtol=1e-5)


def test_predict_refuses_a_cnn_that_mixes_filter_kinds_and_other_paddings():
    rule = ji.models.kernels(exclude=r"^convs/0$")  # the first keeps nnx's lecun_normal
    grid = _cnn_grid("SAME", ["delta_orthogonal"], seeds=1, rule=rule)
    with pytest.raises(ValueError, match=r"mix delta-orthogonal and evenly spread filters"):
        ji.theory.predict(grid)
    grid = _cnn_grid("SAME", ["he_normal"], seeds=1, rule=rule)  # both even: predicted
    assert np.isfinite(ji.theory.predict(grid).pre_var[..., :4]).all()
    make = functools.partial(ji.models.CNN, in_channels=3, channels=8, depth=2, padding="VALID")
    grid = ji.ModelGrid(model=make, inits=["he_normal"], seeds=1, inputs="gaussian",
                        input_shape=(2, 8, 8, 3))  # fmt: skip
    with pytest.raises(ValueError, match=r"padding 'VALID' is not one of \('SAME', 'CIRCULAR'\)"):
        ji.theory.predict(grid)
