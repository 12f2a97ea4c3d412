"""Training many models at once: loop equivalence, no coupling, resume, compile count, classics."""

import dataclasses
import hashlib
import importlib
import importlib.util
import itertools
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxinit as ji
from jaxinit._jax_compat import compiled_count
from jaxinit.data import load_mnist, make_circles
from jaxinit.training import MLP, TrainGrid, TrainResult, make_optimizer, train
from jaxinit.training._program import train_chunk
from tests._kill import run_and_kill
from tests._network import network
from tests._teacher import reference_step, teacher_data
from tests._tolerances import ENGINE_ATOL, ENGINE_RTOL, TRAIN_ATOL, TRAIN_RTOL

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = dict(hidden=(16, 16), steps=20, batch_size=32, optimizer="sgd(learning_rate=0.1)")


@pytest.fixture(scope="module")
def data():
    """256 examples of 8 Gaussian features, 4 classes from a random linear teacher."""
    return teacher_data(42, 256, 8)


REF_TX = optax.sgd(0.1)  # SMALL's optimizer, written out by hand


def _reference_step(graphdef, params, opt, xb, yb):
    return reference_step(REF_TX, graphdef, params, opt, xb, yb)


def _reference(grid, data, init, seed):
    """One model, one step at a time, with the batch order re-derived from the documented rule."""
    x, y = data
    n, b = len(x), grid.batch_size
    graphdef, params = nnx.split(grid.build(x.shape[1], 4, init=init, seed=seed))
    opt = REF_TX.init(params)
    losses = []
    for s in range(grid.steps):
        epoch, pos = divmod(s, n // b)
        rows = jax.random.permutation(jax.random.fold_in(grid.batch_key(seed), epoch), n)
        rows = np.asarray(rows)[pos * b : (pos + 1) * b]
        params, opt, loss = _reference_step(graphdef, params, opt, x[rows], y[rows])
        losses.append(float(loss))
    return np.array(losses), nnx.merge(graphdef, params)


@pytest.mark.parametrize("shuffle", ["shared", "per_seed"])
def test_vmapped_equals_one_model_at_a_time(data, shuffle):
    grid = TrainGrid(inits=["he_normal", "glorot_uniform"], seeds=[0, 3], shuffle=shuffle,
                     keep_params=True, **SMALL)  # fmt: skip
    res = train(grid, data)
    assert isinstance(res, TrainResult)
    assert res.loss.shape == (2, 2, 20)  # (init, seed, step)
    for init, seed in [("glorot_uniform", 3), ("he_normal", 0)]:
        losses, model = _reference(grid, data, init, seed)
        got = res.sel(init=init, seed=seed)
        np.testing.assert_allclose(got.loss, losses, rtol=TRAIN_RTOL, atol=TRAIN_ATOL)
        final = [*model.layers, model.out]
        for l, layer in enumerate(final):
            np.testing.assert_allclose(getattr(got, f"kernel_{l}"), layer.kernel[...],
                                       rtol=TRAIN_RTOL, atol=TRAIN_ATOL)  # fmt: skip
    # shared: every model sees the same mini-batches; per_seed: each seed its own order
    same_order = grid.batch_key(0) == grid.batch_key(3)
    assert bool(same_order) == (shuffle == "shared")


def test_a_model_does_not_depend_on_the_rest_of_the_grid(data):
    big = train(TrainGrid(inits=["he_normal", "glorot_normal"], seeds=[0, 2], **SMALL), data)
    alone = train(TrainGrid(inits=["glorot_normal"], seeds=[2], **SMALL), data)
    a, b = alone.sel(init="glorot_normal", seed=2), big.sel(init="glorot_normal", seed=2)
    # same keys, same batches: the same initial network (eval at step 0), the same training
    np.testing.assert_allclose(a.test_loss, b.test_loss, rtol=TRAIN_RTOL)
    np.testing.assert_allclose(a.loss, b.loss, rtol=TRAIN_RTOL, atol=TRAIN_ATOL)
    # common random numbers: for one seed every init scales the same standardized draw
    g = TrainGrid(inits=["he_normal"], **SMALL)
    he = g.build(8, 4, init="he_normal", seed=5).layers[1].kernel[...]
    glorot = g.build(8, 4, init="glorot_normal", seed=5).layers[1].kernel[...]
    np.testing.assert_allclose(he / glorot, np.sqrt((16 + 16) / 16), rtol=1e-6)
    other = g.build(8, 4, init="he_normal", seed=6).layers[1].kernel[...]
    assert not np.allclose(he, other)


def test_clip_by_global_norm_does_not_couple_models(data):
    lr, max_norm = 0.5, 0.05
    clip = (f"clip_by_global_norm(max_norm={max_norm})", f"sgd(learning_rate={lr})")
    kw = dict(SMALL, optimizer=clip, seeds=[1], keep_params=True)
    inits = ["he_normal", "normal(stddev=1.0)"]  # gradient norms far apart
    together = train(TrainGrid(inits=inits, **kw), data)
    for init in inits:
        alone = train(TrainGrid(inits=[init], **kw), data).sel(init=init, seed=1)
        both = together.sel(init=init, seed=1)
        np.testing.assert_allclose(both.loss, alone.loss, rtol=TRAIN_RTOL, atol=TRAIN_ATOL)
        start = TrainGrid(inits=[init], **kw).build(8, 4, init=init, seed=1)
        start = [*start.layers, start.out]
        moved = [getattr(r, f"kernel_{l}") - start[l].kernel[...] for l in range(3) for r in (both, alone)]  # fmt: skip
        for m_both, m_alone in zip(moved[::2], moved[1::2], strict=True):
            np.testing.assert_allclose(m_both, m_alone, rtol=1e-3, atol=1e-5)
        # each model's own update is clipped: it moves at most steps * lr * max_norm
        distance = np.sqrt(sum((m**2).sum() for m in moved[::2]))
        assert 0 < distance <= SMALL["steps"] * lr * max_norm * (1 + 1e-5)


def _assert_same_models(a, b):
    assert a.dims == b.dims
    assert a.coords == b.coords
    assert set(a.fields) == set(b.fields)
    for k in a.fields:
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), rtol=TRAIN_RTOL, atol=TRAIN_ATOL, err_msg=k)  # fmt: skip


@pytest.mark.slow
@pytest.mark.multidevice
def test_numbers_do_not_depend_on_devices_or_on_the_other_models(data, tmp_path):
    one, two = jax.devices()[:1], jax.devices()[:2]
    assert len(two) == 2  # conftest fakes 2 CPU devices
    # 3 models on 2 devices: padded to 4; adam's state (and its count) is split too
    grid = TrainGrid(inits=["he_normal", "glorot_uniform", "lecun_normal"], seeds=[1],
                     shuffle="per_seed", eval_every=10, record_stats_at=(0, 13), keep_params=True,
                     **dict(SMALL, optimizer="adam(learning_rate=0.01)"))  # fmt: skip
    run = train_chunk
    before = compiled_count(run)
    on_one, on_two = train(grid, data, devices=one), train(grid, data, devices=two)
    assert compiled_count(run) - before == 2  # a program per device count
    assert on_two.loss.shape == (3, 1, 20)  # the padding is dropped
    assert np.isfinite(on_two.loss).all()
    assert not np.allclose(on_two.loss[0], on_two.loss[1])  # distinct models, none a copy
    _assert_same_models(on_one, on_two)
    # a model alone (on 2 devices: itself and a padding copy) as in the grid
    alone = train(dataclasses.replace(grid, inits=["lecun_normal"]), data, devices=two)
    for k in ("loss", "test_loss", "pre_var", "kernel_0"):
        np.testing.assert_allclose(getattr(alone.sel(init="lecun_normal"), k),
                                   getattr(on_one.sel(init="lecun_normal"), k),
                                   rtol=TRAIN_RTOL, atol=TRAIN_ATOL, err_msg=k)  # fmt: skip
    # checkpoints hold the models without padding: interrupted on 2 devices, resumed on 1
    out, seen = tmp_path / "run", []

    def stop_at_10(update):
        if update.done == 10:
            raise _Stop

    with pytest.raises(_Stop):
        train(grid, data, out=out, checkpoint_every=10, on_update=stop_at_10, devices=two)
    with np.load(out / "checkpoint.npz") as ckpt:
        assert ckpt["group/0/params/layers/0/kernel"].shape[0] == 3  # (models, ...): no padding
    resumed = train(grid, data, out=out, devices=one, on_update=lambda u: seen.append(u.done))
    assert seen == [13, 20]  # the stats step, the end
    _assert_same_models(resumed, on_one)


def test_bad_devices(data):
    grid = TrainGrid(inits=["he_normal"], **SMALL)
    for bad in ([], ["cpu"]):
        with pytest.raises(ValueError, match=r"devices must be a non-empty list of jax devices"):
            train(grid, data, devices=bad)


def test_compile_count_depends_on_shapes_not_on_seeds_or_inits(data):
    run = train_chunk
    kw = dict(SMALL, steps=12)  # a scan length of its own: no program of another test is reused
    before = compiled_count(run)
    train(TrainGrid(inits=["he_normal"], seeds=1, **kw), data)
    assert compiled_count(run) - before == 1
    # 4 seeds × 3 families: 12 models stacked, one program
    train(TrainGrid(inits=["he_normal", "normal(stddev=0.01)", "glorot_uniform"], seeds=4, **kw), data)  # fmt: skip
    assert compiled_count(run) - before == 2
    # other families and seeds, as many models, the same optimizer spec: no new program
    train(TrainGrid(inits=["zeros", "he_uniform", "lecun_normal"], seeds=[7, 8, 9, 10], **kw), data)  # fmt: skip
    assert compiled_count(run) - before == 2
    # one program per activation: relu's single model is compiled already, tanh's is new
    train(TrainGrid(inits=["he_normal"], seeds=1, activations=["relu", "tanh"], **kw), data)
    assert compiled_count(run) - before == 3


class _Stop(Exception):
    pass


def test_resume_after_interruption_is_bitwise_identical(data, tmp_path):
    grid = TrainGrid(inits=["he_normal", "glorot_uniform"], seeds=2, eval_every=10,
                     record_stats_at=(0, 7, 20), keep_params=True, **SMALL)  # fmt: skip
    fresh = train(grid, data)  # no checkpoints: other host syncs, same numbers
    out = tmp_path / "run"
    seen = []

    def stop_at_10(update):
        seen.append(update.done)
        if update.done == 10:
            raise _Stop

    with pytest.raises(_Stop):
        train(grid, data, out=out, checkpoint_every=5, on_update=stop_at_10)
    assert seen == [0, 5, 7, 10]  # step 0, then checkpoints, stats and evaluations (host syncs)
    with np.load(out / "checkpoint.npz") as ckpt:
        assert int(ckpt["step"]) == 10
    assert not (out / "result").exists()
    seen.clear()
    resumed = train(
        grid, data, out=out, checkpoint_every=5, on_update=lambda u: seen.append(u.done)
    )
    assert seen == [15, 20]  # no step lost, none repeated
    assert resumed.equals(fresh)
    assert TrainResult.load(out / "result").equals(fresh)
    assert isinstance(TrainResult.load(out / "result"), TrainResult)
    # finished: a third call reads the checkpoint back and trains nothing
    assert train(grid, data, out=out, on_update=lambda u: pytest.fail("trained again")).equals(fresh)  # fmt: skip
    with pytest.raises(ValueError, match=r"different training run \(grid differ\)"):
        train(dataclasses.replace(grid, steps=30), data, out=out)
    with pytest.raises(ValueError, match=r"different training run \(data differ\)"):
        train(grid, (data[0] + 1, data[1]), out=out)


_KILL_SCRIPT = """
import sys, time, jax, numpy as np
from jaxinit.training import TrainGrid, train
kx, kw = jax.random.split(jax.random.key(42))
x = np.asarray(jax.random.normal(kx, (256, 8)))
y = np.argmax(x @ np.asarray(jax.random.normal(kw, (8, 4))), axis=1).astype(np.int32)
grid = TrainGrid(inits=["he_normal"], seeds=2, hidden=(16, 16), steps=20, batch_size=32,
                 optimizer="adam(learning_rate=0.01)")
def tick(update):
    print(f"step {update.done}", flush=True)
    if update.done >= 10:
        time.sleep(60)  # the test kills us here
train(grid, (x, y), out=sys.argv[1], checkpoint_every=5, on_update=tick)
"""


@pytest.mark.slow
def test_kill_and_resume(data, tmp_path):

    out = tmp_path / "run"
    lines = run_and_kill(_KILL_SCRIPT, str(out), at="step 10", cwd=ROOT)
    assert lines[-1] == "step 10", lines
    assert not (out / "result").exists()
    assert not list(out.glob(".*tmp"))  # no partial file left behind
    grid = TrainGrid(inits=["he_normal"], seeds=2, hidden=(16, 16), steps=20, batch_size=32,
                     optimizer="adam(learning_rate=0.01)")  # fmt: skip
    steps = []
    resumed = train(
        grid, data, out=out, checkpoint_every=5, on_update=lambda u: steps.append(u.done)
    )
    assert steps == [15, 20]
    assert resumed.equals(train(grid, data))


def test_zeros_never_break_symmetry_on_circles():
    x, y = make_circles(jax.random.key(0), 200, noise=0.05, factor=0.5)
    grid = TrainGrid(inits=["zeros", "constant(value=0.3)", "he_normal"], seeds=2, hidden=(10, 5),
                     output="sigmoid", batch_size=None, steps=60, keep_params=True,
                     optimizer="sgd(learning_rate=0.5)")  # fmt: skip
    res = train(grid, (x, y))
    assert res.loss.shape == (3, 2, 60)
    for init in ("zeros", "constant(value=0.3)"):
        s = res.sel(init=init)
        for l in range(2):  # every hidden unit has the same weights and bias: one unit, copied
            k, b = getattr(s, f"kernel_{l}"), getattr(s, f"bias_{l}")
            np.testing.assert_array_equal(k, np.repeat(k[..., :1], k.shape[-1], axis=-1))
            np.testing.assert_array_equal(b, np.repeat(b[..., :1], b.shape[-1], axis=-1))
    moved = res.sel(init="constant(value=0.3)").kernel_0
    assert not np.allclose(moved, 0.3)  # the constant net trains, but in lockstep
    he = res.sel(init="he_normal")
    assert np.ptp(he.kernel_0, axis=-1).min() > 0  # He's units differ
    assert he.test_accuracy[:, -1].min() > res.sel(init="zeros").test_accuracy[:, -1].max()
    assert res.attrs["eval_on"] == "data"


@pytest.mark.slow
def test_mnist_he_learns_where_small_normal_does_not(mnist_dir):
    where = mnist_dir
    x, y = load_mnist("test", data_dir=where)  # the smaller file; 2000 to train, 1000 to test
    train_set, test_set = (x[:2000], y[:2000]), (x[2000:3000], y[2000:3000])
    grid = TrainGrid(inits=["normal(stddev=0.01)", "he_normal"], seeds=1, steps=100,
                     eval_every=50, optimizer="sgd(learning_rate=0.05)")  # fmt: skip
    res = train(grid, train_set, test_set)
    assert res.test_loss.shape == (2, 1, 3)
    assert list(res.eval_steps) == [0, 50, 100]
    small, he = res.sel(init="normal(stddev=0.01)"), res.sel(init="he_normal")
    np.testing.assert_allclose(small.test_loss, np.log(10), atol=0.01)  # stuck at chance
    assert he.test_loss[0, -1] < small.test_loss[0, -1] - 0.5
    assert he.test_accuracy[0, -1] > 0.5
    assert res.attrs["eval_on"] == "eval_data"


def test_stats_follow_the_kernel_definitions(data):
    grid = TrainGrid(inits=["he_normal"], seeds=[4], record_stats_at=(0, 20), **SMALL)
    res = train(grid, data).sel(init="he_normal", seed=4)
    assert res.pre_var.shape == (2, 2)  # (stat_step, layer)
    assert list(res.stats_steps) == [0, 20]
    x, y = data
    rows = np.asarray(jax.random.permutation(jax.random.fold_in(grid.batch_key(4), 0), 256))[:32]
    model = grid.build(8, 4, init="he_normal", seed=4)

    def loss(probes):
        logits, zs, hs = model.trace(x[rows], probes)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y[rows]).mean(), (zs, hs)

    grads, (zs, hs) = jax.grad(loss, has_aux=True)([jnp.zeros((32, 16))] * 2)
    h_prev = [x[rows], hs[0]]
    expected = {
        "pre_mean": [z.mean() for z in zs],
        "pre_var": [z.var() for z in zs],
        "post_var": [h.var() for h in hs],
        "dead": [(h == 0).mean() for h in hs],
        "grad_var": [g.var() for g in grads],
        "weight_grad_norm": [np.linalg.norm(h.T @ g) for h, g in zip(h_prev, grads, strict=True)],
    }
    for field, values in expected.items():
        np.testing.assert_allclose(getattr(res, field)[0], values, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(res.nonfinite, 0)
    assert not np.allclose(res.pre_var[1], res.pre_var[0])  # step 20 is another network


def test_result_layout_sel_and_files(data, tmp_path):
    grid = TrainGrid(inits=["kaiming_normal", "normal(stddev=0.01)"], seeds=2, eval_every=8,
                     activations=["relu", "tanh"], **SMALL)  # fmt: skip
    res = train(grid, data, data)
    assert res.dims == ("init", "activation", "seed")
    assert res.loss.shape == (2, 2, 2, 20)
    assert res.sel(init="he_normal", activation="tanh").loss.shape == (2, 20)  # (seed, step)
    np.testing.assert_array_equal(res.sel(init="kaiming_normal").loss, res.sel(init="he_normal").loss)  # fmt: skip
    assert list(res.eval_steps) == [0, 8, 16, 20]
    assert res.test_accuracy.shape == (2, 2, 2, 4)
    assert np.all((res.test_accuracy >= 0) & (res.test_accuracy <= 1))
    assert np.isfinite(res.loss).all()
    # evaluation at step 0 is the untrained network: chance-level loss for the tiny init
    np.testing.assert_allclose(res.sel(init="normal(stddev=0.01)").test_loss[..., 0], np.log(4), atol=1e-3)  # fmt: skip
    res.save(tmp_path / "r")
    back = TrainResult.load(tmp_path / "r")
    assert back.equals(res)
    assert list(back.eval_steps) == [0, 8, 16, 20]
    assert "TrainResult(init=2, activation=2, seed=2" in repr(back)


def test_mlp_module():
    model = MLP(8, (16, 16), 4, activation="tanh", kernel_init="he_normal",
                output_kernel_init="zeros", rngs=nnx.Rngs(params=jax.random.key(0)))  # fmt: skip
    assert [l.kernel.shape for l in model.layers] == [(8, 16), (16, 16)]
    np.testing.assert_array_equal(model.out.kernel[...], 0)  # the documented output option
    assert model(jnp.ones((7, 8))).shape == (7, 4)
    n_params = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert n_params == 8 * 16 + 16 + 16 * 16 + 16 + 16 * 4 + 4


def test_optimizer_specs():
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    grads = {"w": jnp.array([0.5, 0.1, -4.0])}

    def first_update(tx):
        return tx.update(grads, tx.init(params), params)[0]["w"]

    for spec, reference in [
        ("sgd(learning_rate=0.1)", optax.sgd(0.1)),
        ("adam(learning_rate=0.001, b1=0.8)", optax.adam(0.001, b1=0.8)),
        (["clip_by_global_norm(max_norm=1.0)", "sgd(learning_rate=1.0)"],
         optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1.0))),
    ]:  # fmt: skip
        np.testing.assert_array_equal(first_update(make_optimizer(spec)), first_update(reference))
    tx = optax.adamw(1e-3)
    assert make_optimizer(tx) is tx
    with pytest.raises(ValueError, match=r"unknown optax .* 'adamm'\. Did you mean 'adam'\?"):
        make_optimizer("adamm(learning_rate=0.1)")
    with pytest.raises(ValueError, match=r"'sgd\(lr=0\.1\)'.*lr"):
        make_optimizer("sgd(lr=0.1)")
    with pytest.raises(ValueError, match="positional"):
        make_optimizer("sgd(0.1)")
    with pytest.raises(TypeError, match="optax spec string"):
        make_optimizer(0.1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(inits=["he_nromal"]), ValueError, r"Did you mean 'he_normal'"),
        (dict(inits=[]), ValueError, r"inits is empty"),
        (dict(inits=["he_normal", "kaiming_normal"]), ValueError, r"configuration twice"),
        (dict(activations="rleu"), ValueError, r"Did you mean 'relu'"),
        (dict(seeds=0), ValueError, r"seeds must be an int >= 1"),
        (dict(seeds=[1, 1]), ValueError, r"distinct"),
        (dict(hidden=()), ValueError, r"hidden must be a non-empty list"),
        (dict(hidden=(4, 0)), ValueError, r"hidden must be an int >= 1; got 0"),
        (dict(output="softmx"), ValueError, r"Did you mean 'softmax'"),
        (dict(shuffle="per-seed"), ValueError, r"Did you mean 'per_seed'"),
        (dict(steps=0), ValueError, r"steps must be an int >= 1"),
        (dict(batch_size=0), ValueError, r"batch_size must be an int >= 1 or None"),
        (dict(eval_every=2.5), TypeError, r"eval_every must be an int.*got 2\.5"),
        (dict(steps="10"), TypeError, r"steps must be an int >= 1; got '10'"),
        (dict(record_stats_at=(30,)), ValueError, r"record_stats_at .* \[0, 20\]"),
        (dict(optimizer="sdg(learning_rate=0.1)"), ValueError, r"Did you mean 'sgd'"),
        (dict(bias_inits="he_normal"), ValueError, r"a bias is a vector"),
        (dict(keep_params=1), TypeError, r"keep_params must be True or False"),
    ],
)
def test_bad_grids_fail_before_running(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainGrid(**{"inits": ["he_normal"], **SMALL, **kwargs})


def test_bad_data_fails_before_running(data):
    x, y = data
    grid = TrainGrid(inits=["he_normal"], **SMALL)
    with pytest.raises(ValueError, match=r"batch_size=32 exceeds the 16"):
        train(grid, (x[:16], y[:16]))
    with pytest.raises(ValueError, match=r"labels 0 and 1"):
        train(dataclasses.replace(grid, output="sigmoid"), data)
    with pytest.raises(ValueError, match=r"eval_data has 3 features, data 8"):
        train(grid, data, (x[:, :3], y))
    with pytest.raises(ValueError, match=r"x \(n, d\) and y \(n,\)"):
        train(grid, (x, y[:-1]))
    with pytest.raises(TypeError, match=r"a pair \(x, y\)"):
        train(grid, x)
    with pytest.raises(ValueError, match=r"checkpoint_every must be an int >= 1"):
        train(grid, data, checkpoint_every=0)
    with pytest.raises(ValueError, match=r"checkpoint_every needs a directory"):
        train(grid, data, checkpoint_every=5)


@pytest.mark.slow
def test_benchmark_smoke(capsys, mnist_dir):
    where = mnist_dir
    spec = importlib.util.spec_from_file_location("train_mnist", ROOT / "benchmarks" / "train_mnist.py")  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        fig = module.main(["--steps", "4", "--seeds", "1", "--examples", "512", "--data-dir", str(where)])  # fmt: skip
    finally:
        del sys.modules[spec.name]
    assert fig["models"] == 3
    assert fig["steps"] == 4
    for peer in ("jaxinit", "jax_loop"):
        assert fig["peers"][peer]["model_steps_per_s"] > 0
    assert fig["peers"]["torch"].get("model_steps_per_s", 1) > 0  # absent torch: {"skipped": ...}
    assert fig["table"] in capsys.readouterr().out


def test_train_starts_from_the_network_the_sweep_measured():
    """One network per seed: the model ``train`` starts from at seed s is the sweep's network
    at seed s (kernels and biases bitwise), and the step-0 statistics ``train`` records on
    the same batch are the sweep's within float32 rounding."""
    x, y = teacher_data(7, 24, 6)
    inits, seeds, bias = ["he_normal", "glorot_uniform"], [2, 5], "normal(stddev=0.1)"
    tgrid = TrainGrid(inits=inits, seeds=seeds, hidden=(8, 8, 8), activations="tanh",
                      bias_inits=bias, root_seed=11, steps=1, batch_size=len(x),
                      record_stats_at=(0,), optimizer="sgd(learning_rate=0.1)")  # fmt: skip
    sgrid = ji.Grid(inits=inits, activations=["tanh"], depth=3, width=8, seeds=seeds,
                    bias_inits=bias, root_seed=11, inputs=np.asarray(x))  # fmt: skip
    for init, seed in itertools.product(sgrid.inits, seeds):
        model = tgrid.build(6, 4, init=init, seed=seed)
        net = network(sgrid, init, sgrid.bias_inits, 3, 8, seed)
        for layer, w, b in zip(model.layers, net.weights, net.biases, strict=True):
            np.testing.assert_array_equal(layer.kernel[...], w)
            np.testing.assert_array_equal(layer.bias[...], b)
    # the full batch at step 0 (in another row order: the statistics do not depend on it)
    trained = train(tgrid, (x, y))
    assert trained.dims == ("init", "seed")
    swept = ji.sweep(sgrid).sel(activation="tanh")  # (init, seed, layer)
    for field in ("pre_mean", "pre_var", "post_mean", "post_var"):
        np.testing.assert_allclose(trained[field][:, :, 0], swept[field], rtol=ENGINE_RTOL,
                                   atol=ENGINE_ATOL, err_msg=field)  # fmt: skip
    # and the comparison sees another seed's network
    other = ji.sweep(dataclasses.replace(sgrid, seeds=[3, 5])).sel(activation="tanh")
    assert not np.allclose(trained.pre_var[:, 0, 0], other.pre_var[:, 0], rtol=1e-3)


def _one_at_a_time(grid, d_in, d_out, act, width):
    """A group's parameters as train built them before built_models: a model at a time."""
    states = [
        nnx.state(grid.build(d_in, d_out, init=i, seed=s, activation=act, width=width))
        for i, _, s in grid.group_models()
    ]
    return jax.tree.map(lambda *a: np.stack(a), *states)


def _nbytes(state):
    return sum(a.nbytes for a in jax.tree.leaves(state))


def _unit_columns(key, shape, dtype=jnp.float32):  # a user's init with a reduction
    w = jax.random.normal(key, shape, dtype)
    return w / jnp.linalg.norm(w, axis=0, keepdims=True)


def _two_linears(rngs):  # a model grid's factory: the draws of its kernels are the grid's
    return nnx.Sequential(nnx.Linear(6, 6, rngs=rngs), jax.nn.relu, nnx.Linear(6, 6, rngs=rngs))


def test_vmapped_builds_are_the_models_built_one_at_a_time(monkeypatch):
    """From VMAP_SEEDS seeds, train builds an init's seeds in one vmapped call: the same
    parameters, bitwise, as each model built alone, in group_models order (init,
    learning_rate, seed). By construction: the draws are elementwise ops (and a QR per
    matrix for orthogonal), run eagerly with a leading seed axis. Checked for each kind of
    draw, with a learning_rate dim (the rates share their draw), in blocks of two models (3
    seeds: the second block padded), with μP's rescaled readout. A model grid's factory and
    a user's initializer may reduce over an axis (here a column norm, which a leading axis
    rounds otherwise): those are built one at a time, and are the same bits too."""
    from jaxinit.training import _run

    monkeypatch.setattr(_run, "VMAP_SEEDS", 1)
    seeds = [0, 17, 2**31 - 1]
    inits = ["he_normal", "orthogonal(scale=1.3)", "sparse"]  # truncated, QR, permutations
    mlp = TrainGrid(inits=inits, seeds=seeds, hidden=(6, 6), bias_inits="normal(stddev=0.1)",
                    learning_rate=[0.1, 0.01], optimizer="sgd", root_seed=5)  # fmt: skip
    mup = TrainGrid(inits=inits[:1], seeds=seeds, hidden=(1, 1), width=[6],
                    parametrization="mup", learning_rate=[0.01], optimizer="adam")  # fmt: skip
    own = TrainGrid(model=_two_linears, inits=["glorot_normal"], seeds=seeds)
    unit = TrainGrid(inits=[_unit_columns], seeds=seeds, hidden=(64,), bias_inits="zeros")
    for grid in (mlp, mup, own, unit):
        ((act, width),) = grid.groups()
        d_in = 37 if grid is unit else 6  # (37, 64): batched, its column norms round otherwise
        alone = [
            nnx.state(grid.build(d_in, 6, init=i, seed=s, activation=act, width=width))
            for i, _, s in grid.group_models()
        ]
        # blocks of two models: the 3 seeds in two calls, the second padded
        monkeypatch.setattr(_run, "BUILD_BYTES", 2 * _nbytes(alone[0]))
        graphdef, params = _run.built_models(grid, d_in, 6, act, width)
        assert jax.tree.structure(params) == jax.tree.structure(alone[0])
        leaves = jax.tree.leaves_with_path(params)
        for m, one in enumerate(alone):
            for (path, a), b in zip(leaves, jax.tree.leaves(one), strict=True):
                assert isinstance(a, np.ndarray)
                np.testing.assert_array_equal(a[m], b, err_msg=f"model {m}, {path}")
        model = nnx.merge(graphdef, jax.tree.map(lambda a: a[0], params))
        assert type(model) is type(grid.build(d_in, 6, init=grid.inits[0], seed=0, width=width))
    # jax's rbg keys draw other bits under vmap: built one at a time, the same bits again
    with jax.default_prng_impl("rbg"):
        rbg = TrainGrid(inits=["he_normal"], seeds=seeds, hidden=(6,))
        _, params = _run.built_models(rbg, 6, 6, *rbg.groups()[0])
        for m, s in enumerate(seeds):
            one = nnx.state(rbg.build(6, 6, init="he_normal", seed=s))
            for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(one), strict=True):
                np.testing.assert_array_equal(a[m], b, err_msg=f"rbg, model {m}")
    # an accelerator's batched QR may round otherwise than its single one: there the
    # grids with an orthogonal draw are built one at a time, the others still vmapped
    monkeypatch.setattr(_run, "_per_matrix_qr", lambda: False)
    monkeypatch.setattr(_run, "_vmapped_blocks", lambda *a: pytest.fail("vmapped on a GPU"))
    qr = TrainGrid(inits=["he_normal", "delta_orthogonal"], seeds=seeds, hidden=(6,))
    _, params = _run.built_models(qr, 6, 6, *qr.groups()[0])
    assert jax.tree.leaves(params)[0].shape[0] == 6  # two inits × three seeds
    with pytest.raises(pytest.fail.Exception, match="vmapped on a GPU"):
        _run.built_models(dataclasses.replace(qr, inits=["he_normal"]), 6, 6, *qr.groups()[0])
    monkeypatch.undo()
    monkeypatch.setattr(_run, "VMAP_SEEDS", 1)
    # and train from them: the same losses, bitwise, as from models built one at a time
    x, y = teacher_data(7, 24, 6, classes=6)  # the shapes above: blocks of two again
    monkeypatch.setattr(_run, "BUILD_BYTES", 2 * _nbytes(nnx.state(mlp.build(6, 6, init="zeros", seed=0))))  # fmt: skip
    short = dataclasses.replace(mlp, steps=2, batch_size=None)
    vmapped = train(short, (x, y)).loss
    monkeypatch.setattr(_run, "VMAP_SEEDS", 10**9)
    np.testing.assert_array_equal(vmapped, train(short, (x, y)).loss)


def test_mlp_takes_a_seed_key_or_rngs_not_both():
    key = ji.sweeping.seed_key(0, 1)
    for kw in ({}, {"key": key, "rngs": nnx.Rngs(0)}):
        with pytest.raises(TypeError, match=r"give exactly one of key= .* or rngs="):
            MLP(3, (4,), 2, **kw)
    a, b = MLP(3, (4,), 2, key=key), MLP(3, (4,), 2, key=key)
    np.testing.assert_array_equal(a.out.kernel[...], b.out.kernel[...])
    assert MLP(3, (4,), 2, rngs=nnx.Rngs(0)).layers[0].kernel[...].shape == (3, 4)


# -- checkpoints a Flax user can restore -----------------------------------------------------------

RESTORE = dict(inits=["he_normal", "glorot_uniform"], seeds=[0, 3], activations=["relu", "tanh"],
               learning_rate=[0.01, 0.1], optimizer="adam", hidden=(8, 8), steps=4,
               batch_size=32, keep_params=True)  # fmt: skip


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """A finished run of 2 groups (activations) of 8 models with Adam and injected rates."""
    out = tmp_path_factory.mktemp("restore") / "run"
    grid = TrainGrid(**RESTORE)
    return grid, out, train(grid, data, out=out)


def _documented_names(tree):
    """A leaf's name as the checkpoint format documents it: its key path joined by '/', an
    nnx.Variable taken whole (so not ending in '/value')."""
    flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda v: isinstance(v, nnx.Variable))
    return [jax.tree_util.keystr(p, simple=True, separator="/") for p, _ in flat[0]]


def test_a_checkpoint_names_its_arrays_by_flax_and_optax_paths(finished, data):
    grid, out, _ = finished
    with np.load(out / "checkpoint.npz") as z:
        ckpt = {k: z[k] for k in z.files}
    params = nnx.state(grid.build(8, 4, init="he_normal", seed=0))
    opt = grid.build_optimizer(learning_rate=0.1).init(params)
    assert _documented_names(params) == ["layers/0/bias", "layers/0/kernel", "layers/1/bias",
                                         "layers/1/kernel", "out/bias", "out/kernel"]  # fmt: skip
    expected = {"step", "loss", "test_loss", "test_accuracy", "_fingerprint", "_sha256"}
    for a in (0, 1):  # relu, tanh
        expected |= {f"group/{a}/params/{n}" for n in _documented_names(params)}
        expected |= {f"group/{a}/opt_state/{n}" for n in _documented_names(opt)}
    assert set(ckpt) == expected
    assert "group/1/opt_state/inner_state/0/mu/layers/0/kernel" in ckpt  # Adam's first moment
    assert ckpt["group/1/params/layers/0/kernel"].shape == (8, 8, 8)  # (models, fan_in, fan_out)
    # the rows are (init, learning_rate, seed) in C order: each model's injected rate
    rates = ckpt["group/0/opt_state/hyperparams/learning_rate"]
    np.testing.assert_array_equal(rates, np.float32([0.01, 0.01, 0.1, 0.1] * 2))
    assert int(ckpt["step"]) == grid.steps


def _forward(params, act, x):
    """The MLP's forward pass written out with the trained arrays: x W + b, then φ."""
    fn, n = ji.activations.get(act).fn, len(params) // 2  # layers, the output's last
    h = jnp.asarray(x)
    for l in range(n):
        z = h @ params[f"kernel_{l}"] + params[f"bias_{l}"][None, :]
        h = fn(z) if l < n - 1 else z
    return h


@pytest.mark.parametrize(
    "labels",
    [dict(init="glorot_uniform", seed=3, activation="tanh", learning_rate=0.01),
     dict(init="xavier_uniform", seed=0, activation="relu", learning_rate=0.1)],  # an alias
)  # fmt: skip
def test_restore_model_gives_back_the_trained_model(finished, data, labels):
    from jaxinit.training import restore_model

    _grid, out, res = finished
    x = data[0][:50]
    model = restore_model(out, **labels)
    assert isinstance(model, MLP)
    assert isinstance(model, nnx.Module)
    init = ji.initializers.get(labels["init"]).spec
    kept = res.sel(**{**labels, "init": init})  # the keep_params fields: the trained arrays
    params = {k: kept[k] for k in kept.fields if k.startswith(("kernel_", "bias_"))}
    for l, layer in enumerate([*model.layers, model.out]):
        np.testing.assert_array_equal(layer.kernel[...], params[f"kernel_{l}"])
        np.testing.assert_array_equal(layer.bias[...], params[f"bias_{l}"])
    logits = np.asarray(model(x))
    np.testing.assert_array_equal(logits, np.asarray(_forward(params, labels["activation"], x)))
    np.testing.assert_array_equal(np.asarray(res.model(**labels)(x)), logits)
    # the format by hand, as the checkpoint module's docstring shows it
    a = ["relu", "tanh"].index(labels["activation"])
    m = [(i, lr, s) for i in ("he_normal", "glorot_uniform") for lr in (0.01, 0.1) for s in (0, 3)]
    m = m.index((init, labels["learning_rate"], labels["seed"]))
    with np.load(out / "checkpoint.npz") as z:
        p = f"group/{a}/params/"
        flat = {tuple(int(s) if s.isdigit() else s for s in k[len(p):].split("/")): z[k][m]
                for k in z.files if k.startswith(p)}  # fmt: skip
    by_hand = MLP(8, (8, 8), 4, activation=labels["activation"], rngs=nnx.Rngs(0))
    nnx.update(by_hand, nnx.from_flat_state(flat))
    np.testing.assert_array_equal(np.asarray(by_hand(x)), logits)


def test_restore_model_names_the_valid_labels(finished):
    from jaxinit.training import restore_model

    _grid, out, res = finished
    one = dict(seed=0, activation="relu", learning_rate=0.1)
    with pytest.raises(ValueError, match=r"unknown init 'he_uniform'; valid labels: \['he_normal', 'glorot_uniform'\]"):  # fmt: skip
        restore_model(out, init="he_uniform", **one)
    with pytest.raises(ValueError, match=r"unknown seed 7; valid labels: \[0, 3\]"):
        restore_model(out, init="he_normal", **{**one, "seed": 7})
    with pytest.raises(ValueError, match=r"give activation=, one of \['relu', 'tanh'\]"):
        restore_model(out, init="he_normal", seed=0, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"unknown learning_rate 0.3; valid labels: \[0.01, 0.1\]"):
        restore_model(out, init="he_normal", **{**one, "learning_rate": 0.3})
    with pytest.raises(ValueError, match=r"unknown init label 'he_uniform'; valid: \['he_normal', 'glorot_uniform'\]"):  # fmt: skip
        res.model(init="he_uniform", **one)
    with pytest.raises(ValueError, match=r"give a label for every dim .*; missing \['learning_rate'\]"):  # fmt: skip
        res.model(init="he_normal", seed=0, activation="relu")
    with pytest.raises(FileNotFoundError, match=r"holds no training run \(no train.json\)"):
        restore_model(out.parent, init="he_normal", **one)
    lean = TrainResult(**{k: getattr(res, k) for k in ("dims", "coords", "attrs", "aliases")},
                       fields={"loss": res.loss}, field_dims={"loss": ("step",)})  # fmt: skip
    with pytest.raises(ValueError, match=r"needs the final parameters: train with TrainGrid\(keep_params=True\)"):  # fmt: skip
        lean.model(init="he_normal", **one)


def test_restore_model_finds_the_block_of_a_run_of_several_processes(finished, data, tmp_path):
    """Each process of a multi-process run checkpoints its block of seeds in
    ``out/seeds-<first>-<last>``; restore_model reads the block that holds the seed."""
    from jaxinit.training import restore_model

    grid, out, _ = finished
    labels = dict(init="he_normal", activation="tanh", learning_rate=0.1)
    for block in ([0], [3]):  # what each process trains (jaxinit.training._processes)
        part = dataclasses.replace(grid, seeds=block, keep_params=False)
        train(part, data, out=tmp_path / f"seeds-{block[0]}-{block[-1]}")
    x = data[0][:50]
    for seed in (0, 3):
        # alone in a stack of other size: equal within the last bits (the module's docstring)
        np.testing.assert_allclose(np.asarray(restore_model(tmp_path, seed=seed, **labels)(x)),
                                   np.asarray(restore_model(out, seed=seed, **labels)(x)),
                                   rtol=TRAIN_RTOL, atol=TRAIN_ATOL)  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown seed 5; valid labels: \[0, 3\]"):
        restore_model(tmp_path, seed=5, **labels)


def test_a_checkpoint_of_another_format_is_refused_saying_how_to_rerun(data, tmp_path):
    from jaxinit.training import restore_model

    grid = TrainGrid(inits=["he_normal"], **dict(SMALL, steps=2))
    out = tmp_path / "run"
    train(grid, data, out=out)
    path = out / "train.json"
    manifest = json.loads(path.read_text())
    assert manifest["schema_version"] == 4  # checkpoints named by their Flax and Optax paths
    manifest["schema_version"] = 3  # the numbered g{a}_{j}_{i} arrays of the release before
    path.write_text(json.dumps(manifest))
    rerun = (rf"{out} holds a training run checkpoint in format 3, written by another jaxinit "
             r"version; this one reads format 4 only. Delete the directory to rerun from the start")  # fmt: skip
    with pytest.raises(ValueError, match=rerun):
        train(grid, data, out=out)
    with pytest.raises(ValueError, match=rerun):
        restore_model(out, init="he_normal", seed=0)


def test_the_result_records_what_it_was_trained_on(tmp_path):
    """attrs["dataset"]: the description given, sizes and digests (either way); a renamed
    dataset resumes (the fingerprint holds the digests), other data do not."""
    x, y = ji.data.make_circles(jax.random.key(0), 64, noise=0.1)
    grid = ji.TrainGrid(inits=["he_normal"], seeds=1, hidden=(4,), output="sigmoid",
                        batch_size=None, steps=3, optimizer="sgd(learning_rate=0.1)")  # fmt: skip
    res = ji.train(grid, (x, y), progress=False)
    record = res.attrs["dataset"]
    assert record["description"] is None
    assert record["eval_data"] is None  # evaluated on the training data
    assert (record["data"]["examples"], record["data"]["features"]) == (64, 2)
    digest = hashlib.sha256()
    for a in (np.asarray(x, np.float32), np.asarray(y, np.int32)):
        digest.update(f"{a.shape} {a.dtype.str}".encode())
        digest.update(a.tobytes())
    assert record["data"]["sha256"] == digest.hexdigest()
    named = ji.train(grid, (x, y), out=tmp_path, progress=False, dataset="circles, seed 0")
    assert named.attrs["dataset"]["description"] == "circles, seed 0"
    again = ji.train(grid, (x, y), out=tmp_path, progress=False, dataset="renamed")
    assert again.attrs["dataset"]["description"] == "renamed"
    np.testing.assert_array_equal(again.loss, named.loss)
    with pytest.raises(ValueError, match=r"fingerprint|another"):
        ji.train(grid, (x[::-1], y[::-1]), out=tmp_path, progress=False)
    with pytest.raises(TypeError, match="dataset must be a description"):
        ji.train(grid, (x, y), progress=False, dataset=3)
    with pytest.raises(ValueError, match="dataset is an empty description"):
        ji.train(grid, (x, y), progress=False, dataset="  ")
    assert "not described" in ji.report.html.dataset_line(res.attrs)
