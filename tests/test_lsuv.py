"""LSUV: unit variances, one exact step without bias, the paper's loop, NNX in place, errors."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit as ji
from jaxinit import lsuv as lsuv_module
from jaxinit._jax_compat import compiled_count
from jaxinit.lsuv import LSUVResult, lsuv, lsuv_init
from tests._tolerances import LSUV_BATCH, LSUV_OTHER_BATCH_ATOL

D_IN = 32
WIDTHS = (64, 32, 32)  # widening, narrowing and square layers
ACTS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "linear": lambda z: z}


def _data(seed, batch=LSUV_BATCH):
    """Off-scale data (std 3, mean 1), so that the orthogonal start is far from unit variance."""
    return 3.0 * jax.random.normal(jax.random.key(100 + seed), (batch, D_IN)) + 1.0


def _pre_activations(x, weights, biases, fn):
    """z_l of every layer, written out independently of the module."""
    zs, h = [], x
    for w, b in zip(weights, biases, strict=True):
        z = h @ w + b[None, :]
        zs.append(z)
        h = fn(z)
    return zs


def _reference_lsuv(x, weights, biases, fn, *, tol, max_iter):
    """Algorithm 1 of Mishkin & Matas, literally: rescale W, rerun the forward pass."""
    weights = [np.asarray(w, np.float64) for w in weights]
    biases = [np.asarray(b, np.float64) for b in biases]
    x = np.asarray(x, np.float64)
    for l in range(len(weights)):
        for _ in range(max_iter):
            v = _pre_activations(x, weights, biases, lambda z: np.asarray(fn(z)))[l].var()
            if abs(v - 1.0) < tol:
                break
            weights[l] = weights[l] / np.sqrt(v)
    return weights


@pytest.mark.parametrize("activation", list(ACTS))
def test_every_layer_has_unit_variance_on_the_batch(activation, key):
    x = _data(0)
    res = lsuv(key, x, widths=WIDTHS, activation=activation, tol=0.05)
    zs = _pre_activations(x, res.weights, res.biases, ACTS[activation])
    got = np.array([float(z.var()) for z in zs])
    assert np.all(np.abs(got - 1.0) < 0.05), got
    np.testing.assert_allclose(res.variances, got, rtol=1e-5)
    assert [w.shape for w in res.weights] == [(32, 64), (64, 32), (32, 32)]
    assert np.all(np.asarray(res.iterations) <= 10)


@pytest.mark.parametrize("activation", list(ACTS))
def test_matches_the_papers_loop(activation, key):
    x = _data(1)
    start = lsuv(
        key, x, widths=WIDTHS, activation=activation, bias_init="normal(stddev=0.5)", max_iter=0
    )
    res = lsuv(
        key, x, widths=WIDTHS, activation=activation, bias_init="normal(stddev=0.5)", tol=0.01
    )
    want = _reference_lsuv(x, start.weights, start.biases, ACTS[activation], tol=0.01, max_iter=10)
    for w, ref in zip(res.weights, want, strict=True):
        np.testing.assert_allclose(w, ref, rtol=1e-4, atol=1e-6)
    zs = _pre_activations(x, res.weights, res.biases, ACTS[activation])
    assert all(abs(float(z.var()) - 1.0) < 0.01 for z in zs)
    assert not np.allclose(res.biases[0], 0.0)  # the biases are really there
    assert int(res.iterations.max()) >= 2  # with biases the loop really iterates


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_zero_bias_one_rescale_is_exact(activation, key):
    res = lsuv(key, _data(2), widths=WIDTHS, activation=activation, tol=1e-3)
    np.testing.assert_array_equal(res.iterations, 1)  # every start is off: one step each
    np.testing.assert_allclose(res.variances, 1.0, rtol=1e-5)
    res2 = lsuv(key, _data(2), widths=WIDTHS, activation=activation, target_var=2.5)
    np.testing.assert_allclose(res2.variances, 2.5, rtol=1e-5)


def test_unit_variance_carries_over_to_another_batch(key):
    fit, other = _data(3), _data(4)
    res = lsuv(key, fit, widths=WIDTHS, activation="relu")
    zs = _pre_activations(other, res.weights, res.biases, jax.nn.relu)
    for z in zs:
        assert abs(float(z.var()) - 1.0) < LSUV_OTHER_BATCH_ATOL
    # and the start was far from it: the rescale did the work
    start = lsuv(key, fit, widths=WIDTHS, activation="relu", max_iter=0)
    assert float(start.variances[0]) > 5.0


def test_orthonormal_start_and_direction_kept(key):
    start = lsuv(key, _data(5), widths=WIDTHS, activation="tanh", max_iter=0)
    np.testing.assert_array_equal(start.iterations, 0)
    np.testing.assert_array_equal(start.scales, 1.0)
    wide, tall, square = start.weights
    np.testing.assert_allclose(wide @ wide.T, np.eye(32), atol=1e-5)  # orthonormal rows
    np.testing.assert_allclose(tall.T @ tall, np.eye(32), atol=1e-5)  # orthonormal columns
    np.testing.assert_allclose(square.T @ square, np.eye(32), atol=1e-5)
    np.testing.assert_allclose(square @ square.T, np.eye(32), atol=1e-5)
    # the start is the registry's orthogonal draw from the documented key stream
    k = jax.random.fold_in(jax.random.fold_in(key, 1), 2)
    want = ji.initializers.orthogonal()(jax.random.fold_in(k, 0), (32, 32))
    np.testing.assert_array_equal(start.weights[2], want)
    res = lsuv(key, _data(5), widths=WIDTHS, activation="tanh")
    for w, c in zip(res.weights[1:], res.scales[1:], strict=True):
        np.testing.assert_allclose(w.T @ w, float(c) ** 2 * np.eye(32), atol=1e-4)
    assert not np.allclose(res.scales, 1.0)


def test_jit_vmap_and_one_program_for_any_tolerance():
    x = _data(6, batch=64)
    f = functools.partial(lsuv, widths=(8,), activation="tanh", bias_init="normal(stddev=0.3)")
    keys = jax.random.split(jax.random.key(7), 3)
    batched = jax.vmap(lambda k: f(k, x))(keys)
    for i, k in enumerate(keys):
        one = f(k, x)
        jitted = jax.jit(f)(k, x)
        for a, b, c in zip(
            jax.tree.leaves(one), jax.tree.leaves(jitted), jax.tree.leaves(batched), strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=1e-6)
            np.testing.assert_allclose(a, c[i], rtol=1e-5, atol=1e-7)
    before = compiled_count(lsuv_module._lsuv)
    f(keys[0], x, tol=0.01, target_var=2.0, max_iter=3)
    assert compiled_count(lsuv_module._lsuv) == before


class _MLP(nnx.Module):
    def __init__(self, sizes, *, rngs):
        orth = ji.initializers.orthogonal()
        pairs = list(itertools.pairwise(sizes))
        self.hidden = nnx.List(
            [nnx.Linear(a, b, kernel_init=orth, rngs=rngs) for a, b in pairs[:-1]]
        )
        self.out = nnx.Linear(*pairs[-1], kernel_init=orth, rngs=rngs)

    def __call__(self, x):
        for layer in self.hidden:
            x = jax.nn.relu(layer(x))
        return self.out(x)


def test_lsuv_init_rescales_nnx_kernels_in_place():
    model = _MLP((D_IN, 32, 32, 10), rngs=nnx.Rngs(0))
    layers = [*model.hidden, model.out]
    before = [np.asarray(layer.kernel[...]) for layer in layers]
    x = _data(8)
    res = lsuv_init(model, x, activation="relu", tol=0.02)
    assert isinstance(res, LSUVResult)
    after = [np.asarray(layer.kernel[...]) for layer in layers]
    for b, a, c in zip(before, after, res.scales, strict=True):
        assert not np.allclose(a, b)
        np.testing.assert_allclose(a, b * float(c), rtol=1e-6)
    h = x
    for i, layer in enumerate(layers):  # the model's own layers, after the update
        z = layer(h)
        assert abs(float(z.var()) - 1.0) < 0.02
        h = jax.nn.relu(z) if i < len(layers) - 1 else z
    np.testing.assert_allclose(model(x), h, rtol=1e-6)


class _Scrambled(nnx.Module):
    """Applies `second` then `first`: attribute order is not call order."""

    def __init__(self, *, rngs):
        self.second = nnx.Linear(16, 16, rngs=rngs)
        self.first = nnx.Linear(16, 16, rngs=rngs)

    def __call__(self, x):
        return self.first(jnp.tanh(self.second(x)))


def test_lsuv_init_refuses_a_model_that_is_not_the_assumed_chain():
    model = _Scrambled(rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (128, 16))
    with pytest.raises(ValueError, match=r"pass layers=\[\.\.\.\] in the order"):
        lsuv_init(model, x, activation="tanh")
    res = lsuv_init(model, x, activation="tanh", layers=[model.second, model.first], tol=0.02)
    z = model.second(x)
    assert abs(float(z.var()) - 1) < 0.02
    assert abs(float(model.first(jnp.tanh(z)).var()) - 1) < 0.02
    assert res.variances.shape == (2,)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(activation="rleu"), ValueError, "Did you mean 'relu'"),
        (dict(widths=()), ValueError, "widths must be a non-empty sequence"),
        (dict(widths=8), TypeError, "widths must be a non-empty sequence"),
        (dict(widths=(8, 0)), ValueError, r"each of widths \(8, 0\) must be an int >= 1; got 0"),
        (dict(widths=(8, 2.0)), TypeError, r"each of widths \(8, 2\.0\) must be an int >= 1"),
        (dict(tol=0.0), ValueError, "tol must be a finite real number > 0; got 0.0"),
        (dict(target_var=-1.0), ValueError, "target_var must be a finite real number > 0"),
        (dict(tol="0.1"), TypeError, "tol must be a finite real number > 0; got '0.1'"),
        (dict(max_iter=-1), ValueError, "max_iter must be an int >= 0; got -1"),
        (dict(max_iter=2.5), TypeError, "max_iter must be an int >= 0; got 2.5"),
        (dict(x=jnp.ones(5)), ValueError, r"shape \(batch, d_in\); got shape \(5,\)"),
        (dict(x=jnp.ones((4, 3), jnp.int32)), ValueError, "floating-point data"),
        (dict(bias_init="glorot_normal"), ValueError, "rank >= 2"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match, key):
    kw = dict(x=jnp.ones((4, 3)), widths=(8,), activation="relu") | kwargs
    with pytest.raises(error, match=match):
        lsuv(key, **kw)


def test_lsuv_init_bad_arguments():
    model = _MLP((6, 8, 4), rngs=nnx.Rngs(0))
    x = jnp.ones((4, 6))
    with pytest.raises(TypeError, match=r"layers\[1\] must be an nnx\.Linear; got Module"):
        lsuv_init(model, x, activation="relu", layers=[model.out, nnx.Module()])
    with pytest.raises(ValueError, match="x has 5 features but the first layer takes 6"):
        lsuv_init(model, jnp.ones((4, 5)), activation="relu")
    with pytest.raises(ValueError, match=r"holds no nnx\.Linear"):
        lsuv_init(nnx.Module(), x, activation="relu")
    with pytest.raises(ValueError, match="Did you mean 'tanh'"):
        lsuv_init(model, x, activation="tahn")
