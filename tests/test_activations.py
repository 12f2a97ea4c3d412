"""Tests for jaxinit.activations: values, SELU's fixed point, rrelu, saturation, bounds, registry."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from jaxinit import activations
from tests._tolerances import mean_atol

# The SELU constants as printed in Klambauer et al. 2017, eq. 14, typed here independently.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def _leaky(slope):
    return lambda x: np.where(x >= 0, x, slope * x)


def _elu(alpha):
    return lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3)))


def _gelu_exact(x):
    return 0.5 * x * (1 + special.erf(x / math.sqrt(2)))


def _silu(x):
    return x * special.expit(x)


# (spec, reference in float64 numpy/scipy)
REFERENCES = [
    ("sigmoid", special.expit),
    ("tanh", np.tanh),
    ("relu", lambda x: np.maximum(x, 0)),
    ("leaky_relu", _leaky(0.01)),
    ("leaky_relu(negative_slope=0.2)", _leaky(0.2)),
    ("leaky_relu(negative_slope=-0.5)", _leaky(-0.5)),
    ("prelu", _leaky(0.25)),
    ("prelu(slope=0.1)", _leaky(0.1)),
    ("rrelu", _leaky((1 / 8 + 1 / 3) / 2)),
    ("rrelu(lower=0.1, upper=0.3)", _leaky(0.2)),
    ("elu", _elu(1.0)),
    ("elu(alpha=0.5)", _elu(0.5)),
    ("selu", lambda x: SELU_SCALE * _elu(SELU_ALPHA)(x)),
    ("gelu", _gelu_tanh),
    ("gelu(approximate=False)", _gelu_exact),
    ("silu", _silu),
    ("swish", _silu),
    ("softplus", lambda x: np.logaddexp(0, x)),
    ("hard_tanh", lambda x: np.clip(x, -1, 1)),
    ("erf", special.erf),
    ("linear", lambda x: x),
    ("identity", lambda x: x),
    ("transformed", np.tanh),  # base tanh, unchanged
    (
        "transformed(base='tanh', input_scale=0.5, input_shift=0.2, output_scale=2.0, "
        "output_shift=-0.1)",
        lambda x: 2.0 * (np.tanh(0.5 * x + 0.2) - 0.1),
    ),
    (
        "transformed(base='leaky_relu(negative_slope=0.2)', input_scale=-2.0, output_scale=0.5)",
        lambda x: 0.5 * _leaky(0.2)(-2.0 * x),
    ),
]
GRID = np.array(
    [-60, -20, -5, -2, -1, -0.75, -0.5, -1e-3, 0, 1e-3, 0.5, 0.75, 1, 2, 5, 20, 60], np.float32
)
SATURATING = {"sigmoid", "tanh", "erf", "hard_tanh", "elu", "selu", "transformed"}
# and the edges where leaky_relu, rrelu and elu become relu, dead region included
PARAMETRIZED = [spec for spec, _ in REFERENCES if "(" in spec] + [
    "leaky_relu(negative_slope=0.0)",
    "rrelu(lower=0.0, upper=0.0)",
    "elu(alpha=0.0)",
]
ALL_SPECS = list(activations.names(aliases=True)) + PARAMETRIZED


def test_reference_table_covers_every_name():
    assert {spec.split("(")[0] for spec, _ in REFERENCES} == set(activations.names(aliases=True))


@pytest.mark.parametrize(("spec", "reference"), REFERENCES)
def test_values_match_reference_under_jit(spec, reference):
    act = activations.get(spec)
    traces = []

    def f(x):
        traces.append(None)
        return act(x)

    jitted = jax.jit(f)
    got = jitted(GRID)
    jitted(GRID + 0)  # same shape and dtype: no retrace
    assert len(traces) == 1
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, reference(GRID.astype(np.float64)), rtol=1e-5, atol=1e-6)


def _normal_expectation(f):
    """E[f(z)], z ~ N(0, 1), for f smooth on each side of 0.

    Gauss–Legendre on [-12, 0] and [0, 12] separately: Gauss–Hermite across
    SELU's kink at 0 converges only like 1/n (200 nodes are still 6e-4 off),
    while each half is analytic and the tails beyond 12 weigh below 1e-30.
    """
    t, w = np.polynomial.legendre.leggauss(80)
    total = 0.0
    for lo, hi in [(-12.0, 0.0), (0.0, 12.0)]:
        z = (hi - lo) / 2 * t + (hi + lo) / 2
        pdf = np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
        total += (hi - lo) / 2 * np.sum(w * f(z) * pdf)
    return total


def _selu_np(z):
    return np.asarray(activations.selu()(jnp.asarray(z, jnp.float32)), np.float64)


def test_normal_expectation_is_exact_for_known_moments():
    assert _normal_expectation(lambda z: z**2) == pytest.approx(1.0, abs=1e-12)
    assert _normal_expectation(np.abs) == pytest.approx(SQRT_2_OVER_PI, abs=1e-12)


def test_selu_fixed_point_by_quadrature():
    # float32 evaluation at the nodes limits this to ~1e-7; α rounded to 1.673 moves the mean 7e-5.
    assert _normal_expectation(_selu_np) == pytest.approx(0.0, abs=1e-5)
    assert _normal_expectation(lambda z: _selu_np(z) ** 2) == pytest.approx(1.0, abs=1e-5)


def test_selu_fixed_point_sampled(key):
    n = 2**20
    z = jax.random.normal(key, (n,))
    a = np.asarray(jax.jit(activations.selu())(z), np.float64)
    # Each estimate is a mean of n i.i.d. draws (selu(z), then selu(z)²), so its tolerance is
    # the table's mean_atol at those draws' standard deviations, taken from quadrature.
    m2 = _normal_expectation(lambda z: _selu_np(z) ** 2)
    m4 = _normal_expectation(lambda z: _selu_np(z) ** 4)
    assert abs(a.mean()) < mean_atol(n, std=math.sqrt(m2))
    assert abs((a**2).mean() - 1.0) < mean_atol(n, std=math.sqrt(m4 - m2**2))


def test_rrelu_deterministic_is_leaky_with_mean_slope():
    x = jnp.asarray(GRID)
    np.testing.assert_array_equal(
        activations.rrelu()(x), activations.leaky_relu(negative_slope=(1 / 8 + 1 / 3) / 2)(x)
    )
    np.testing.assert_array_equal(
        activations.rrelu(lower=0.1, upper=0.3)(x), activations.leaky_relu(negative_slope=0.2)(x)
    )


def test_rrelu_sampled_slopes(key):
    lower, upper, n = 0.1, 0.3, 2**16
    act = activations.get(f"rrelu(lower={lower}, upper={upper})")
    x = jnp.concatenate([-jnp.linspace(0.5, 2.0, n), jnp.linspace(0.0, 2.0, 7)])
    sample = jax.jit(lambda k, x: act(x, key=k))
    a = sample(key, x)
    slopes = np.asarray(a[:n] / x[:n], np.float64)
    assert slopes.min() >= lower - 1e-6
    assert slopes.max() <= upper + 1e-6
    std = (upper - lower) / math.sqrt(12)  # of U(lower, upper)
    assert abs(slopes.mean() - (lower + upper) / 2) < mean_atol(n, std=std)
    assert slopes.std() > 0.9 * std  # one slope per element, not one per call
    np.testing.assert_array_equal(a[n:], x[n:])  # x >= 0 passes through
    np.testing.assert_array_equal(sample(key, x), a)
    assert not np.array_equal(sample(jax.random.fold_in(key, 1), x), a)


def test_key_is_ignored_by_deterministic_activations(key):
    x = jnp.asarray(GRID)
    np.testing.assert_array_equal(activations.relu()(x, key=key), activations.relu()(x))
    stochastic = {n for n in activations.names() if activations.get(n).stochastic}
    assert stochastic == {"rrelu"}


SATURATION_CASES = [
    ("sigmoid", [0.005, 0.0099, 0.0101, 0.5, 0.9899, 0.9901, 0.995], [1, 1, 0, 0, 0, 1, 1]),
    ("tanh", [-0.995, -0.98, 0.0, 0.98, 0.995], [1, 0, 0, 0, 1]),
    ("erf", [-0.995, -0.98, 0.0, 0.98, 0.995], [1, 0, 0, 0, 1]),
    ("hard_tanh", [-1.0, -0.995, 0.98, 0.99, 1.0], [1, 1, 0, 0, 1]),
    ("elu", [-0.995, -0.98, 0.0, 50.0], [1, 0, 0, 0]),
    ("elu(alpha=2.0)", [-1.99, -1.97, 0.0], [1, 0, 0]),
    ("elu(alpha=0.0)", [0.0, 1.0], [0, 0]),
    ("selu", [-0.995 * SELU_SCALE * SELU_ALPHA, -0.98 * SELU_SCALE * SELU_ALPHA, 0.0], [1, 0, 0]),
    ("relu", [0.0, 1e-6, 1e6], [0, 0, 0]),
    ("softplus", [0.0, 1e-6, 1e6], [0, 0, 0]),
    ("gelu", [-0.17, 0.0, 1e6], [0, 0, 0]),
    ("silu", [-0.278, 0.0, 1e6], [0, 0, 0]),
]


@pytest.mark.parametrize(("spec", "a", "expected"), SATURATION_CASES)
def test_is_saturated(spec, a, expected):
    got = jax.jit(activations.get(spec).is_saturated)(jnp.asarray(a))
    assert got.dtype == jnp.bool_
    np.testing.assert_array_equal(got, np.asarray(expected, bool))


def test_saturating_property_and_end_to_end():
    assert {n for n in activations.names() if activations.get(n).saturating} == SATURATING
    tanh = activations.tanh()
    np.testing.assert_array_equal(
        tanh.is_saturated(tanh(jnp.array([[-5.0, 1.0], [0.0, 5.0]]))),
        [[True, False], [False, True]],
    )


def test_is_saturated_does_not_round_threshold_to_bfloat16():
    # selu's threshold -1.74052 rounds to -1.7421875 in bfloat16, which lies beyond it.
    a = jnp.asarray([-1.7421875, -1.734375], jnp.bfloat16)
    np.testing.assert_array_equal(activations.selu().is_saturated(a), [True, False])


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_bounds_and_dead_region_match_function(spec):
    act = activations.get(spec)
    x = jnp.concatenate([jnp.linspace(-100.0, 100.0, 20001), jnp.array([-1e6, 1e6])])
    a, da = jax.jit(lambda x: (act(x), jax.vmap(jax.grad(act))(x)))(x)
    a = np.asarray(a, np.float64)
    lo, hi = act.bounds
    assert a.min() >= lo - 1e-6
    assert a.max() <= hi + 1e-6
    # and tight: the grid comes close to every finite bound, and far out for infinite ones
    assert a.min() < lo + 1e-4 if math.isfinite(lo) else a.min() < -1e3
    assert a.max() > hi - 1e-4 if math.isfinite(hi) else a.max() > 1e3
    assert act.bounded == (math.isfinite(lo) and math.isfinite(hi))
    negative = (x < 0) & (x > -10)
    dead = bool(np.all(a[negative] == 0) and np.all(da[negative] == 0))
    assert act.dead_region == dead


@pytest.mark.parametrize(
    ("spec", "reference"),
    [("gelu", _gelu_tanh), ("gelu(approximate=False)", _gelu_exact), ("silu", _silu)],
)
def test_minimum_matches_fine_grid(spec, reference):
    lo = activations.get(spec).bounds[0]
    grid_min = reference(np.linspace(-2.0, 0.0, 2_000_001)).min()
    assert lo <= grid_min + 1e-15
    assert grid_min - lo < 1e-6


def test_silu_minimum_is_minus_lambert_w():
    assert activations.silu().bounds[0] == pytest.approx(-special.lambertw(1 / math.e).real, 1e-15)


def test_dead_region_is_relu_alone_by_default():
    assert [n for n in activations.names() if activations.get(n).dead_region] == ["relu"]


GAINS = [
    ("linear", 1.0),
    ("identity", 1.0),
    ("sigmoid", 1.0),
    ("tanh", 5 / 3),
    ("relu", math.sqrt(2)),
    ("leaky_relu", math.sqrt(2 / (1 + 0.01**2))),
    ("leaky_relu(negative_slope=0.2)", math.sqrt(2 / 1.04)),
    ("selu", 0.75),
    ("prelu", math.sqrt(2 / (1 + 0.25**2))),
    ("prelu(slope=0.1)", math.sqrt(2 / 1.01)),
    ("gelu", None),
    ("silu", None),
    ("elu", None),
    ("rrelu", None),
    ("erf", None),
]


@pytest.mark.parametrize(("spec", "gain"), GAINS)
def test_gain(spec, gain):
    got = activations.get(spec).gain
    assert got is None if gain is None else got == pytest.approx(gain, rel=1e-12)


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_spec_round_trips(spec):
    act = activations.get(spec)
    again = activations.get(act.spec)
    assert again == act
    assert hash(again) == hash(act)
    assert again.spec == act.spec
    # one object per spec, so one function: a model holding it keys one compiled program
    assert again is act
    assert again.fn is act.fn


def test_names_and_aliases():
    names = "sigmoid tanh relu leaky_relu prelu rrelu elu selu gelu silu softplus hard_tanh erf"
    assert set(activations.names()) == {*names.split(), "linear", "transformed"}
    assert set(activations.names(aliases=True)) - set(activations.names()) == {"swish", "identity"}
    assert activations.swish is activations.silu
    assert activations.identity is activations.linear
    assert activations.get("swish") == activations.silu()
    assert activations.get("identity").spec == "linear"
    for name in activations.names(aliases=True):
        assert name in activations.__all__
        assert getattr(activations, name)() == activations.get(name)


def test_module_docstring_table_lists_every_name():
    doc = activations.__doc__
    for name in activations.names():
        assert re.search(rf"^{name}\b", doc, re.MULTILINE), name


def test_canonical_spec():
    assert (
        activations.get("leaky_relu(negative_slope=0.2)").spec == "leaky_relu(negative_slope=0.2)"
    )
    assert activations.get(" leaky_relu( negative_slope = 0.2 ) ").spec == (
        "leaky_relu(negative_slope=0.2)"
    )
    assert activations.get("leaky_relu(negative_slope=0.01)").spec == "leaky_relu"
    assert activations.get("elu(alpha=2)").spec == "elu(alpha=2.0)"
    assert activations.get("gelu(approximate=False)").spec == "gelu(approximate=False)"
    assert activations.leaky_relu(negative_slope=0.2).hparams == (("negative_slope", 0.2),)


def test_equality_ignores_functions():
    assert activations.relu() == activations.get("relu")
    assert activations.leaky_relu(negative_slope=0.2) != activations.leaky_relu()
    assert activations.gelu() != activations.gelu(approximate=False)
    assert len({activations.get("swish"), activations.silu(), activations.relu()}) == 2
    assert "fn=" not in repr(activations.relu())


def test_get_returns_an_activation_as_is():
    act = activations.elu(alpha=0.5)
    assert activations.get(act) is act


def test_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match=r"'rleu'.*Did you mean 'relu'"):
        activations.get("rleu")


def test_wrong_keyword_is_named():
    with pytest.raises(ValueError, match=r"'slope'.*Did you mean 'negative_slope'"):
        activations.get("leaky_relu(slope=0.2)")
    with pytest.raises(ValueError, match="'alpha'"):
        activations.get("relu(alpha=1.0)")
    with pytest.raises(TypeError, match="'slope'"):
        activations.leaky_relu(slope=0.2)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: activations.leaky_relu(negative_slope="steep"), "negative_slope.*'steep'"),
        (lambda: activations.prelu(slope=True), "slope.*True"),
        (lambda: activations.gelu(approximate="no"), "approximate.*'no'"),
        (lambda: activations.gelu(approximate=1), "approximate.*True or False.*1"),
    ],
)
def test_bad_hyperparameter_types(make, match):
    with pytest.raises(TypeError, match=match):
        make()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("leaky_relu(negative_slope='steep')", "negative_slope.*'steep'"),
        ("prelu(slope=True)", "slope.*True"),
        ("gelu(approximate='no')", "approximate.*'no'"),
    ],
)
def test_bad_hyperparameter_types_in_a_spec(spec, match):
    with pytest.raises(ValueError, match=rf"in spec .*{match}"):  # a spec string is a value
        activations.get(spec)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: activations.leaky_relu(negative_slope=math.nan), "negative_slope.*nan"),
        (lambda: activations.prelu(slope=math.inf), "slope.*inf"),
        (lambda: activations.get("elu(alpha=-1.0)"), r"alpha must be .*>= 0.*-1\.0"),
        (lambda: activations.get("rrelu(lower=-0.1)"), r"lower must be .*>= 0.*-0\.1"),
        (lambda: activations.get("rrelu(lower=0.5, upper=0.25)"), "lower=0.5 > upper=0.25"),
    ],
)
def test_bad_hyperparameter_values(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bfloat16_is_kept(key):
    # float32 is checked with the values, under jit
    x = jnp.linspace(-3, 3, 6, dtype=jnp.bfloat16).reshape(2, 3)
    for spec in ALL_SPECS:
        act = activations.get(spec)
        a = act(x, key=key) if act.stochastic else act(x)
        assert (a.dtype, a.shape) == (jnp.bfloat16, x.shape), spec
        assert act.is_saturated(a).dtype == jnp.bool_
    assert activations.rrelu()(x).dtype == jnp.bfloat16


@pytest.mark.parametrize("spec", ["relu", "gelu", "rrelu"])
@pytest.mark.parametrize("shape", [(), (3, 0)])
def test_scalar_and_zero_size_shapes(spec, shape, key):
    act = activations.get(spec)
    x = jnp.full(shape, -0.5)
    for a in [act(x), act(x, key=key)]:
        assert a.shape == shape
    assert act.is_saturated(act(x)).shape == shape
