"""Conv kernels (delta_orthogonal, dirac, identity) and the torch convention on both layouts.

jax/Flax conv kernels are (spatial..., in, out), torch's (out, in, spatial...);
``to_flax`` transposes a torch kernel into Flax's layout.
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
from tests._tolerances import LAYOUT_SHAPE, two_sample_variance_rtol, variance_rtol

I = ji.initializers


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


@pytest.mark.parametrize(("torch_shape", "groups"), DIRAC_CASES, ids=str)
def test_dirac_matches_torch(torch_shape, groups, key):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init.dirac_(torch.empty(torch_shape), groups).numpy()
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
    torch = pytest.importorskip("torch")
    t = torch.nn.init.orthogonal_(torch.empty(torch_shape), gain=1.5).numpy().astype(np.float64)
    t = t.reshape(rows, -1)
    t_gram = t @ t.T if rows <= cols else t.T @ t  # torch's matrix has the same structure
    np.testing.assert_allclose(t_gram, 2.25 * np.eye(min(rows, cols)), atol=1e-4)
    assert (t**2).mean() == pytest.approx(init.variance(torch_shape), rel=1e-4)


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
    torch = pytest.importorskip("torch")
    rows, cols, s = 50, 100, 0.3  # torch's (rows, cols) = (out, in)
    expected = math.ceil(s * rows)
    t = torch.nn.init.sparse_(torch.empty(rows, cols), sparsity=s, std=0.1).numpy()
    np.testing.assert_array_equal(_zeros_per_column(t), expected)  # torch's definition
    ours = np.asarray(I.sparse(sparsity=s, stddev=0.1, convention="torch")(key, (rows, cols)))
    np.testing.assert_array_equal(_zeros_per_column(ours), _zeros_per_column(t))
    # torch's distribution on Flax's (in, out) layout: the same pattern, transposed
    flax = np.asarray(
        I.sparse(sparsity=s, stddev=0.1, convention="torch", layout="flax")(key, (cols, rows))
    )
    np.testing.assert_array_equal(_zeros_per_column(flax.T), _zeros_per_column(t))
    for w in (ours, flax.T):
        # random rows per column, not the same rows everywhere
        assert len({tuple(np.flatnonzero(c == 0)) for c in w.T}) > cols // 2
        nonzero = w[w != 0]
        np.testing.assert_allclose(nonzero.var(), 0.01, rtol=variance_rtol(nonzero.size, "normal"))
    var = 0.01 * (1 - expected / rows)
    assert I.sparse(sparsity=s, stddev=0.1, convention="torch").variance(
        (rows, cols)
    ) == pytest.approx(var)
    assert I.sparse(sparsity=s, stddev=0.1, convention="torch", layout="flax").variance(
        (cols, rows)
    ) == pytest.approx(var)


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


def test_torch_convention_on_flax_layout_matches_kaiming_normal(key):
    torch = pytest.importorskip("torch")
    fan_in, fan_out = LAYOUT_SHAPE
    t = torch.empty(fan_out, fan_in)  # nn.Linear(784, 256).weight
    torch.manual_seed(0)
    torch.nn.init.kaiming_normal_(t)
    fan = torch.nn.init._calculate_correct_fan(t, "fan_in")
    std = torch.nn.init.calculate_gain("leaky_relu", 0) / math.sqrt(fan)
    init = I.he_normal(convention="torch", layout="flax")
    assert init.moments(LAYOUT_SHAPE) == pytest.approx((0.0, std**2), rel=1e-12)
    assert init.base == Normal()  # untruncated, as kaiming_normal_
    w = np.asarray(init(key, LAYOUT_SHAPE), np.float64)
    t = t.numpy().astype(np.float64)
    rtol = two_sample_variance_rtol(w.size, "normal")
    np.testing.assert_allclose(w.var(), t.var(), rtol=rtol)
    for a, nl in [(0.2, "leaky_relu"), (0.0, "tanh")]:  # other gains too, moments exactly
        t2 = torch.empty(fan_out, fan_in)
        std = torch.nn.init.calculate_gain(nl, a) / math.sqrt(fan_in)
        ours = I.he_normal(a=a, nonlinearity=nl, convention="torch", layout="flax")
        assert ours.variance(LAYOUT_SHAPE) == pytest.approx(std**2, rel=1e-12)
        torch.nn.init.kaiming_normal_(t2, a=a, nonlinearity=nl)
        np.testing.assert_allclose(
            t2.numpy().var(), ours.variance(LAYOUT_SHAPE), rtol=variance_rtol(t2.numel(), "normal")
        )


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
        batch=4,
    )
    assert len(grid.inits) == 3
    with pytest.raises(ValueError, match=r"cannot draw this grid's layer.*groups=3 must divide"):
        ji.Grid(inits=["dirac(groups=3)"], activations=["tanh"], depth=2, width=8, seeds=1, batch=4)
