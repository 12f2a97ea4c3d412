"""The empirical NTK of a finite Flax model (``ji.theory.empirical_ntk``): exact on a linear
model, and tending to the infinite-width kernels of the MLP and the zoo's CNN as width grows."""

import functools

import jax
import numpy as np
import pytest
from _tolerances import (
    EMPIRICAL_CNN_DIST,
    EMPIRICAL_FALL,
    EMPIRICAL_MLP_DIST,
    EMPIRICAL_SEEDS,
    MODEL_ATOL,
    MODEL_RTOL,
)
from flax import nnx

import jaxinit as ji
from jaxinit._jax_compat import compiled_count
from jaxinit.theory import _empirical


def test_a_linear_model_s_kernel_is_exact():
    """f = x W + b: J_W = x, J_b = 1, so Θ = σ_w² x·x'/d_in + σ_b² whatever the weights
    (NTK parameterization), and x·x' + 1 as parameterized."""
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    net = nnx.Linear(5, 3, rngs=nnx.Rngs(0))  # 3 outputs: each unit's kernel is the same
    ntk = ji.theory.empirical_ntk(net, x, sigma_w2=1.7, sigma_b2=0.3)
    np.testing.assert_allclose(ntk, 1.7 * x @ x.T / 5 + 0.3, rtol=1e-5, atol=1e-6)
    std = ji.theory.empirical_ntk(net, x, x[:2], parameterization="standard")
    np.testing.assert_allclose(std, x @ x[:2].T + 1.0, rtol=1e-5, atol=1e-5)
    # an attention projection (d, heads, head_dim) has fan-in d, from its module, not d·heads
    proj = nnx.LinearGeneral(5, (2, 3), use_bias=False, rngs=nnx.Rngs(0))
    ntk = ji.theory.empirical_ntk(proj, x, sigma_w2=1.7)
    np.testing.assert_allclose(ntk, 1.7 * x @ x.T / 5, rtol=1e-5, atol=1e-6)


class _MLP(nnx.Module):
    """Dense -> relu -> Dense -> relu -> Dense(1), He weights, zero biases."""

    def __init__(self, rngs, width: int, d_in: int):
        he = nnx.initializers.variance_scaling(2.0, "fan_in", "normal")
        self.a = nnx.Linear(d_in, width, kernel_init=he, rngs=rngs)
        self.b = nnx.Linear(width, width, kernel_init=he, rngs=rngs)
        self.out = nnx.Linear(width, 1, kernel_init=he, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.b(nnx.relu(self.a(x)))))


class _Scale(nnx.Module):
    """x ↦ 2 x: no parameters."""

    def __call__(self, x):
        return 2.0 * x


class _Doubled(nnx.Module):
    """2 (x W + b), holding an unhashable constant (a dict): its graph cannot key a program."""

    def __init__(self, rngs):
        self.linear = nnx.Linear(3, 2, rngs=rngs)
        self.config = {"factor": [2.0]}

    def __call__(self, x):
        return self.config["factor"][0] * self.linear(x)


class _Checked(nnx.Module):
    """2 (x W + b) after a check that reads the input's values: it cannot be traced by jit."""

    def __init__(self, rngs):
        self.linear = nnx.Linear(3, 2, rngs=rngs)

    def __call__(self, x):
        if not np.isfinite(float(abs(x).max())):
            raise ValueError("the inputs are not finite")
        return 2.0 * self.linear(x)


def test_one_program_for_every_seed_and_sigma_equal_to_the_eager_sum():
    """One compiled program per model structure and input shapes (seeds, σ_w² and σ_b² are
    data), equal to the same sum run op by op within float32 rounding (MODEL_RTOL: the same
    dots and norms, their sums ordered by XLA as it fuses them)."""
    x = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)

    def make(seed):  # a LayerNorm's scale counts as is, its bias as a bias
        rngs = nnx.Rngs(seed)
        return nnx.Sequential(nnx.Linear(8, 16, rngs=rngs), nnx.LayerNorm(16, rngs=rngs),
                              nnx.tanh, nnx.Linear(16, 2, rngs=rngs))  # fmt: skip

    before = compiled_count(_empirical._ntk_jit)
    nets = [make(s) for s in range(3)]
    got = [
        ji.theory.empirical_ntk(n, x, sigma_w2=1.0 + s, sigma_b2=0.1 * s)
        for s, n in enumerate(nets)
    ]
    with jax.disable_jit():
        want = ji.theory.empirical_ntk(nets[2], x, sigma_w2=3.0, sigma_b2=0.2)
    np.testing.assert_allclose(got[2], want, rtol=MODEL_RTOL, atol=MODEL_ATOL)
    assert compiled_count(_empirical._ntk_jit) - before == 1
    # the zoo's models hold their activation's function: gelu's is one object for every seed
    before = compiled_count(_empirical._ntk_jit)
    for s in range(3):
        net = ji.models.MLP(nnx.Rngs(s), d_in=8, width=4, depth=2, activation="gelu")
        ji.theory.empirical_ntk(net, x, sigma_w2=2.0)
    assert compiled_count(_empirical._ntk_jit) - before == 1
    # a model whose graph holds an unhashable constant, or that reads its inputs' values,
    # runs op by op: Θ = 4 σ_w² x·x'/d_in
    for model in (_Doubled, _Checked):
        ntk = ji.theory.empirical_ntk(model(nnx.Rngs(0)), np.eye(3, dtype=np.float32), sigma_w2=1.5)
        np.testing.assert_allclose(
            ntk, 4 * 1.5 / 3 * np.eye(3), rtol=1e-6, atol=1e-7, err_msg=model.__name__
        )


def _distance(make, x, limit) -> float:
    """Mean over EMPIRICAL_SEEDS networks of ‖Θ̂ - Θ‖_F / ‖Θ‖_F."""
    return float(
        np.mean([
            np.linalg.norm(np.asarray(ji.theory.empirical_ntk(make(s), x, sigma_w2=2.0)) - limit)
            / np.linalg.norm(limit)
            for s in range(EMPIRICAL_SEEDS)
        ])
    )  # fmt: skip


def test_the_mlp_s_kernel_tends_to_the_limit_as_width_grows():
    x = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    limit = np.asarray(ji.theory.kernels("relu", x, depth=3, sigma_w2=2.0, sigma_b2=0.0).ntk)
    narrow = _distance(lambda s: _MLP(nnx.Rngs(s), 64, 8), x, limit)
    wide = _distance(lambda s: _MLP(nnx.Rngs(s), 1024, 8), x, limit)
    assert wide < EMPIRICAL_MLP_DIST
    assert narrow / wide > EMPIRICAL_FALL  # 1/sqrt(width): 4 for 16x the width


def test_the_zoo_cnn_from_a_model_grid_is_near_its_limit():
    """A ModelGrid's network (``grid.build``) at 256 channels against ``conv_kernels``."""
    x = np.random.default_rng(0).normal(size=(3, 4, 4, 2)).astype(np.float32)
    make = functools.partial(ji.models.CNN, in_channels=2, channels=256, depth=2, classes=1,
                             padding="CIRCULAR")  # fmt: skip
    grid = ji.ModelGrid(model=make, inits=["he_normal"], seeds=EMPIRICAL_SEEDS,
                        inputs="gaussian", input_shape=x.shape)  # fmt: skip
    limit = np.asarray(
        ji.theory.conv_kernels("relu", x, depth=2, sigma_w2=2.0, sigma_b2=0.0,
                               padding="CIRCULAR").ntk
    )  # fmt: skip
    assert _distance(lambda s: grid.build(s, init="he_normal"), x, limit) < EMPIRICAL_CNN_DIST


def test_the_zoo_resnet_read_by_a_head_is_near_its_limit():
    """The zoo's ResNet without a norm (ModelGrid networks at width 1024) against
    ``residual_kernels``' stream read by a linear head: Θ_f = σ_w² (K + Θ) (the head's
    kernel term and its backpropagated one), within EMPIRICAL_MLP_DIST."""
    x = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    make = functools.partial(ji.models.ResNet, d_in=8, width=1024, depth=2, alpha=0.5,
                             norm=None, classes=1)  # fmt: skip
    grid = ji.ModelGrid(model=make, inits=["he_normal"], seeds=EMPIRICAL_SEEDS,
                        inputs="gaussian", input_shape=x.shape)  # fmt: skip
    k = ji.theory.residual_kernels("relu", x, depth=2, alpha=0.5, sigma_w2=2.0, sigma_b2=0.0,
                                   norm=None)  # fmt: skip
    limit = 2.0 * (np.asarray(k.nngp) + np.asarray(k.ntk))
    assert _distance(lambda s: grid.build(s, init="he_normal"), x, limit) < EMPIRICAL_MLP_DIST


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            dict(parameterization="mup", sigma_w2=1.0),
            ValueError,
            "parameterization='mup' is not valid",
        ),
        (dict(), ValueError, "needs sigma_w2"),
        (dict(sigma_w2=0.0), ValueError, "sigma_w2 must be a finite real number > 0"),
        (dict(model="net", sigma_w2=1.0), TypeError, "model must be an nnx.Module; got str"),
        (
            dict(model="no params", sigma_w2=1.0),
            ValueError,
            "no nnx.Param to differentiate; got _Scale",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    model = kwargs.pop("model", nnx.Linear(2, 1, rngs=nnx.Rngs(0)))
    model = _Scale() if model == "no params" else model
    with pytest.raises(error, match=match):
        ji.theory.empirical_ntk(model, np.ones((2, 2), np.float32), **kwargs)
