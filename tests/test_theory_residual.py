"""Mean field of the zoo's residual network (``ji.theory.predict`` of a ModelGrid) against its
sweep, and the recurrence's closed forms (Yang & Schoenholz 2017; Hayou et al. 2021)."""

import functools

import numpy as np
import pytest
from _references import assert_kernels_match, nt_kernels
from _tolerances import RESIDUAL_BIAS_RTOL, Z_SCORE

import jaxinit as ji

WIDTH, SEEDS, BATCH, D_IN = 128, 16, 128, 16


def _grid(rule=None, **kw):
    model = functools.partial(ji.models.ResNet, d_in=D_IN, width=WIDTH, depth=4, **kw)
    extra = {} if rule is None else {"rule": rule}
    return ji.ModelGrid(model=model, inits=["he_normal", "glorot_normal"], seeds=SEEDS,
                        inputs="gaussian", input_shape=(BATCH, D_IN), **extra)  # fmt: skip


@pytest.mark.parametrize(
    "kw",
    [
        dict(alpha=0.5),  # pre-LN: linear growth
        dict(alpha=1.0, norm="post"),
        dict(alpha=0.3, norm=None),  # no norm, relu: geometric growth
        dict(alpha=1.0, norm=None, activation="tanh"),  # no norm, bounded φ
        dict(alpha=0.5, classes=10),  # a linear head reads the stream
    ],
    ids=["pre-ln", "post-ln", "no-norm-relu", "no-norm-tanh", "pre-ln-head"],
)
def test_every_captured_layer_s_variance_matches_the_sweep(kw):
    """Each layer's seed mean against theory, held to Z_SCORE standard errors of that mean
    (from the seeds' own spread) plus the finite-width bias RESIDUAL_BIAS_RTOL."""
    grid = _grid(**kw)
    res, theory = ji.sweep(grid, progress=False), ji.theory.predict(grid)
    assert theory.dims == res.dims
    assert theory.attrs["layers"] == res.attrs["layers"]
    assert isinstance(theory, ji.theory.Prediction)
    measured = res.pre_var  # (init, seed, layer)
    mean = measured.mean(1)
    se = measured.std(1, ddof=1) / np.sqrt(SEEDS)
    want = theory.pre_var[:, 0]
    assert np.isfinite(want).all()
    np.testing.assert_array_less(np.abs(mean - want), Z_SCORE * se + RESIDUAL_BIAS_RTOL * want)


def test_the_recurrence_s_closed_forms():
    """Pre-LN relu under He: q_L = q_0 + 2 α² L (linear in depth); without a norm, relu
    grows geometrically, q_{l+1} = q_l (1 + α² σ_in² σ_out² / 2)."""
    pre = ji.theory.predict(_grid(alpha=0.5)).pre_var[0, 0]
    layers = ji.theory.predict(_grid(alpha=0.5)).attrs["layers"]
    blocks = [pre[layers.index(f"blocks/{i}")] for i in range(4)]
    np.testing.assert_allclose(blocks, [2 + 2 * 0.25 * (i + 1) for i in range(4)], rtol=1e-5)
    free = ji.theory.predict(_grid(alpha=0.3, norm=None))
    q = free.pre_var[0, 0]
    names = free.attrs["layers"]
    stream = [q[names.index("inp")]] + [q[names.index(f"blocks/{i}")] for i in range(4)]
    ratio = np.array(stream[1:]) / np.array(stream[:-1])
    np.testing.assert_allclose(ratio, 1 + 0.09 * 2 * 2 / 2, rtol=1e-5)


def test_a_kernel_the_rule_leaves_keeps_the_zoo_s_init():
    """A zero branch kept out of the grid's init (the rule): every block is the identity,
    the stream stays at the input layer's 2; with the grid's init on it, it grows."""
    keep = ji.models.RESIDUAL_KEEP_ZERO
    zero = ji.theory.predict(_grid(alpha=1.0, zero_branch=True,
                                   rule=ji.models.kernels(exclude=keep)))  # fmt: skip
    names = zero.attrs["layers"]
    assert zero.pre_var[0, 0, names.index("(model)")] == pytest.approx(2.0, rel=1e-5)
    assert zero.pre_var[0, 0, names.index("blocks/0/fc_out")] == 0.0
    grown = ji.theory.predict(_grid(alpha=1.0, zero_branch=True))
    assert grown.pre_var[0, 0, names.index("(model)")] == pytest.approx(10.0, rel=1e-5)


def test_models_without_a_theory_are_refused():
    mlp = ji.ModelGrid(model=functools.partial(ji.models.MLP, d_in=4, width=8, depth=2),
                       inits=["he_normal"], seeds=1, inputs="gaussian", input_shape=(2, 4))  # fmt: skip
    with pytest.raises(ValueError, match=r"knows the zoo's residual network .* and CNN .* got MLP"):
        ji.theory.predict(mlp)
    with pytest.raises(
        ValueError,
        match=r"on 'inp': weight initializer 'ones' has mean 1.0 .* needs zero-mean weights",
    ):
        ji.theory.predict(
            ji.ModelGrid(model=functools.partial(ji.models.ResNet, d_in=4, width=8, depth=1),
                         inits=["ones"], seeds=1, inputs="gaussian", input_shape=(2, 4)))  # fmt: skip
    with pytest.raises(TypeError, match="predict takes a jaxinit Grid or ModelGrid"):
        ji.theory.predict("resnet")


# -- the residual stream's kernels against neural-tangents (stored) -----------------------


@pytest.mark.parametrize(
    "case",
    nt_kernels()["residual"],
    ids=lambda c: f"{c['activation']}-{c['norm']}-a{c['alpha']}" + ("-cross" if c["cross"] else ""),
)
def test_residual_kernels_equal_neural_tangents(case):
    ref = nt_kernels()
    x1 = np.asarray(ref["residual_x1"], np.float32)
    x2 = np.asarray(ref["residual_x2"], np.float32) if case["cross"] else None
    k = ji.theory.residual_kernels(
        case["activation"], x1, x2, depth=case["depth"], alpha=case["alpha"],
        sigma_w2=ref["sigma_w2"], sigma_b2=ref["sigma_b2"], norm=case["norm"],
    )  # fmt: skip
    assert_kernels_match(k, case)


def test_residual_kernels_with_a_zero_branch_are_the_input_layer_s():
    """α = 0: every block is the identity, the kernels are the input Dense layer's."""
    x = np.random.default_rng(1).normal(size=(3, 6)).astype(np.float32)
    res = ji.theory.residual_kernels("tanh", x, depth=4, alpha=0.0, sigma_w2=1.3, sigma_b2=0.2,
                                     norm=None)  # fmt: skip
    first = ji.theory.kernels("tanh", x, depth=1, sigma_w2=1.3, sigma_b2=0.2)
    np.testing.assert_allclose(res.nngp, first.nngp, rtol=1e-6)
    np.testing.assert_allclose(res.ntk, first.ntk, rtol=1e-6)
    with pytest.raises(ValueError, match=r"norm=.mid. is not valid; choose one of .pre., .post."):
        ji.theory.residual_kernels("tanh", x, depth=1, alpha=1.0, sigma_w2=1.0, sigma_b2=0.0,
                                   norm="mid")  # fmt: skip


def test_residual_kernels_take_a_zero_input_and_the_zoo_s_alpha():
    x = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]], np.float32)
    k = ji.theory.residual_kernels("relu", x, depth=2, alpha="1/sqrt(depth)", sigma_w2=2.0,
                                   sigma_b2=0.0)  # fmt: skip
    assert np.isfinite(k.nngp).all()
    assert np.isfinite(k.ntk).all()
    assert float(k.nngp[1, 1]) == 0.0  # a zero input stays zero, as LayerNorm's ε keeps it
    same = ji.theory.residual_kernels("relu", x, depth=2, alpha=2**-0.5, sigma_w2=2.0,
                                      sigma_b2=0.0)  # fmt: skip
    np.testing.assert_array_equal(k.nngp, same.nngp)
    cross = ji.theory.residual_kernels("relu", x, x[:1], depth=2, alpha=0.7, sigma_w2=2.0,
                                       sigma_b2=0.0)  # fmt: skip
    full = ji.theory.residual_kernels("relu", x, depth=2, alpha=0.7, sigma_w2=2.0, sigma_b2=0.0)
    np.testing.assert_allclose(cross.nngp, full.nngp[:, :1], rtol=1e-6)
