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
from tests._tolerances import (
    MODEL_ATOL,
    MODEL_RTOL,
    TRAIN_ATOL,
    TRAIN_RTOL,
    TRANSFORMER_COORD_SLOPE_SPLIT,
)

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
    with pytest.raises(ValueError, match=r"\['hidden', 'keep_params'\] describe the built-in MLP"):
        TrainGrid(model=CNN, inits=INITS, hidden=(8,), keep_params=True)
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
    assert not {"hidden", "bias_init", "keep_params"} & set(described)
    assert described["record_stats_at"] == []
    assert described["parametrization"] == "standard"
    with pytest.raises(ValueError, match=r"\['activations'\] describe the built-in MLP"):
        TrainGrid(model=CNN, inits=INITS, activations="tanh")
    with pytest.raises(TypeError, match=r"width=\[8, 16\] with model=.*take the width"):
        TrainGrid(model=CNN, inits=INITS, width=[8, 16])
    with pytest.raises(ValueError, match=r"output_init with model=.*needs parametrization='mup'"):
        TrainGrid(model=_transformer, inits=INITS, width=8, output_init="zeros")
    kw = dict(
        inits=INITS, width=[8, 16], parametrization="mup", optimizer="adam(learning_rate=0.1)"
    )
    with pytest.raises(ValueError, match=r"'w' \(shape \(16, 16\)\) grows with width along 2"):
        TrainGrid(model=_Square, **kw).layer_rules(width=16)
    with pytest.raises(ValueError, match=r"the Einsum at 'mix/kernel' has none"):
        TrainGrid(model=_Mixer, **kw).layer_rules(width=16)


class _Square(nnx.Module):  # a matrix held outside any kernel module: its fans are unknown
    def __init__(self, rngs, *, width):
        self.w = nnx.Param(jax.random.normal(rngs.params(), (width, width)))

    def __call__(self, x):
        return x @ self.w


class _Mixer(nnx.Module):
    def __init__(self, rngs, *, width):
        self.mix = nnx.Einsum("bi,ij->bj", (width, width), rngs=rngs)

    def __call__(self, x):
        return self.mix(x)


def _transformer(rngs, *, width, attention_scale="1/sqrt(d)"):
    return ji.models.Transformer(
        rngs, d_in=4, d_model=width, heads=2, depth=1, classes=3, attention_scale=attention_scale
    )


def test_mup_for_a_model_infers_table_3_per_parameter():
    """Which dims grow is inferred from the model at two widths (mup's set_base_shapes): the
    embedding's kernel is an input weight, the attention's and MLP's kernels hidden, the head's
    kernel the readout, every bias and LayerNorm vector-like, the head's bias finite."""
    kw = dict(model=_transformer, inits=["he_normal"], width=[8, 32], parametrization="mup")
    rules = {
        r.param: r
        for r in TrainGrid(optimizer="adam(learning_rate=0.1)", **kw).layer_rules(width=32)
    }
    sgd = {
        r.param: r
        for r in TrainGrid(optimizer="sgd(learning_rate=0.1)", **kw).layer_rules(width=32)
    }
    roles = {p: r.role for p, r in rules.items()}
    assert roles["embed/kernel"] == "input"
    assert roles["head/kernel"] == "output"
    assert roles["head/bias"] == "finite"
    for p in ("attn/query/kernel", "attn/out/kernel", "fc_in/kernel", "fc_out/kernel"):
        assert roles[f"blocks/0/{p}"] == "hidden"
    for p in ("attn/query/bias", "ln1/scale", "fc_in/bias"):
        assert roles[f"blocks/0/{p}"] == "bias"
    # widths 32 / 8: r = 4 for every growing fan (the query kernel's fan-in is d_model)
    assert rules["head/kernel"].variance_factor == 1 / 4
    assert rules["head/kernel"].lr_factor == 1 / 4
    assert rules["blocks/0/attn/query/kernel"].lr_factor == 1 / 4  # Adam: hidden 1/fan_in
    assert rules["embed/kernel"].lr_factor == 1
    assert rules["ln_f/scale"].lr_factor == 1
    assert sgd["blocks/0/attn/query/kernel"].lr_factor == 1  # SGD: hidden 1
    assert sgd["embed/kernel"].lr_factor == 4
    assert sgd["ln_f/scale"].lr_factor == 4
    assert sgd["head/kernel"].lr_factor == 1 / 4
    assert sgd["head/bias"].lr_factor == 1
    # the standard parametrization: the same roles, every factor 1
    standard = TrainGrid(**{**kw, "parametrization": "standard"}).layer_rules(width=32)
    assert [r.role for r in standard] == list(roles.values())
    assert all(r.lr_factor == r.variance_factor == 1 for r in standard)
    # at the base width every factor is 1
    assert all(r.lr_factor == r.variance_factor == 1 for r in TrainGrid(**kw).layer_rules(width=8))
    # the readout: the standard model's head times sqrt(1/4), or zeros
    grid = TrainGrid(**kw)
    std = TrainGrid(**{**kw, "parametrization": "standard"})
    head = lambda g: np.asarray(g.build(0, 0, init="he_normal", seed=3, width=32).head.kernel)  # noqa: E731
    np.testing.assert_allclose(head(grid), head(std) * 0.5, rtol=1e-7)
    zero = dataclasses.replace(grid, output_init="zeros")
    assert not np.any(head(zero))
    assert np.any(head(grid))
    body = lambda g: np.asarray(g.build(0, 0, init="he_normal", seed=3, width=32).embed.kernel)  # noqa: E731
    np.testing.assert_array_equal(body(grid), body(std))  # the rest is the standard network


def test_mup_attention_scales_logits_by_the_heads_dimension(key):
    q, k, v = jax.random.normal(key, (3, 2, 5, 2, 8))  # (batch, tokens, heads, head dim)
    got = ji.models.mup_attention(q, k, v)
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) / 8  # 1/d, not 1/sqrt(d)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    want = np.einsum("bhqk,bkhd->bqhd", w / w.sum(-1, keepdims=True), v)
    np.testing.assert_allclose(got, want, rtol=MODEL_RTOL, atol=MODEL_ATOL)


def test_a_model_records_every_captured_layer_during_training():
    """record_stats_at with a model: every output the sweep captures, by path; at step 0 on
    the full batch, the logits' statistics are the built model's own, and the loss's gradient
    with respect to them is (softmax - onehot) / n."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 3, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    grid = TrainGrid(
        model=functools.partial(_transformer, width=8),
        inits=["he_normal"],
        seeds=2,
        steps=2,
        batch_size=None,
        record_stats_at=[0, 2],
    )
    res = train(grid, (x, y))
    layers = res.attrs["layers"]
    assert layers[0] == "embed"
    assert layers[-2:] == ["head", "(model)"]
    assert res.attrs["layer_types"][layers.index("blocks/0/attn")] == "MultiHeadAttention"
    assert res.fields["pre_var"].shape == (1, 2, 2, len(layers))  # (init, seed, stat_step, layer)
    logits = np.asarray(grid.build(0, 0, init="he_normal", seed=1)(x), np.float64)
    one = res.sel(init="he_normal", seed=1).fields
    head = layers.index("head")
    np.testing.assert_allclose(one["pre_var"][0, head], logits.var(), rtol=MODEL_RTOL)
    np.testing.assert_allclose(one["logit_abs_mean"][0], np.abs(logits).mean(), rtol=MODEL_RTOL)
    p = np.exp(logits - logits.max(1, keepdims=True))
    g = (p / p.sum(1, keepdims=True) - np.eye(3)[y]) / len(x)
    np.testing.assert_allclose(one["grad_var"][0, head], g.var(), rtol=MODEL_RTOL)
    norms = one["weight_grad_norm"][0]
    assert np.isfinite(norms[layers.index("blocks/0/fc_in")])
    assert norms[head] > 0
    assert np.isnan(norms[layers.index("blocks/0/ln1")])  # no kernel: a norm, a block
    assert np.isnan(norms[layers.index("blocks/0")])
    assert np.all(np.isfinite(one["post_abs_mean"]))


@pytest.mark.slow
def test_transformer_coord_check_is_flat_under_mup_and_grows_under_standard(mnist_dir):
    """sweeps/coord_check.py's Transformer, at widths 16 and 64: under μP (with 1/d attention and a
    zero readout) no shown layer's size grows with width; under the standard one they do.
    TRANSFORMER_COORD_SLOPE_SPLIT is derived in tests/_tolerances.py."""
    from jaxinit.data import load_mnist
    from jaxinit.training import coord_slopes
    from sweeps import coord_check

    x, y = load_mnist("train", data_dir=mnist_dir)
    x, y = x[:1024].reshape(-1, 28, 28), y[:1024]
    kw = dict(widths=(16, 64), seeds=2, steps=10, learning_rate=1e-2, model="transformer")
    res = {p: train(coord_check.make_grid(p, **kw), (x, y)) for p in coord_check.PARAMETRIZATIONS}
    shown = coord_check.shown_layers(res["mup"])
    assert shown == [
        *(f"blocks/{b}{s}" for b in range(coord_check.TRANSFORMER_DEPTH) for s in ("/attn", "/fc_out", "")),
        "output",
    ]  # fmt: skip
    std, mup = coord_slopes(res["standard"]), coord_slopes(res["mup"])
    assert max(std[k] for k in shown[:-1]) > TRANSFORMER_COORD_SLOPE_SPLIT, std
    assert max(abs(mup[k]) for k in shown[:-1]) < TRANSFORMER_COORD_SLOPE_SPLIT, mup
    fig = ji.report.size_vs_width(res, layers=shown)
    assert len(fig.axes[0].lines) == len(shown)
    with pytest.raises(ValueError, match=r"layers \['nope'\] are not among.*'embed'"):
        ji.report.size_vs_width(res, layers=["nope"])


def test_a_models_statistics_vmapped_equal_one_model_at_a_time():
    """The accelerators' layout (vmap over models) of model_batch_stats against the CPU's
    (lax.map, one model at a time), on the same stacked models: one capture, either way."""
    from jaxinit.training import _program, _run

    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 3, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    grid = TrainGrid(model=functools.partial(_transformer, width=8), inits=["he_normal"],
                     seeds=2, steps=1, batch_size=None, record_stats_at=[0])  # fmt: skip
    run, d_out = _run._prepare(grid, x, y, x, y, None)
    group = _run._groups(grid, x.shape[1], d_out, run.mesh, run.size)[0]
    prog = group.prog._replace(tx=None, length=0)
    stats = [
        _program.model_batch_stats(
            prog._replace(map_models=m), run.mesh, group.params, run.x, run.y, None
        )
        for m in (True, False)
    ]
    assert set(stats[0]) == set(_program.STAT_FIELDS)
    for k, v in stats[0].items():
        np.testing.assert_allclose(v, stats[1][k], rtol=MODEL_RTOL, atol=MODEL_ATOL, err_msg=k)
