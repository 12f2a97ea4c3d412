"""Conv kernels (delta_orthogonal, dirac, identity) and the torch convention on both layouts.

jax/Flax conv kernels are (spatial..., in, out), torch's (out, in, spatial...);
``to_flax`` transposes a torch kernel into Flax's layout. What torch computes comes from
tests/references/torch_init.json (tests/_references.py), so these tests run without torch.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit as ji
from jaxinit.initializers._bases import QR, DeltaOrthogonal, Normal, Orthogonal, Sparse
from jaxinit.initializers._core import draw, draw_families
from tests._references import torch_init
from tests._tolerances import (
    LAYOUT_SHAPE,
    ORTHOGONAL_SV_RTOL,
    TORCH_SCALE_RTOL,
    mean_atol,
    two_sample_kurtosis_atol,
    two_sample_variance_rtol,
    variance_rtol,
)

I = ji.initializers
TORCH = torch_init()


def to_flax(w):
    """A torch-layout kernel (out, in, spatial...) in Flax's layout (spatial..., in, out)."""
    w = np.asarray(w)
    return np.transpose(w, (*range(2, w.ndim), 1, 0))


# -------------------------------------------------------------------- delta orthogonal

DELTA_SHAPES = [(3, 16, 32), (3, 3, 16, 32), (4, 4, 8, 8), (2, 5, 8, 8), (3, 3, 3, 4, 6), (1, 5, 5)]


@pytest.mark.parametrize("shape", DELTA_SHAPES, ids=str)
@pytest.mark.parametrize(("scale", "column_axis"), [(1.0, -1), (2.0, -1), (0.5, -2)])
def test_delta_orthogonal_is_jax_bit_for_bit(shape, scale, column_axis):
    ours = I.delta_orthogonal(scale=scale, column_axis=column_axis)
    theirs = jax.nn.initializers.delta_orthogonal(scale, column_axis)
    k = jax.random.key(3)
    np.testing.assert_array_equal(ours(k, shape, jnp.float32), theirs(k, shape, jnp.float32))
    jitted = jax.jit(ours, static_argnums=(1, 2))(k, shape, jnp.float32)
    np.testing.assert_array_equal(jitted, theirs(k, shape, jnp.float32))


@pytest.mark.parametrize("shape", [(3, 16, 32), (3, 3, 16, 32), (4, 4, 8, 8), (3, 3, 3, 4, 6)])
def test_delta_orthogonal_structure_and_moments(shape, key):
    w = np.asarray(I.delta_orthogonal(scale=1.5)(key, shape), np.float64)
    centre = tuple((k - 1) // 2 for k in shape[:-2])  # jax's centre, also for even k
    q = w[centre]
    np.testing.assert_allclose(q @ q.T, 2.25 * np.eye(shape[-2]), atol=1e-5)  # in <= out
    rest = w.copy()
    rest[centre] = 0
    assert not rest.any()  # every other tap is zero
    mean, var = I.delta_orthogonal(scale=1.5).moments(shape)
    assert mean == 0.0
    # exact: ||Q||_F² = in·scale², spread over all entries
    assert var == pytest.approx(2.25 * shape[-2] / w.size, rel=1e-12)
    assert (w**2).mean() == pytest.approx(var, rel=1e-5)


def test_delta_orthogonal_keeps_jax_argument_checks(key):
    bad = {
        (3, 3, 32, 16): r"in channels <= out channels.*in=32 > out=16 in shape \(3, 3, 32, 16\)",
        (1, 1, 1, 1, 4, 4): r"3-D, 4-D or 5-D conv kernel.*rank 6",
    }
    for shape, match in bad.items():
        with pytest.raises(ValueError, match=match):
            I.delta_orthogonal()(key, shape)
        with pytest.raises(ValueError, match=match):  # moments (and so Grid) refuse too
            I.delta_orthogonal().moments(shape)
        with pytest.raises(ValueError, match=r"fan_in|3D, 4D or 5D"):  # jax refuses them too
            jax.nn.initializers.delta_orthogonal()(key, shape)
    with pytest.raises(ValueError, match=r"rank >= 2.*got shape \(5,\)"):
        I.delta_orthogonal()(key, (5,))
    with pytest.raises(ValueError, match=r"column_axis is an axis of the \(in, out\).*got 2"):
        I.delta_orthogonal(column_axis=2)
    with pytest.raises(TypeError, match=r"column_axis must be an int; got 'a'"):
        I.delta_orthogonal(column_axis="a")


def test_delta_orthogonal_on_a_dense_kernel_is_orthogonal(key):
    # no spatial axes: the centre tap is the whole kernel, either side may be larger
    for shape in [(64, 32), (32, 64)]:
        np.testing.assert_array_equal(
            I.delta_orthogonal(scale=2.0)(key, shape), I.orthogonal(scale=2.0)(key, shape)
        )
        assert I.delta_orthogonal().moments(shape) == I.orthogonal().moments(shape)


# ------------------------------------------------------------------- dirac and identity

# torch shapes (out, in, spatial...) and groups; torch's in axis is in channels per group
DIRAC_CASES = [
    ((8, 4, 3), 1),
    ((8, 4, 3, 3), 1),
    ((4, 8, 3, 3), 1),  # fewer out than in channels: min(out, in) ones
    ((6, 3, 2, 4), 1),  # even kernel sizes: torch's centre k // 2
    ((4, 4, 3, 3, 3), 1),
    ((8, 2, 3, 3), 2),
    ((12, 2, 5), 3),
    ((6, 4, 3, 3), 3),  # out per group (2) < in (4)
]


def torch_dirac(torch_shape, groups):
    """``torch.nn.init.dirac_(torch.empty(torch_shape), groups)``, from its stored ones."""
    [case] = [
        c for c in TORCH["dirac"] if (tuple(c["shape"]), c["groups"]) == (torch_shape, groups)
    ]
    w = np.zeros(torch_shape, np.float32)
    w[tuple(case["ones"])] = 1
    return w


def test_dirac_references_are_the_cases():
    stored = [(tuple(c["shape"]), c["groups"]) for c in TORCH["dirac"]]
    assert stored == DIRAC_CASES  # regenerate tests/references when the cases change


@pytest.mark.parametrize(("torch_shape", "groups"), DIRAC_CASES, ids=str)
def test_dirac_matches_torch(torch_shape, groups, key):
    expected = torch_dirac(torch_shape, groups)
    flax_shape = to_flax(expected).shape
    ours = I.dirac(groups=groups)(key, flax_shape)
    np.testing.assert_array_equal(ours, to_flax(expected))
    np.testing.assert_array_equal(
        I.dirac(groups=groups, convention="torch")(key, torch_shape), expected
    )
    np.testing.assert_array_equal(
        I.dirac(groups=groups, layout="torch")(key, torch_shape), expected
    )
    mean, var = I.dirac(groups=groups).moments(flax_shape)
    e64 = expected.astype(np.float64)
    assert (mean, var) == pytest.approx((e64.mean(), e64.var()), rel=1e-12)
    if groups == 1:  # identity is dirac(groups=1) on Flax's layout
        np.testing.assert_array_equal(I.identity()(key, flax_shape), to_flax(expected))
        assert I.identity().moments(flax_shape) == pytest.approx((mean, var), rel=1e-12)


def test_dirac_and_identity_by_hand(key):
    w = np.asarray(I.dirac(scale=2.0)(key, (3, 3, 2, 4)))
    expected = np.zeros((3, 3, 2, 4))
    expected[1, 1, 0, 0] = expected[1, 1, 1, 1] = 2.0
    np.testing.assert_array_equal(w, expected)
    np.testing.assert_array_equal(I.identity(scale=2.0)(key, (3, 3, 2, 4)), expected)
    np.testing.assert_array_equal(I.dirac()(key, (3, 5)), np.eye(3, 5))  # rank 2: I
    w = np.asarray(I.dirac(groups=2)(key, (4, 4)))  # rank 2 with groups: I per group
    np.testing.assert_array_equal(w[:, :2], np.eye(4, 2))
    np.testing.assert_array_equal(w[:, 2:], np.eye(4, 2))
    assert I.dirac().base == I.identity().base  # one sweep family


def test_identity_conv_kernel_passes_the_input_through(key):
    # the old identity put I at every tap (a box filter); the centre tap alone is identity
    x = jax.random.normal(key, (2, 7, 9, 4))  # NHWC
    for kh, kw in [(3, 3), (5, 3), (1, 1)]:
        kernel = I.identity()(key, (kh, kw, 4, 4))
        y = jax.lax.conv_general_dilated(
            x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        np.testing.assert_allclose(y, x, atol=1e-6)
    conv = nnx.Conv(4, 4, (3, 3), kernel_init=I.dirac(), use_bias=False, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(conv(x), x, atol=1e-6)


def test_dirac_errors(key):
    with pytest.raises(ValueError, match=r"groups=3 must divide the out channels.*8 on axis -1"):
        I.dirac(groups=3)(key, (3, 3, 4, 8))
    with pytest.raises(ValueError, match=r"groups=3 must divide.*8 on axis 0 \(layout 'torch'\)"):
        I.dirac(groups=3, convention="torch").moments((8, 4, 3, 3))
    with pytest.raises(ValueError, match=r"groups must be an int >= 1; got 0"):
        I.dirac(groups=0)
    for groups in (1.5, True):  # a wrong type
        with pytest.raises(TypeError, match=r"groups must be an int >= 1"):
            I.dirac(groups=groups)
    with pytest.raises(
        ValueError, match=r"layout='flx' is not valid; choose one of 'flax', 'torch'"
    ):
        I.get("dirac(layout='flx')")


# ------------------------------------------------------------- orthogonal, torch convention


@pytest.mark.parametrize("torch_shape", [(32, 16, 3, 3), (300, 4, 3, 3), (40, 60), (60, 40)])
def test_orthogonal_torch_convention_flattens_like_torch(torch_shape, key):
    init = I.orthogonal(scale=1.5, convention="torch")
    assert init.base == Orthogonal(column_axis=0)
    m = np.asarray(init(key, torch_shape), np.float64).reshape(torch_shape[0], -1)
    rows, cols = m.shape
    gram = m @ m.T if rows <= cols else m.T @ m  # dim 0 against the flattened rest
    np.testing.assert_allclose(gram, 2.25 * np.eye(min(rows, cols)), atol=1e-4)
    assert init.variance(torch_shape) == pytest.approx(2.25 / max(rows, cols), rel=1e-12)
    assert (m**2).mean() == pytest.approx(init.variance(torch_shape), rel=1e-4)
    np.testing.assert_array_equal(
        init(key, torch_shape), I.orthogonal(scale=1.5, column_axis=0)(key, torch_shape)
    )
    # torch's orthogonal_(w, gain=1.5) flattened the same way: the same structure, min(rows,
    # cols) singular values all 1.5 (its smaller side orthonormal), and the same mean square
    [t] = [c for c in TORCH["orthogonal"] if tuple(c["shape"]) == torch_shape]
    assert (t["gain"], t["rows"], t["cols"]) == (1.5, rows, cols)
    ours = np.linalg.svd(m, compute_uv=False)
    np.testing.assert_allclose(t["singular_values"], 1.5, rtol=ORTHOGONAL_SV_RTOL)
    np.testing.assert_allclose(ours, t["singular_values"], rtol=ORTHOGONAL_SV_RTOL)
    assert t["mean_square"] == pytest.approx(init.variance(torch_shape), rel=1e-4)


def test_orthogonal_convention_and_layout_choose_the_column_axis(key):
    last, first = Orthogonal(column_axis=-1), Orthogonal(column_axis=0)
    assert I.orthogonal().base == last
    assert I.orthogonal(convention="keras").base == last
    assert I.orthogonal(convention="torch", layout="flax").base == last
    assert I.orthogonal(layout="torch").base == first
    assert I.orthogonal(convention="torch", column_axis=-1).base == last
    assert I.get("orthogonal(convention='torch')").spec == "orthogonal(convention='torch')"
    with pytest.raises(ValueError, match=r"give column_axis=0 or layout='flax', not both"):
        I.orthogonal(column_axis=0, layout="flax")
    with pytest.raises(ValueError, match=r"convention='mxnet' is not valid"):
        I.get("orthogonal(convention='mxnet')")


# ----------------------------------------------------------------- sparse, torch convention


def _zeros_per_column(w):
    return (np.asarray(w) == 0).sum(axis=0)


def test_sparse_torch_convention_zeroes_like_torch(key):
    # torch.nn.init.sparse_(torch.empty(50, 100), sparsity=0.3, std=0.1), stored
    t = TORCH["sparse"]
    (rows, cols), s = t["shape"], t["sparsity"]  # torch's (rows, cols) = (out, in)
    assert ((rows, cols), s, t["std_arg"]) == ((50, 100), 0.3, 0.1)
    expected = math.ceil(s * rows)
    t_zeros = np.asarray(t["zeros_per_column"])
    np.testing.assert_array_equal(t_zeros, expected)  # torch's definition
    assert np.ptp(t["zeros_per_row"]) > 0  # along dim 0 only: rows differ
    assert t["distinct_zero_patterns"] > cols // 2  # random rows per column
    assert t["std"] == pytest.approx(0.1, rel=TORCH_SCALE_RTOL)  # what torch multiplies by
    ours = np.asarray(I.sparse(sparsity=s, stddev=0.1, convention="torch")(key, (rows, cols)))
    np.testing.assert_array_equal(_zeros_per_column(ours), t_zeros)
    # torch's distribution on Flax's (in, out) layout: the same pattern, transposed
    flax = np.asarray(
        I.sparse(sparsity=s, stddev=0.1, convention="torch", layout="flax")(key, (cols, rows))
    )
    np.testing.assert_array_equal(_zeros_per_column(flax.T), t_zeros)
    for w in (ours, flax.T):
        assert np.ptp((w == 0).sum(axis=1)) > 0
        # random rows per column, not the same rows everywhere
        assert len({tuple(np.flatnonzero(c == 0)) for c in w.T}) > cols // 2
        nonzero = w[w != 0].astype(np.float64)
        assert nonzero.size == t["nonzero_n"]
        rtol = variance_rtol(nonzero.size, "normal")
        np.testing.assert_allclose(nonzero.var(), t["std"] ** 2, rtol=rtol)
        rtol = two_sample_variance_rtol(nonzero.size, "normal")  # against torch's sample
        np.testing.assert_allclose(nonzero.var(), t["nonzero_var"], rtol=rtol)
    var = t["std"] ** 2 * (1 - expected / rows)
    assert I.sparse(sparsity=s, stddev=0.1, convention="torch").variance(
        (rows, cols)
    ) == pytest.approx(var, rel=2 * TORCH_SCALE_RTOL)
    assert I.sparse(sparsity=s, stddev=0.1, convention="torch", layout="flax").variance(
        (cols, rows)
    ) == pytest.approx(var, rel=2 * TORCH_SCALE_RTOL)


def test_sparse_axes_per_convention_and_layout(key):
    w = np.asarray(I.sparse(sparsity=0.5)(key, (10, 6)))  # jax: each unit's 10 inputs
    np.testing.assert_array_equal((w == 0).sum(axis=0), 5)
    w = np.asarray(I.sparse(sparsity=0.5, layout="torch")(key, (6, 10)))  # the same, (out, in)
    np.testing.assert_array_equal((w == 0).sum(axis=1), 5)
    w = np.asarray(I.sparse(sparsity=0.5, convention="torch")(key, (8, 4, 3)))  # along dim 0
    np.testing.assert_array_equal((w == 0).sum(axis=0), np.full((4, 3), 4))
    assert I.sparse().base == Sparse(sparsity=0.9, axis=-2)
    assert I.sparse(convention="torch", layout="flax").base == Sparse(sparsity=0.9, axis=-1)


# -------------------------------------------------------------- the layout trap


def test_torch_convention_on_flax_layout_has_torch_variance(key):
    fan_in, fan_out = LAYOUT_SHAPE
    init = I.he_normal(convention="torch", layout="flax")
    assert init.spec == "he_normal(convention='torch', layout='flax')"
    assert I.get(init.spec) == init
    assert init.variance(LAYOUT_SHAPE) == pytest.approx(2 / fan_in, rel=1e-12)
    assert I.he_normal(convention="torch").variance(LAYOUT_SHAPE) == pytest.approx(2 / fan_out)
    w = np.asarray(init(key, LAYOUT_SHAPE), np.float64)
    n = w.size
    np.testing.assert_allclose(w.var(), 2 / fan_in, rtol=variance_rtol(n, "normal"))
    assert np.abs(w).max() > 3.5 * math.sqrt(2 / fan_in)  # torch's: untruncated
    # as a Flax layer's kernel
    layer = nnx.Linear(fan_in, fan_out, kernel_init=init, rngs=nnx.Rngs(0))
    kernel = np.asarray(layer.kernel.get_value(), np.float64)
    np.testing.assert_allclose(kernel.var(), 2 / fan_in, rtol=variance_rtol(n, "normal"))
    # conv kernels: (kh, kw, in, out) read like torch's (out, in, kh, kw)
    assert init.variance((3, 3, 16, 32)) == I.he_normal(convention="torch").variance((32, 16, 3, 3))
    assert I.he_normal(layout="torch").variance((fan_out, fan_in)) == pytest.approx(2 / fan_in)


def _kurtosis(x):
    c = np.asarray(x, np.float64) - np.mean(x)
    return (c**4).mean() / (c**2).mean() ** 2


def test_torch_convention_on_flax_layout_matches_kaiming_normal(key):
    # torch.nn.init.kaiming_normal_(nn.Linear(784, 256).weight, a, nonlinearity=...), stored
    fan_in, fan_out = LAYOUT_SHAPE
    samples = TORCH["kaiming_normal_samples"]
    assert [(t["a"], t["nonlinearity"]) for t in samples] == [
        (0.0, "leaky_relu"),  # kaiming_normal_'s defaults
        (0.2, "leaky_relu"),
        (0.0, "tanh"),
    ]
    for t in samples:
        assert (t["shape"], t["mode"], t["fan"]) == ([fan_out, fan_in], "fan_in", fan_in)
        std = t["gain"] / math.sqrt(t["fan"])  # torch's formula, from its own fan and gain
        assert t["std"] == pytest.approx(std, rel=TORCH_SCALE_RTOL)  # what it multiplied by
        for layout, shape in [("torch", (fan_out, fan_in)), ("flax", LAYOUT_SHAPE)]:
            init = I.he_normal(
                a=t["a"], nonlinearity=t["nonlinearity"], convention="torch", layout=layout
            )
            assert init.moments(shape) == pytest.approx((0.0, std**2), rel=1e-12)
            assert init.base == Normal()  # untruncated, as kaiming_normal_
        # torch's sample has that variance, mean 0 and untruncated tails
        np.testing.assert_allclose(t["var"], std**2, rtol=variance_rtol(t["n"], "normal"))
        assert abs(t["mean"]) <= mean_atol(t["n"], std)
        assert max(-t["min"], t["max"]) > 3.5 * std
    # jaxinit's draw against torch's: the same variance and the same (normal) shape
    t = samples[0]
    init = I.he_normal(convention="torch", layout="flax")
    w = np.asarray(init(key, LAYOUT_SHAPE), np.float64)
    assert w.size == t["n"]
    np.testing.assert_allclose(w.var(), t["var"], rtol=two_sample_variance_rtol(w.size, "normal"))
    assert abs(_kurtosis(w) - t["kurtosis"]) <= two_sample_kurtosis_atol(w.size)


def test_layout_on_every_scheme(key):
    shape = (100, 40)
    for name in [
        "glorot_normal",
        "glorot_uniform",
        "he_normal",
        "he_uniform",
        "lecun_normal",
        "lecun_uniform",
        "torch_linear_default",
        "variance_scaling",
    ]:
        flax = I.get(f"{name}(convention='torch', layout='flax')")
        torch_layout = I.get(f"{name}(convention='torch')")
        assert flax.moments(shape) == torch_layout.moments(shape[::-1])
        assert flax.base == torch_layout.base
    # the uniform torch default is one distribution in both layouts: the same bits
    np.testing.assert_array_equal(
        I.torch_linear_default(convention="torch", layout="flax")(key, shape),
        I.torch_linear_default()(key, shape),
    )
    with pytest.raises(ValueError, match=r"give layout='flax' or in_axis/out_axis, not both"):
        I.he_normal(convention="torch", layout="flax", in_axis=0)
    with pytest.raises(
        ValueError, match=r"layout='jax' is not valid; choose one of 'flax', 'torch'"
    ):
        I.get("he_normal(layout='jax')")


# -------------------------------------------------------------- registry, CLI, engine


def test_registered_listed_and_drawn_by_the_engine(key):
    from jaxinit.cli import initializer_table

    for spec in ["dirac", "dirac(groups=2, convention='torch')", "delta_orthogonal(scale=1.5)"]:
        assert I.get(spec).spec == spec
    table = initializer_table(fan_in=100, fan_out=10)
    assert any(line.startswith("dirac ") for line in table.splitlines())
    assert any(line.startswith("delta_orthogonal ") for line in table.splitlines())
    # a sweep's layers are dense: the engine draws these kinds through draw()
    inits = [I.delta_orthogonal(), I.dirac(groups=2), I.sparse(convention="torch", layout="flax")]
    bases = [i.base for i in inits] + [Normal()]
    shape = (16, 8)
    families = draw_families(bases, key, shape)
    for i, init in enumerate(inits):
        np.testing.assert_array_equal(families[i], draw(init.base, key, shape, jnp.float32))
        np.testing.assert_array_equal(
            families[i] * float(init.coeffs(shape, jnp.float32)[0]), init(key, shape)
        )
    assert inits[0].base == DeltaOrthogonal(column_axis=-1)
    assert isinstance(inits[0].base, QR)  # the engine's QR rules (one device) apply
    grid = ji.Grid(
        inits=["delta_orthogonal", "dirac", "orthogonal(convention='torch')"],
        activations=["tanh"],
        depth=2,
        width=8,
        seeds=1,
        batch_size=4,
    )
    assert len(grid.inits) == 3
    with pytest.raises(ValueError, match=r"cannot draw this grid's layer.*groups=3 must divide"):
        ji.Grid(
            inits=["dirac(groups=3)"], activations=["tanh"], depth=2, width=8, seeds=1, batch_size=4
        )
