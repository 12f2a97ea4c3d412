"""Training the user's own Flax model (TrainGrid(model=make)): the model grid's networks,
trained as a per-model optax loop trains them, resumed bitwise, restored, refused clearly."""

import dataclasses
import functools

import jax
import numpy as np
import optax
import pytest
from flax import nnx

import jaxinit as ji
from jaxinit.training import TrainGrid, restore_model, train
from tests._teacher import reference_step
from tests._tolerances import TRAIN_ATOL, TRAIN_RTOL

CNN = functools.partial(ji.models.CNN, in_channels=1, channels=4, depth=1, classes=3)
INITS = ["he_normal", "normal(stddev=0.01)"]


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 6, 6, 1)).astype(np.float32)
    y = (x.mean((1, 2, 3)) > 0).astype(np.int32) + (x[:, 0, 0, 0] > 1)  # 3 classes
    return x, y


def _loop(grid, init, seed, x, y, tx):
    """One model trained alone, full batch, by a plain optax loop: the per-step losses."""
    model = ji.ModelGrid(model=grid.model, inits=[init], seeds=[seed], inputs=x).build(
        seed, init=init
    )
    graphdef, params = nnx.split(model)
    opt = tx.init(params)
    losses = []
    for _ in range(grid.steps):
        params, opt, loss = reference_step(tx, graphdef, params, opt, x, y)
        losses.append(float(loss))
    return np.array(losses)


def test_a_model_grid_trains_each_model_as_a_plain_optax_loop(images):
    """Model (init, seed) starts from the sweep's network of that seed (ModelGrid.build)
    and takes the steps a per-model loop takes: the same losses within float32 rounding
    (TRAIN_RTOL: other XLA programs, other last bits)."""
    x, y = images
    grid = TrainGrid(
        model=CNN,
        inits=INITS,
        seeds=2,
        steps=6,
        batch_size=None,
        optimizer="adam(learning_rate=0.01)",
    )
    res = train(grid, (x, y), progress=False)
    assert res.dims == ("init", "seed")
    assert res.loss.shape == (2, 2, 6)
    tx = optax.adam(0.01)
    for i, init in enumerate(INITS):
        for j, seed in enumerate(grid.seeds):
            want = _loop(grid, init, seed, x, y, tx)
            np.testing.assert_allclose(res.loss[i, j], want, rtol=TRAIN_RTOL, atol=TRAIN_ATOL)
    assert (res.loss[0, :, -1] < res.loss[0, :, 0]).all()  # He learns
    # the grid builds the same network as the model grid (one function: bitwise)
    a = nnx.state(grid.build(0, 0, init="he_normal", seed=1), nnx.Param)
    b = nnx.state(
        ji.ModelGrid(model=CNN, inits=["he_normal"], seeds=2, inputs=x).build(1, init="he_normal")
    )
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_a_model_run_resumes_bitwise_and_restores_the_users_module(images, tmp_path):
    x, y = images
    grid = TrainGrid(model=CNN, inits=INITS, seeds=2, steps=8, batch_size=16, eval_every=4)
    fresh = train(grid, (x, y), progress=False)
    out = tmp_path / "run"

    def stop_at_4(update):
        if update.done == 4:
            raise _Stop

    with pytest.raises(_Stop):
        train(grid, (x, y), out=out, checkpoint_every=4, on_update=stop_at_4, progress=False)
    resumed = train(grid, (x, y), out=out, checkpoint_every=4, progress=False)
    assert resumed.equals(fresh)
    model = restore_model(out, init="normal(stddev=0.01)", seed=1, model=CNN)
    assert isinstance(model, ji.models.CNN)
    # its logits score the evaluation data as the run measured at the last step
    acc = (np.argmax(np.asarray(model(x)), -1) == y).mean()
    assert acc == pytest.approx(fresh.test_accuracy[1, 1, -1], abs=1e-6)
    with pytest.raises(ValueError, match="give its factory"):
        restore_model(out, init="he_normal", seed=0)
    with pytest.raises(ValueError, match="shape"):
        restore_model(out, init="he_normal", seed=0, model=functools.partial(CNN, channels=5))


@pytest.mark.slow
def test_a_transformer_learns_mnist_rows_as_tokens(mnist_dir):
    """MNIST's rows as 28 tokens of 28 pixels: a one-block Transformer with a head learns
    above chance in 40 Adam steps from LeCun normal."""
    from jaxinit.data import load_mnist

    x, y = load_mnist("train", data_dir=mnist_dir)
    x, y = x[:1024].reshape(-1, 28, 28), y[:1024]
    make = functools.partial(
        ji.models.Transformer, d_in=28, d_model=16, heads=2, depth=1, classes=10
    )
    grid = TrainGrid(model=make, inits=["lecun_normal"], seeds=2, steps=40, batch_size=64,
                     optimizer="adam(learning_rate=3e-3)")  # fmt: skip
    res = train(grid, (x, y), progress=False)
    assert (res.test_accuracy[..., -1] > 0.3).all(), res.test_accuracy  # chance: 0.1
    assert (res.test_accuracy[..., -1] > res.test_accuracy[..., 0]).all()


class _WithBatchNorm(nnx.Module):
    def __init__(self, rngs):
        self.fc = nnx.Linear(4, 3, rngs=rngs)
        self.bn = nnx.BatchNorm(3, rngs=rngs)

    def __call__(self, x):
        return self.bn(self.fc(x))


def test_a_model_grid_refuses_what_it_cannot_train(images):
    x, y = images
    with pytest.raises(
        ValueError, match=r"\['hidden', 'record_stats_at'\] describe the built-in MLP"
    ):
        TrainGrid(model=CNN, inits=INITS, hidden=(8,), record_stats_at=(0,))
    with pytest.raises(ValueError, match="rule selects kernels of a model"):
        TrainGrid(inits=INITS, rule=ji.models.kernels())
    with pytest.raises(TypeError, match="give a factory"):
        TrainGrid(model=CNN(nnx.Rngs(0)), inits=INITS)
    with pytest.raises(ValueError, match=r"not an nnx.Param at \['bn/mean', 'bn/var'\]"):
        train(TrainGrid(model=_WithBatchNorm, inits=INITS, steps=1, batch_size=None),
              (x.reshape(48, -1)[:, :4], y), progress=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"returns 2 logits per example; needs at least 3"):
        train(
            TrainGrid(model=functools.partial(CNN, classes=2), inits=INITS, steps=1, batch_size=8),
            (x, y),
        )
    with pytest.raises(ValueError, match=r"does not run on examples of shape \(36,\)"):
        train(TrainGrid(model=CNN, inits=INITS, steps=1, batch_size=8), (x.reshape(48, -1), y))
    grid = TrainGrid(model=CNN, inits=INITS)
    assert dataclasses.replace(grid, steps=3).rule == grid.rule  # canonical fields round-trip
    described = grid.describe()  # the model's settings, none of the MLP's
    assert described["model"].endswith("CNN")
    assert "rule" in described
    assert not {"hidden", "bias_init", "keep_params", "record_stats_at"} & set(described)
    with pytest.raises(ValueError, match=r"\['record_stats_at'\] describe the built-in MLP"):
        TrainGrid(model=CNN, inits=INITS, record_stats_at=5)
