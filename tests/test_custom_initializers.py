"""Your own initializer: a plain jax initializer ``(key, shape, dtype) -> array`` in a Grid,
a TrainGrid and theory, through ``ji.initializers.custom``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit as ji
from jaxinit.initializers._bases import CUSTOM_ENTRIES, estimated_moments
from tests._network import backward, forward_stats, network
from tests._tolerances import ENGINE_RTOL


def laplace(key, shape, dtype=jnp.float32):
    """Laplace weights of variance 1/fan_in (Var Laplace(b) = 2b²): no jaxinit draw is this."""
    return jax.random.laplace(key, shape, dtype) * jnp.sqrt(0.5 / shape[0]).astype(dtype)


def test_custom_is_the_function_with_a_label_and_moments():
    init = ji.initializers.custom(laplace)
    assert init.spec == "laplace"  # the function's name
    key = jax.random.key(2)
    np.testing.assert_array_equal(init(key, (30, 20)), laplace(key, (30, 20)))
    assert init(key, (30, 20), jnp.bfloat16).dtype == jnp.bfloat16
    # estimated from 2¹⁷ entries: the variance within 5 standard errors (√(2/n)·(1 + κ/2),
    # Laplace's excess kurtosis κ = 3), the mean reported as 0 within 4 of its own
    mean, var = init.moments((256, 64))
    assert mean == 0.0
    assert var == pytest.approx(1 / 256, rel=5 * np.sqrt(2 / CUSTOM_ENTRIES) * 2.5)
    declared = ji.initializers.custom(laplace, name="lap", variance=lambda s: 1 / s[0])
    assert declared.variance((256, 64)) == 1 / 256
    assert declared.spec == "lap"


def test_jaxs_own_initializer_in_a_grid_is_jaxinits_within_rounding():
    """jax's he_normal draws what jaxinit's does from the same key (bitwise, eagerly); as a
    custom initializer it takes its own draw, where jaxinit's shares the family's and scales
    it inside the program (XLA may fuse the scale differently): the same networks to float32
    rounding (ENGINE_RTOL)."""
    jax_he = ji.initializers.custom(jax.nn.initializers.he_normal(), name="jax_he")
    grid = ji.Grid(inits=[jax_he, "he_normal"], activations=["tanh", "relu"], depth=3,
                   width=16, seeds=2, batch_size=8)  # fmt: skip
    res = ji.sweep(grid, progress=False)
    assert res.coords["init"] == ("jax_he", "he_normal")
    for field in ("pre_var", "post_var", "grad_var"):
        np.testing.assert_allclose(
            res.sel(init="jax_he")[field], res.sel(init="he_normal")[field], rtol=ENGINE_RTOL,
            err_msg=field,
        )  # fmt: skip


def test_a_custom_draw_in_a_grid_equals_a_plain_loop():
    init = ji.initializers.custom(laplace)
    grid = ji.Grid(inits=[init, "glorot_normal"], activations=["tanh"], depth=3, width=12,
                   seeds=[0, 4], batch_size=16)  # fmt: skip
    res = ji.sweep(grid, progress=False)
    bias = ji.initializers.get("zeros")
    for seed in (0, 4):
        net = network(grid, laplace, bias, 3, 12, seed)
        ref = forward_stats(net, grid.activations[0])
        dz, _ = backward(net, grid.activations[0])
        got = res.sel(init="laplace", seed=seed, activation="tanh")
        for field in ("pre_mean", "pre_var", "post_var"):
            np.testing.assert_allclose(got[field], ref[field], rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(got.grad_var, [d.var() for d in dz], rtol=2e-4)


def test_theory_and_training_take_a_custom_initializer():
    init = ji.initializers.custom(laplace)
    grid = ji.Grid(inits=[init], activations=["relu"], depth=4, width=64, seeds=1, batch_size=8)
    theory = ji.theory.predict(grid)
    # σ_w² = fan_in · Var w = 1 (estimated): ReLU halves the variance per layer
    q = theory.pre_var[0, 0, 0]
    np.testing.assert_allclose(q[1:] / q[:-1], 0.5, rtol=5 * np.sqrt(2 / CUSTOM_ENTRIES) * 2.5)
    x, y = ji.data.make_circles(jax.random.key(0), 64, noise=0.1)
    kw = dict(seeds=2, hidden=(8,), output="sigmoid", batch_size=None, steps=5,
              optimizer="sgd(learning_rate=0.1)")  # fmt: skip
    jax_he = ji.initializers.custom(jax.nn.initializers.he_normal(), name="jax_he")
    trained = ji.train(ji.TrainGrid(inits=[jax_he, "he_normal", init], **kw), (x, y),
                       progress=False)  # fmt: skip
    np.testing.assert_allclose(
        trained.sel(init="jax_he").loss, trained.sel(init="he_normal").loss, rtol=ENGINE_RTOL
    )  # the same draws, so the same models
    assert np.isfinite(trained.sel(init="laplace").loss).all()


def test_bad_custom_initializers_say_what_to_give():
    with pytest.raises(ValueError, match=r"has no name to label results with.*custom\(fn, name="):
        ji.initializers.custom(jax.nn.initializers.he_normal())  # jax's builders return `init`
    with pytest.raises(ValueError, match=r"name='he_normal' is jaxinit's own initializer"):
        ji.initializers.custom(laplace, name="he_normal")
    with pytest.raises(TypeError, match="must be a function"):
        ji.initializers.custom(3.0, name="three")
    with pytest.raises(ValueError, match="plain label"):
        ji.initializers.custom(laplace, name="lap(b=1)")
    with pytest.raises(ValueError, match="variance"):
        ji.initializers.custom(laplace, variance=-1.0)
    wrong = ji.initializers.custom(lambda k, s, d: jnp.zeros((2,), d), name="wrong")
    with pytest.raises(ValueError, match=r"drew shape \(2,\) for shape \(3, 4\)"):
        wrong(jax.random.key(0), (3, 4))
    with pytest.raises(ValueError, match=r"has no name.*ji.initializers.custom\(fn, name="):
        ji.Grid(inits=[jax.nn.initializers.he_normal()], activations=["relu"], depth=2, width=4)
    # a named function needs no wrapping: it is custom(fn), labelled by its name
    grid = ji.Grid(inits=[laplace], activations=["relu"], depth=2, width=4)
    assert grid.inits[0].spec == "laplace"
    assert grid.inits[0] == ji.initializers.custom(laplace)


def test_estimated_moments_are_cached_and_eager_inside_a_trace():
    estimated_moments.cache_clear()
    init = ji.initializers.custom(laplace)

    @jax.jit
    def f(x):
        return x * init.variance((64, 8))  # a number even while tracing

    assert float(f(1.0)) == pytest.approx(1 / 64, rel=0.05)
    assert estimated_moments.cache_info().currsize == 1


def test_what_only_draws_takes_jaxs_unnamed_initializers_as_they_are():
    """A Flax MLP and a Jacobian spectrum need no label: jax's ``init`` functions go in as
    they are and draw what they draw (a grid needs a label, above)."""
    from flax import nnx

    jax_he = jax.nn.initializers.he_normal()
    mlp = ji.training.MLP(4, (8,), 2, kernel_init=jax_he, rngs=nnx.Rngs(0))
    ref = ji.training.MLP(4, (8,), 2, kernel_init="he_normal", rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(
        mlp.layers[0].kernel.get_value(), ref.layers[0].kernel.get_value()
    )
    kw = dict(activation="tanh", depth=2, width=8, q_in=1.0)
    ours = ji.lsuv.lsuv(jax.random.key(1), jnp.ones((16, 4)), widths=(8,), activation="tanh",
                        init=jax.nn.initializers.orthogonal())  # fmt: skip
    assert ours.weights[0].shape == (4, 8)
    spec = ji.isometry.jacobian_spectrum(
        jax.random.key(0), init=jax.nn.initializers.orthogonal(), **kw
    )
    assert spec.singular_values.shape[-1] == 8
