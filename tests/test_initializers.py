"""Initializers: moments against hand-written formulas, parity, dtypes, Flax, registry, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxinit as ji
from jaxinit.initializers import _bases as B
from jaxinit.initializers._bases import QR, Constant, Identity, Normal, Uniform
from jaxinit.initializers._core import draw
from tests._references import torch_init
from tests._tolerances import SHAPES, TORCH_SCALE_RTOL, mean_atol, variance_rtol

I = ji.initializers
TORCH = torch_init()
T = 0.87962566103423978  # std of N(0, 1) truncated to ±2

# spec -> (variance(fan_in, fan_out), mean, distribution drawn, half-width of the support
# or None). Formulas are written out here, independently of Initializer.moments.
# fmt: off
CASES = {
    "he_normal": (lambda i, o: 2 / i, 0.0, "truncated_normal", lambda i, o: 2 * math.sqrt(2 / i) / T),
    "he_uniform": (lambda i, o: 2 / i, 0.0, "uniform", lambda i, o: math.sqrt(6 / i)),
    "glorot_normal": (lambda i, o: 2 / (i + o), 0.0, "truncated_normal", lambda i, o: 2 * math.sqrt(2 / (i + o)) / T),
    "glorot_uniform": (lambda i, o: 2 / (i + o), 0.0, "uniform", lambda i, o: math.sqrt(6 / (i + o))),
    "lecun_normal": (lambda i, o: 1 / i, 0.0, "truncated_normal", lambda i, o: 2 * math.sqrt(1 / i) / T),
    "lecun_uniform": (lambda i, o: 1 / i, 0.0, "uniform", lambda i, o: math.sqrt(3 / i)),
    "torch_linear_default": (lambda i, o: 1 / (3 * i), 0.0, "uniform", lambda i, o: 1 / math.sqrt(i)),
    "variance_scaling(scale=2.0, mode='fan_out', distribution='normal')": (lambda i, o: 2 / o, 0.0, "normal", None),
    "variance_scaling(scale=0.5, mode='fan_avg', distribution='uniform')": (lambda i, o: 0.5 / ((i + o) / 2), 0.0, "uniform", lambda i, o: math.sqrt(1.5 / ((i + o) / 2))),
    "variance_scaling(mode='fan_geo_avg')": (lambda i, o: 1 / math.sqrt(i * o), 0.0, "truncated_normal", lambda i, o: 2 / math.sqrt(math.sqrt(i * o)) / T),
    # keras: distribution="normal" is truncated
    "variance_scaling(scale=2.0, distribution='normal', convention='keras')": (lambda i, o: 2 / i, 0.0, "truncated_normal", lambda i, o: 2 * math.sqrt(2 / i) / T),
    "variance_scaling(scale=2.0, distribution='untruncated_normal', convention='keras')": (lambda i, o: 2 / i, 0.0, "normal", None),
    "glorot_uniform(convention='keras')": (lambda i, o: 2 / (i + o), 0.0, "uniform", lambda i, o: math.sqrt(6 / (i + o))),
    "he_normal(nonlinearity='tanh')": (lambda i, o: (5 / 3) ** 2 / i, 0.0, "truncated_normal", None),
    "he_normal(a=0.2)": (lambda i, o: 2 / (1 + 0.04) / i, 0.0, "truncated_normal", None),
    "he_uniform(mode='fan_out', nonlinearity='selu')": (lambda i, o: 0.5625 / o, 0.0, "uniform", lambda i, o: 0.75 * math.sqrt(3 / o)),
    "glorot_normal(gain=2.0)": (lambda i, o: 4 * 2 / (i + o), 0.0, "truncated_normal", None),
    "normal(stddev=0.05)": (lambda i, o: 0.05**2, 0.0, "normal", None),
    "normal(stddev=0.1, mean=0.5)": (lambda i, o: 0.01, 0.5, "normal", None),
    "uniform(low=-0.1, high=0.3)": (lambda i, o: 0.4**2 / 12, 0.1, "uniform", None),
    "uniform(low=0.0, high=0.5)": (lambda i, o: 0.5**2 / 12, 0.25, "uniform", None),
    "truncated_normal(stddev=0.05)": (lambda i, o: (0.05 * T) ** 2, 0.0, "truncated_normal", lambda i, o: 0.1),
}
# torch lays weights out as (out, in): the same formulas on the transposed shape.
TORCH_CASES = {
    "he_normal(convention='torch')": (lambda i, o: 2 / i, "normal", None),
    "glorot_normal(convention='torch')": (lambda i, o: 2 / (i + o), "normal", None),
    "lecun_normal(convention='torch')": (lambda i, o: 1 / i, "normal", None),
    "he_uniform(convention='torch')": (lambda i, o: 2 / i, "uniform", lambda i, o: math.sqrt(6 / i)),
    "kaiming_normal(nonlinearity='leaky_relu(negative_slope=0.2)', convention='torch')": (
        lambda i, o: 2 / (1 + 0.04) / i, "normal", None),
    "torch_linear_default(convention='torch')": (lambda i, o: 1 / (3 * i), "uniform", lambda i, o: 1 / math.sqrt(i)),
}
# fmt: on


def _check_sample(w, mean, var, distribution, bound):
    w = np.asarray(w, np.float64)
    n = w.size
    assert abs(w.mean() - mean) <= mean_atol(n, math.sqrt(var))
    np.testing.assert_allclose(w.var(), var, rtol=variance_rtol(n, distribution))
    if bound is not None:
        assert np.abs(w - mean).max() <= bound * (1 + 1e-6)
        assert np.abs(w - mean).max() >= 0.98 * bound  # the support is really that wide
    elif distribution == "normal":
        assert np.abs(w - mean).max() > 3.5 * math.sqrt(var)  # untruncated tails


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("spec", list(CASES))
def test_moments_against_formula(spec, shape, key):
    var_fn, mean, distribution, bound_fn = CASES[spec]
    init = I.get(spec)
    fan_in, fan_out = shape
    var = var_fn(fan_in, fan_out)
    got_mean, got_var = init.moments(shape)
    assert got_var == pytest.approx(var, rel=1e-12)
    assert got_mean == pytest.approx(mean, abs=1e-15)
    w = jax.jit(init, static_argnums=(1, 2))(key, shape, jnp.float32)
    assert w.shape == shape
    assert w.dtype == jnp.float32
    _check_sample(w, mean, var, distribution, bound_fn(fan_in, fan_out) if bound_fn else None)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("spec", list(TORCH_CASES))
def test_torch_convention_layout(spec, shape, key):
    var_fn, distribution, bound_fn = TORCH_CASES[spec]
    init = I.get(spec)
    fan_in, fan_out = shape
    torch_shape = (fan_out, fan_in)
    var = var_fn(fan_in, fan_out)
    assert init.variance(torch_shape) == pytest.approx(var, rel=1e-12)
    w = init(key, torch_shape)
    _check_sample(w, 0.0, var, distribution, bound_fn(fan_in, fan_out) if bound_fn else None)


# torch.nn.init calls (tests/references/torch_init.json, "scales") -> the same in jaxinit
TORCH_CALLS = {
    "xavier_normal_()": "glorot_normal(convention='torch')",
    "xavier_normal_(gain=2.0)": "glorot_normal(gain=2.0, convention='torch')",
    "xavier_uniform_()": "glorot_uniform(convention='torch')",
    "xavier_uniform_(gain=0.5)": "glorot_uniform(gain=0.5, convention='torch')",
    "kaiming_normal_()": "he_normal(convention='torch')",
    "kaiming_normal_(a=0.2)": "he_normal(a=0.2, convention='torch')",
    "kaiming_normal_(mode='fan_out', nonlinearity='relu')": (
        "he_normal(mode='fan_out', nonlinearity='relu', convention='torch')"
    ),
    "kaiming_normal_(nonlinearity='tanh')": "he_normal(nonlinearity='tanh', convention='torch')",
    "kaiming_normal_(nonlinearity='sigmoid')": (
        "he_normal(nonlinearity='sigmoid', convention='torch')"
    ),
    "kaiming_normal_(nonlinearity='linear')": "lecun_normal(convention='torch')",
    "kaiming_uniform_()": "he_uniform(convention='torch')",
    "kaiming_uniform_(mode='fan_out', nonlinearity='selu')": (
        "he_uniform(mode='fan_out', nonlinearity='selu', convention='torch')"
    ),
    "kaiming_uniform_(nonlinearity='linear')": "lecun_uniform(convention='torch')",
    "kaiming_uniform_(a=math.sqrt(5))": "torch_linear_default(convention='torch')",
    "default weight of nn.Linear / nn.ConvNd": "torch_linear_default(convention='torch')",
}


def test_torch_references_cover_the_calls():
    assert {c["call"] for c in TORCH["scales"]} == set(TORCH_CALLS)


@pytest.mark.parametrize("call", list(TORCH_CALLS))
def test_torch_convention_is_torchs_scale(call):
    """Fans, distribution and the exact std or bound torch uses, on dense and conv shapes."""
    spec = TORCH_CALLS[call]
    init = I.get(spec)
    flax = I.get(spec[:-1] + ", layout='flax')")  # the same law on Flax's layout
    cases = [c for c in TORCH["scales"] if c["call"] == call]
    assert {len(c["shape"]) for c in cases} == {2, 3, 4, 5}  # dense and 1-3-D conv kernels
    for c in cases:
        shape = tuple(c["shape"])  # torch's (out, in, spatial...)
        flax_shape = (*shape[2:], shape[1], shape[0])
        assert I.compute_fans(shape, in_axis=1, out_axis=0) == (c["fan_in"], c["fan_out"])
        normal = c["distribution"] == "normal"
        var = c["scale"] ** 2 * (1.0 if normal else 1.0 / 3.0)  # std², or bound²/3
        for ours, s in [(init, shape), (flax, flax_shape)]:
            assert ours.base == (Normal() if normal else Uniform())  # torch's are untruncated
            a, b = ours.coeffs(s, jnp.float32)  # a·draw: draw N(0, 1) or U[-1, 1)
            assert b is None
            assert float(a) == pytest.approx(c["scale"], rel=TORCH_SCALE_RTOL), (call, shape)
            assert ours.moments(s) == pytest.approx((0.0, var), rel=2 * TORCH_SCALE_RTOL)


def test_conv_fans_per_convention():
    # a 3x3 conv from 16 to 32 channels: fan_in = 16*9, fan_out = 32*9 in every library
    assert I.he_normal().variance((3, 3, 16, 32)) == pytest.approx(2 / 144)
    assert I.he_normal(convention="keras").variance((3, 3, 16, 32)) == pytest.approx(2 / 144)
    assert I.he_normal(convention="torch").variance((32, 16, 3, 3)) == pytest.approx(2 / 144)
    assert I.glorot_uniform(convention="torch").variance((32, 16, 3, 3)) == pytest.approx(
        2 / (144 + 288)
    )
    assert I.compute_fans((5, 3, 16, 32), batch_axis=0) == (48, 96)
    assert I.compute_fans((0, 7)) == (0, 7)


def test_orthogonal(key):
    for shape in [(100, 60), (60, 100), (3, 3, 16, 32)]:
        w = np.asarray(I.orthogonal(scale=1.5)(key, shape), np.float64).reshape(-1, shape[-1])
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        np.testing.assert_allclose(gram, 2.25 * np.eye(len(gram)), atol=1e-4)
        assert w.var() + w.mean() ** 2 == pytest.approx(
            I.orthogonal(scale=1.5).variance(shape), rel=1e-4
        )


def test_identity_and_sparse(key):
    w = I.eye(scale=2.0)(key, (3, 5))
    np.testing.assert_array_equal(w, 2 * np.eye(3, 5))
    mean, var = I.identity(scale=2.0).moments((3, 5))
    assert (mean, var) == pytest.approx((np.asarray(w).mean(), np.asarray(w).var()))
    w = np.asarray(I.sparse(sparsity=0.3, stddev=0.1)(key, (100, 50)))
    np.testing.assert_array_equal((w == 0).sum(axis=0), 30)  # exactly ceil(0.3 * 100) per unit
    nonzero = w[w != 0]
    np.testing.assert_allclose(nonzero.var(), 0.01, rtol=variance_rtol(nonzero.size, "normal"))
    assert I.sparse(sparsity=0.3, stddev=0.1).variance((100, 50)) == pytest.approx(0.01 * 0.7)


# A base draw, a shape, and how its moments are checked on one draw: "exact" (deterministic:
# mean and variance of the array), "square" (orthonormal: the mean square is exact, the
# mean random), or the distribution whose sampling tolerance applies.
# fmt: off
BASE_CASES = [
    (B.Normal(), (200, 100), "normal"),
    (B.Uniform(), (200, 100), "uniform"),
    (B.Uniform01(), (200, 100), "uniform"),
    (B.TruncatedNormal(lower=-2.0, upper=2.0), (200, 100), "truncated_normal"),
    (B.Constant(), (7, 5), "exact"),
    (B.Identity(groups=1, layout="flax"), (3, 3, 6, 10), "exact"),
    (B.Identity(groups=2, layout="torch"), (8, 6, 3), "exact"),
    (B.Orthogonal(column_axis=-1), (60, 100), "square"),
    (B.Orthogonal(column_axis=0), (30, 4, 5), "square"),
    (B.DeltaOrthogonal(column_axis=-1), (3, 3, 8, 16), "square"),
    (B.Lsuv(column_axis=-1, target_var=1.0, tol=0.1, max_iter=10), (100, 60), "square"),
]
# fmt: on


@pytest.mark.parametrize(("base", "shape", "check"), BASE_CASES, ids=lambda v: repr(v))
def test_each_draw_knows_its_moments(base, shape, check, key):
    # the one place an initializer's moments come from: E w = a E z + b, Var w = a² Var z
    mean, var = base.moments(shape)
    z = np.asarray(draw(base, key, shape, jnp.float32), np.float64)
    if check == "exact":
        assert (mean, var) == pytest.approx((z.mean(), z.var()), rel=1e-6, abs=1e-12)
    elif check == "square":
        assert mean == 0.0
        assert (z**2).mean() == pytest.approx(var, rel=1e-5)
    else:
        assert abs(z.mean() - mean) <= mean_atol(z.size, math.sqrt(var))
        np.testing.assert_allclose(z.var(), var, rtol=variance_rtol(z.size, check))


def test_sparse_draw_moments_count_its_zeros(key):
    base = B.Sparse(sparsity=0.3, axis=-2)
    z = np.asarray(draw(base, key, (100, 50), jnp.float32))
    mean, var = base.moments((100, 50))
    assert (mean, var) == (0.0, pytest.approx(1 - (z == 0).mean()))  # kept fraction, 0.7


@pytest.mark.parametrize("convention", ["jax", "keras", "torch"])
def test_fan_based_variance_is_exactly_scale_over_n(convention):
    # a = sqrt(scale/n) is rounded, yet the variance is scale/n itself, not a²·Var z
    for i, o in [(784, 256), (100, 100), (300, 7)]:
        shape = (i, o) if convention != "torch" else (o, i)
        assert I.he_normal(convention=convention).variance(shape) == 2.0 / i
        assert I.glorot_uniform(convention=convention).variance(shape) == 1.0 / ((i + o) / 2)
        assert I.lecun_normal(convention=convention).variance(shape) == 1.0 / i
        scaled = I.variance_scaling(0.7, "fan_out", "normal", convention=convention)
        assert scaled.variance(shape) == 0.7 / o


def test_moments_fn_is_deprecated_for_moments():
    init = I.uniform(low=-0.1, high=0.3)
    with pytest.warns(DeprecationWarning, match="Initializer.moments"):
        fn = init.moments_fn
    assert fn((4, 4)) == init.moments((4, 4)) == pytest.approx((0.1, 0.4**2 / 12), rel=1e-15)


# jaxinit initializer, jax's: the same key must give the same bits.
# fmt: off
PARITY = [
    (I.he_normal(), jax.nn.initializers.he_normal()),
    (I.he_uniform(), jax.nn.initializers.he_uniform()),
    (I.glorot_normal(), jax.nn.initializers.glorot_normal()),
    (I.xavier_uniform(), jax.nn.initializers.xavier_uniform()),
    (I.lecun_normal(), jax.nn.initializers.lecun_normal()),
    (I.lecun_uniform(), jax.nn.initializers.lecun_uniform()),
    (I.variance_scaling(0.7, "fan_out", "normal"), jax.nn.initializers.variance_scaling(0.7, "fan_out", "normal")),
    (I.variance_scaling(3.0, "fan_geo_avg", "uniform"), jax.nn.initializers.variance_scaling(3.0, "fan_geo_avg", "uniform")),
    (I.normal(stddev=0.3), jax.nn.initializers.normal(0.3)),
    (I.truncated_normal(stddev=0.3, lower=-1.0, upper=3.0), jax.nn.initializers.truncated_normal(0.3, lower=-1.0, upper=3.0)),
    (I.uniform(low=0.0, high=0.5), jax.nn.initializers.uniform(0.5)),
    (I.constant(value=-7.0), jax.nn.initializers.constant(-7.0)),
    (I.zeros(), jax.nn.initializers.zeros),
    (I.ones(), jax.nn.initializers.ones),
    (I.orthogonal(scale=2.0), jax.nn.initializers.orthogonal(2.0)),
]
# fmt: on


@pytest.mark.parametrize(("ours", "theirs"), PARITY, ids=[p[0].spec for p in PARITY])
def test_parity_with_jax(ours, theirs):
    for shape in [(784, 256), (3, 3, 16, 32)]:
        for dtype in [jnp.float32, jnp.bfloat16]:
            if isinstance(ours.base, QR) and dtype == jnp.bfloat16:
                continue  # jax cannot QR in bfloat16; ours draws in float32 (tested below)
            k = jax.random.key(7)
            np.testing.assert_array_equal(ours(k, shape, dtype), theirs(k, shape, dtype))


def _explicit_mesh():
    """The suite's 2 CPU devices as one explicit mesh axis ``x`` (jax's initializers take an
    out_sharding under explicit sharding, inside ``jax.set_mesh``)."""
    return jax.make_mesh((2,), ("x",), axis_types=(jax.sharding.AxisType.Explicit,))


# one initializer per way of drawing (truncated normal, uniform, normal, bounded truncated
# normal, constant, QR): out_sharding goes into the draw, whatever scales it afterwards
OUT_SHARDING_CASES = [
    p
    for p in PARITY
    if p[0].spec
    in (
        "he_normal",
        "glorot_uniform",
        "normal(stddev=0.3)",
        "truncated_normal(stddev=0.3, lower=-1.0, upper=3.0)",
        "constant(value=-7.0)",
        "orthogonal(scale=2.0)",
    )
]
assert len(OUT_SHARDING_CASES) == 6, "a case of OUT_SHARDING_CASES is no longer in PARITY"


@pytest.mark.parametrize(
    ("ours", "theirs"), OUT_SHARDING_CASES, ids=[p[0].spec for p in OUT_SHARDING_CASES]
)
def test_out_sharding_as_jax_takes_it(ours, theirs):
    """With an out_sharding, the weights are placed as asked and are bitwise jax's own
    initializer's with the same out_sharding: eagerly with a NamedSharding (then bitwise the
    weights drawn without one) and compiled with a PartitionSpec (there jax's own sharded
    draw is compiled apart from the scaling, and may round the product differently from an
    unsharded one: within an ulp). Where jax's refuses one (orthogonal), ours
    does too."""
    mesh = _explicit_mesh()
    k = jax.random.key(3)
    cases = [((64, 32), P("x"), 0), ((3, 3, 16, 32), P(None, None, None, "x"), 3)]
    with jax.set_mesh(mesh):
        for shape, spec, axis in cases:
            sharding = NamedSharding(mesh, spec)
            if isinstance(ours.base, QR):
                with pytest.raises(NotImplementedError):
                    theirs(k, shape, out_sharding=sharding)
                with pytest.raises(NotImplementedError, match=r"reshard"):
                    ours(k, shape, out_sharding=sharding)
                continue
            plain = ours(k, shape)
            eager = ours(k, shape, out_sharding=sharding)
            np.testing.assert_array_equal(eager, plain)
            np.testing.assert_array_equal(eager, theirs(k, shape, out_sharding=sharding))
            compiled = jax.jit(lambda k, shape=shape, spec=spec: ours(k, shape, out_sharding=spec))
            jax_compiled = jax.jit(
                lambda k, shape=shape, spec=spec: theirs(k, shape, out_sharding=spec)
            )
            np.testing.assert_array_equal(compiled(k), jax_compiled(k))
            np.testing.assert_allclose(compiled(k), plain, rtol=2**-22, atol=0)  # one ulp
            for out in (eager, compiled(k)):
                assert out.sharding.is_equivalent_to(sharding, len(shape)), out.sharding
                assert out.addressable_shards[0].data.shape[axis] == shape[axis] // 2
        if not isinstance(ours.base, QR):
            empty = ours(k, (0, 32), out_sharding=NamedSharding(mesh, P(None, "x")))
            assert empty.shape == (0, 32)
            assert empty.sharding.is_equivalent_to(NamedSharding(mesh, P(None, "x")), 2)


@pytest.mark.parametrize("name", ["identity", "sparse", "delta_orthogonal", "lsuv"])
def test_out_sharding_refused_where_the_draw_takes_none(name, key):
    mesh = _explicit_mesh()
    with (
        jax.set_mesh(mesh),
        pytest.raises(
            NotImplementedError,
            match=rf"^{name}.*: its \w+ draw takes no out_sharding.*draws that take one: normal, truncated_normal",
        ),
    ):
        I.get(name)(key, (8, 4), out_sharding=NamedSharding(mesh, P("x")))


ALL = sorted(I.names())


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtype_and_determinism(name, dtype):
    init = I.get(name)
    w1 = init(jax.random.key(1), (64, 32), dtype)
    assert w1.shape == (64, 32)
    assert w1.dtype == dtype
    assert bool(jnp.isfinite(w1).all())
    np.testing.assert_array_equal(w1, init(jax.random.key(1), (64, 32), dtype))
    random = not isinstance(init.base, (Constant, Identity))
    assert random == bool((w1 != init(jax.random.key(2), (64, 32), dtype)).any())


@pytest.mark.parametrize("name", ["he_normal", "orthogonal", "uniform", "sparse"])
def test_float64_under_x64(name):
    with jax.enable_x64(True):
        w = I.get(name)(jax.random.key(0), (300, 200), jnp.float64)
        assert w.dtype == jnp.float64
        var = I.get(name).variance((300, 200))
        np.testing.assert_allclose(np.var(np.asarray(w)), var, rtol=variance_rtol(w.size, "normal"))


@pytest.mark.parametrize("name", ALL)
def test_flax_linear(name):
    init = I.get(name)
    layer = nnx.Linear(50, 20, kernel_init=init, bias_init=I.zeros(), rngs=nnx.Rngs(0))
    kernel = layer.kernel.get_value()
    assert kernel.shape == (50, 20)
    mean, var = init.moments((50, 20))
    assert abs(float(kernel.mean()) - mean) <= mean_atol(1000, math.sqrt(var)) + 1e-7
    np.testing.assert_array_equal(layer.bias.get_value(), np.zeros(20))
    y = layer(jnp.ones((4, 50)))
    assert y.shape == (4, 20)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0), (2, 0, 3)], ids=str)
def test_zero_size(name, shape):
    w = I.get(name)(jax.random.key(0), shape)
    assert w.shape == shape


def test_rank_below_two_is_a_clear_error(key):
    for name in ["he_normal", "glorot_uniform", "orthogonal", "identity", "sparse", "lecun_normal"]:
        with pytest.raises(ValueError, match=r"rank >= 2.*got shape \(5,\)"):
            I.get(name)(key, (5,))
    assert I.normal()(key, (5,)).shape == (5,)  # not fan-based: any rank
    assert I.zeros()(key, ()).shape == ()


def test_registry_round_trip_and_aliases():
    for name in I.names(aliases=True):
        init = I.get(name)
        assert I.get(init.spec) == init
        assert I.get(init.spec).spec == init.spec
        assert I.get(init) is init
    assert I.xavier_uniform is I.glorot_uniform
    assert I.xavier_normal is I.glorot_normal
    assert I.kaiming_normal is I.he_normal
    assert I.kaiming_uniform is I.he_uniform
    assert I.eye is I.identity
    assert I.flax_default is I.lecun_normal
    assert I.get("xavier_normal").spec == "glorot_normal"
    assert I.get("normal(stddev=1)").spec == "normal(stddev=1.0)"
    assert I.get("normal").spec == "normal(stddev=0.01)"
    spec = "he_normal(a=0.1, mode='fan_out', convention='torch')"
    assert I.get(spec).spec == spec
    assert I.get("kaiming_uniform(mode='fan_in', convention='jax')").spec == "he_uniform"
    jax_init = jax.nn.initializers.he_normal()  # a plain function is made custom(fn), which
    with pytest.raises(ValueError, match=r"__name__ is 'init'.*custom\(fn, name="):  # needs a name
        I.get(jax_init)


# fmt: off
ERROR_CASES = [
    ("he_norml", r"unknown initializer 'he_norml'\. Did you mean 'he_normal'\?.*glorot_uniform"),
    ("normal(stdev=0.1)", r"no hyperparameter 'stdev'; valid: stddev, mean\. Did you mean 'stddev'"),
    ("normal(0.1)", r"positional arguments"),
    ("normal(stddev=__import__('os'))", r"must be a literal"),
    ("variance_scaling(mode='fan_sum')", r"mode='fan_sum' is not valid; choose one of 'fan_in'"),
    ("variance_scaling(distribution='gamma')", r"distribution='gamma' is not valid.*'uniform'"),
    ("he_normal(convention='mxnet')", r"convention='mxnet' is not valid; choose one of 'jax', 'keras', 'torch'"),
    ("variance_scaling(scale=-1.0)", r"scale must be a finite real number > 0; got -1\.0"),
    ("uniform(low=1.0, high=0.0)", r"low < high"),
    ("sparse(sparsity=1.5)", r"sparsity must lie in \[0, 1\]; got 1\.5"),
    ("he_normal(nonlinearity='gelu')", r"no gain is defined for activation 'gelu"),
    ("he_normal(nonlinearity='tanhh')", r"unknown activation 'tanhh'\. Did you mean 'tanh'"),
    ("he_normal(a=0.1, nonlinearity='relu')", r"a=0\.1 is the negative slope of leaky_relu"),
    ("he_normal(a=0.3, nonlinearity='leaky_relu(negative_slope=0.2)')", r"contradicts"),
]
# fmt: on


@pytest.mark.parametrize(("spec", "match"), ERROR_CASES)
def test_errors_name_the_bad_value(spec, match):
    with pytest.raises(ValueError, match=match):
        I.get(spec)


def test_direct_call_errors(key):
    with pytest.raises(TypeError, match=r"no hyperparameter 'stdev'.*Did you mean 'stddev'"):
        I.normal(stdev=0.1)
    with pytest.raises(ValueError, match=r"real floating-point.*int32"):
        I.he_normal()(key, (3, 4), jnp.int32)
    with pytest.raises(ValueError, match=r"negative dimension"):
        I.normal()(key, (3, -4))
    with pytest.raises(ValueError, match=r"out of range for shape"):
        I.he_normal(in_axis=5)(key, (3, 4))
    with pytest.raises(
        TypeError, match=r"out_sharding must be a jax.sharding.NamedSharding.*got 'x' \(str\)"
    ):
        I.normal()(key, (3, 4), out_sharding="x")


def test_gain_is_torch_calculate_gain():
    expected = {
        "linear": 1.0,
        "identity": 1.0,
        "sigmoid": 1.0,
        "tanh": 5 / 3,
        "relu": math.sqrt(2),
        "leaky_relu": math.sqrt(2 / (1 + 0.01**2)),
        "leaky_relu(negative_slope=0.2)": math.sqrt(2 / 1.04),
        "selu": 0.75,
    }
    for act, value in expected.items():
        assert I.gain(act) == pytest.approx(value, rel=1e-12)
    for t in TORCH["gains"]:  # torch's own calculate_gain(nonlinearity, param), stored
        act = t["nonlinearity"] + ("" if t["param"] is None else f"(negative_slope={t['param']})")
        assert I.gain(act) == pytest.approx(t["gain"], rel=1e-12)
    assert I.gain(ji.activations.get("tanh")) == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match=r"no gain is defined for activation 'softplus'.*relu"):
        I.gain("softplus")


# -- jax's builder protocol: dtype= and array hyperparameters ---------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda dt: ji.initializers.normal(stddev=0.3, dtype=dt),
         lambda dt: jax.nn.initializers.normal(0.3, dtype=dt)),
        (lambda dt: ji.initializers.he_normal(dtype=dt), lambda dt: jax.nn.initializers.he_normal(dtype=dt)),
        (lambda dt: ji.initializers.glorot_uniform(dtype=dt),
         lambda dt: jax.nn.initializers.glorot_uniform(dtype=dt)),
        (lambda dt: ji.initializers.lecun_uniform(dtype=dt), lambda dt: jax.nn.initializers.lecun_uniform(dtype=dt)),
    ],
)  # fmt: skip
def test_builders_take_dtype_as_jaxs_do(ours, theirs):
    """``builder(..., dtype=)`` sets the weights' dtype when the call gives none, bitwise
    jax's; the dtype is part of the spec, which parses back."""
    key, shape = jax.random.key(3), (16, 8)
    for dt in (jnp.bfloat16, jnp.float16, "float32"):
        init = ours(dt)
        got, want = init(key, shape), theirs(dt)(key, shape)
        assert got.dtype == want.dtype == jnp.dtype(dt)
        np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))
        assert f"dtype='{jnp.dtype(dt).name}'" in init.spec
        assert ji.initializers.get(init.spec) == init
        assert ji.initializers.get(init.spec).dtype == jnp.dtype(dt).name
        assert init(key, shape, jnp.float32).dtype == jnp.float32  # the call's dtype wins


def test_a_dtype_that_is_not_a_real_float_is_refused():
    with pytest.raises(ValueError, match=r"dtype='int32' is not a real floating-point.*bfloat16"):
        ji.initializers.normal(dtype="int32")
    with pytest.raises(ValueError, match="dtype='nonsense'"):
        ji.initializers.he_normal(dtype="nonsense")


def test_array_hyperparameters_are_taken_as_their_numbers():
    """jax's builders take ``normal(stddev=jnp.array(1.))``; so do these (the spec prints
    the number), and a traced value is refused with a reason, not a TypeError from deep
    inside."""
    key = jax.random.key(0)
    for value in (jnp.array(0.5), np.float32(0.5), np.array(0.5)):
        init = ji.initializers.normal(stddev=value)
        assert init.spec == "normal(stddev=0.5)"
        np.testing.assert_array_equal(
            init(key, (4, 4)), jax.nn.initializers.normal(0.5)(key, (4, 4))
        )
    assert (
        ji.initializers.variance_scaling(scale=jnp.float32(2.0)).spec
        == ji.initializers.get("variance_scaling(scale=2.0)").spec
    )
    with pytest.raises(TypeError, match="concrete number, not a traced value"):
        jax.jit(lambda s: ji.initializers.normal(stddev=s)(key, (2, 2)))(1.0)


def test_initializers_and_activations_pickle_as_their_specs():
    """``pickle.dumps(he_normal())`` failed (the draw's closures); jax's own fail too. They
    pickle as their spec, which rebuilds them bitwise; one that no spec rebuilds says so."""
    import copy
    import pickle

    from jaxinit.training._mup import scaled_init

    key = jax.random.key(5)
    for init in (
        ji.initializers.he_normal(),
        ji.initializers.normal(stddev=0.3, dtype="bfloat16"),
        ji.initializers.orthogonal(scale=1.5, convention="torch"),
        ji.initializers.get("variance_scaling(scale=2.0, mode='fan_avg', distribution='uniform')"),
    ):
        back = pickle.loads(pickle.dumps(init))
        assert back == init
        assert back.spec == init.spec
        np.testing.assert_array_equal(back(key, (6, 4)), init(key, (6, 4)))
    for act in ("tanh", "leaky_relu(negative_slope=0.2)", "rrelu(lower=0.1, upper=0.3)"):
        a = ji.activations.get(act)
        back = pickle.loads(pickle.dumps(a))
        assert back == a
        np.testing.assert_array_equal(back(jnp.linspace(-2, 2, 9)), a(jnp.linspace(-2, 2, 9)))
    scaled = scaled_init(ji.initializers.he_normal(), 2.0)
    with pytest.raises(pickle.PicklingError, match="does not rebuild it"):
        pickle.dumps(scaled)
    assert copy.deepcopy(scaled) is scaled  # frozen: copies never need the spec
