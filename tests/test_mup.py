"""Width and learning-rate dims, μP (TP5 Table 3) for SGD and Adam, and the coord check."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx

import jaxinit as ji
from jaxinit._jax_compat import compiled_count
from jaxinit.training import TrainGrid, coord_sizes, coord_slopes, train
from jaxinit.training._program import init_opt, train_chunk
from tests._teacher import teacher_data
from tests._tolerances import COORD_SLOPE_SPLIT, INJECTED_RTOL, TRAIN_ATOL, TRAIN_RTOL

SMALL = dict(hidden=(1, 1), steps=6, batch_size=32)


@pytest.fixture(scope="module")
def data():
    return teacher_data(7, 256, 8)


# TP5 Table 3 at 4× the base width, written out by hand: (variance factor, learning-rate
# factor) per parameter of a 2-hidden-layer MLP, d_in 8 and 4 classes.
TABLE = {
    "sgd": {"kernel_0": (1, 4), "bias_0": (1, 4), "kernel_1": (1, 1), "bias_1": (1, 4),
            "kernel_out": (1 / 4, 1 / 4), "bias_out": (1, 1)},
    "adam": {"kernel_0": (1, 1), "bias_0": (1, 1), "kernel_1": (1, 1 / 4), "bias_1": (1, 1),
             "kernel_out": (1 / 4, 1 / 4), "bias_out": (1, 1)},
}  # fmt: skip
OPTIMIZERS = {"sgd": "sgd(learning_rate=0.1)", "adam": "adam(learning_rate=0.01)"}


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("parametrization", ["standard", "mup"])
def test_layer_rules_follow_the_table(kind, parametrization):
    grid = TrainGrid(inits=["he_normal"], width=[16, 64], parametrization=parametrization,
                     optimizer=OPTIMIZERS[kind], **SMALL)  # fmt: skip
    rules = {r.param: r for r in grid.layer_rules(8, 4, width=64)}
    assert set(rules) == set(TABLE[kind])
    for name, (var, lr) in TABLE[kind].items():
        want = (var, lr) if parametrization == "mup" else (1, 1)
        assert (rules[name].variance_factor, rules[name].lr_factor) == pytest.approx(want)
    assert rules["kernel_1"].shape == (64, 64)
    # μP measures fans against the base width; the standard parametrization has no base
    assert rules["kernel_1"].base_shape == ((16, 16) if parametrization == "mup" else (64, 64))
    assert {r.role for r in rules.values()} == {"input", "hidden", "output", "bias"}
    # at the base width μP is the standard parametrization
    assert all(r.variance_factor == r.lr_factor == 1 for r in grid.layer_rules(8, 4, width=16))


def test_mup_output_init_scales_the_same_draw():
    kw = dict(inits=["he_normal"], width=[16, 64], optimizer="adam", learning_rate=[0.01], **SMALL)
    mup = TrainGrid(parametrization="mup", **kw).build(8, 4, init="he_normal", seed=3, width=64)
    std = TrainGrid(**kw).build(8, 4, init="he_normal", seed=3, width=64)
    # variance × 16/64: the same standardized draw times 1/2; the other layers untouched
    np.testing.assert_allclose(mup.out.kernel[...], std.out.kernel[...] / 2, rtol=1e-6)
    np.testing.assert_array_equal(mup.layers[1].kernel[...], std.layers[1].kernel[...])
    zero = TrainGrid(parametrization="mup", output_init="zeros", **kw)
    assert not np.any(zero.build(8, 4, init="he_normal", seed=3, width=64).out.kernel[...])


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_effective_learning_rates_per_layer(kind):
    """One step of the grid's optimizer equals, leaf by leaf, the plain optax optimizer at
    the base rate times the table's factor (with and without an injected rate)."""
    width, lr = 64, 0.05
    make = {"sgd": optax.sgd, "adam": optax.adam}[kind]
    grid = TrainGrid(inits=["he_normal"], width=[16, width], learning_rate=[lr, 0.2],
                     parametrization="mup", optimizer=kind, **SMALL)  # fmt: skip
    fixed = TrainGrid(inits=["he_normal"], width=[16, width], parametrization="mup",
                      optimizer=f"{kind}(learning_rate={lr})", **SMALL)  # fmt: skip
    model = grid.build(8, 4, init="he_normal", seed=0, width=width)
    params = nnx.split(model)[1]
    grads = jax.tree.map(lambda p: jax.random.normal(jax.random.key(p.size), p.shape), params)
    factors = {r.param: r.lr_factor for r in grid.layer_rules(8, 4, width=width)}
    for tx in (grid.build_optimizer(width=width, learning_rate=lr), fixed.build_optimizer(width=width)):  # fmt: skip
        updates, _ = tx.update(grads, tx.init(params), params)
        names = [r.param for r in grid.layer_rules(8, 4, width=width)]
        for name, u, g in zip(names, jax.tree.leaves(updates), jax.tree.leaves(grads), strict=True):
            ref = make(lr * factors[name])
            want, _ = ref.update(g, ref.init(g))
            np.testing.assert_allclose(u, want, rtol=INJECTED_RTOL, err_msg=name)


def _reference_losses(grid, data, *, width, lr, seed):
    """One model, one step at a time: ``grid.build`` and ``grid.build_optimizer``."""
    x, y = data
    graphdef, params = nnx.split(grid.build(8, 4, init="he_normal", seed=seed, width=width))
    tx = grid.build_optimizer(width=width, learning_rate=lr)
    opt, losses, n, b = tx.init(params), [], len(x), grid.batch_size

    @jax.jit
    def step(params, opt, xb, yb):
        def loss_fn(p):
            return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p)(xb), yb).mean()  # fmt: skip

        loss, g = jax.value_and_grad(loss_fn)(params)
        u, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, u), opt, loss

    for s in range(grid.steps):
        epoch, pos = divmod(s, n // b)
        rows = np.asarray(
            jax.random.permutation(jax.random.fold_in(grid.batch_key(seed), epoch), n)
        )
        rows = rows[pos * b : (pos + 1) * b]
        params, opt, loss = step(params, opt, x[rows], y[rows])
        losses.append(float(loss))
    return np.array(losses)


@pytest.mark.parametrize("parametrization", ["standard", "mup"])
def test_width_and_rate_grid_equals_one_model_at_a_time(data, parametrization):
    grid = TrainGrid(inits=["he_normal"], seeds=[0, 5], width=[8, 24], learning_rate=[0.01, 0.05],
                     parametrization=parametrization, optimizer="adam", **SMALL)  # fmt: skip
    res = train(grid, data)
    assert res.dims == ("init", "width", "learning_rate", "seed")
    assert res.loss.shape == (1, 2, 2, 2, 6)
    for width, lr, seed in [(8, 0.05, 5), (24, 0.01, 0), (24, 0.05, 5)]:
        want = _reference_losses(grid, data, width=width, lr=lr, seed=seed)
        got = res.sel(init="he_normal", width=width, learning_rate=lr, seed=seed).loss
        np.testing.assert_allclose(got, want, rtol=TRAIN_RTOL, atol=TRAIN_ATOL)
    # the rate matters, and μP differs from standard beyond the base width only
    a = res.sel(init="he_normal", width=24, seed=0).loss
    assert not np.allclose(a[0], a[1])


def test_compile_count_is_one_program_per_width(data):
    kw = dict(inits=["he_normal"], hidden=(1, 1), steps=7, batch_size=32, optimizer="adam")
    before, opt_before = compiled_count(train_chunk), compiled_count(init_opt)
    train(TrainGrid(width=[8, 12, 16], learning_rate=[0.01, 0.02], seeds=2, **kw), data)
    assert compiled_count(train_chunk) - before == 3  # one per width: rates and seeds are data
    assert compiled_count(init_opt) - opt_before == 3
    # other rates and seeds, as many models per width: no new program
    train(TrainGrid(width=[8, 12, 16], learning_rate=[0.3, 0.001], seeds=[4, 9], **kw), data)
    assert compiled_count(train_chunk) - before == 3


@pytest.mark.slow
def test_coord_check_mup_is_flat_and_standard_output_grows():
    """The coord check on synthetic data; COORD_SLOPE_SPLIT is derived in tests/_tolerances.py."""
    x, y = teacher_data(42, 512, 16)
    kw = dict(inits=["he_normal"], seeds=8, hidden=(1, 1, 1, 1), width=[32, 256],
              optimizer="adam", learning_rate=1e-3, steps=20, batch_size=64, record_stats_at=[0, 20])  # fmt: skip
    std = train(TrainGrid(**kw), (x, y))
    mup = train(TrainGrid(parametrization="mup", output_init="zeros", **kw), (x, y))
    s_std, s_mup = coord_slopes(std), coord_slopes(mup)
    assert list(s_mup) == ["layer_1", "layer_2", "layer_3", "layer_4", "output"]
    assert all(abs(s) < COORD_SLOPE_SPLIT for s in s_mup.values()), s_mup
    assert s_std["output"] > COORD_SLOPE_SPLIT, s_std
    # the sizes are mean |h|: at step 0 the standard and μP hidden layers are the same network
    a, b = coord_sizes(std), coord_sizes(mup)
    np.testing.assert_allclose(a["layer_2"][:, 0], b["layer_2"][:, 0], rtol=1e-6)
    assert a["output"].shape == (2, 2)  # (width, recorded step)
    assert not np.any(b["output"][:, 0])


@pytest.mark.parametrize(
    ("kw", "err", "match"),
    [
        (dict(parametrization="mup"), ValueError, r"scales with width; give width"),
        (dict(parametrization="mu"), ValueError, r"parametrization='mu' is not valid.*'mup'"),
        (dict(width=[8, 16], base_width=8), ValueError, r"base_width=8 is μP's"),
        (dict(width=[8, 8]), ValueError, r"width repeats"),
        (dict(width=[8, 0]), ValueError, r"width must be an int >= 1; got 0"),
        (
            dict(learning_rate=[0.1, -1]),
            ValueError,
            r"learning_rate must be a finite real number > 0; got -1",
        ),
        (
            dict(learning_rate=[0.1], optimizer="adam(learning_rate=0.1)"),
            ValueError,
            r"given twice",
        ),
        (dict(learning_rate=[0.1], optimizer="adamm"), ValueError, r"Did you mean 'adam'"),
        (
            dict(learning_rate=[0.1], optimizer=["clip(max_delta=1.0)", "sgd"]),
            ValueError,
            r"one optax spec string",
        ),
        (
            dict(width=[8, 16], parametrization="mup", optimizer="lamb(learning_rate=0.1)"),
            ValueError,
            r"names \['lamb'\].*sgd: sgd",
        ),
        (
            dict(width=[8, 16], parametrization="mup", optimizer=optax.sgd(0.1)),
            ValueError,
            r"got an object",
        ),
        (dict(width=[8, 16], keep_params=True), ValueError, r"keep_params needs one width"),
    ],
)
def test_bad_width_rate_and_parametrization(kw, err, match):
    with pytest.raises(err, match=match):
        TrainGrid(inits=["he_normal"], **kw)


def test_coord_slopes_needs_widths(data):
    res = train(TrainGrid(inits=["he_normal"], record_stats_at=[0], **SMALL), data)
    with pytest.raises(ValueError, match="needs a TrainResult with a width dim"):
        coord_slopes(res)
    grid = TrainGrid(inits=["he_normal"], width=[8, 16], **SMALL)
    with pytest.raises(ValueError, match=r"give width=, one of \[8, 16\]"):
        grid.build(8, 4, init="he_normal", seed=0)
    with pytest.raises(ValueError, match=r"width=32 is not valid"):
        grid.hidden_at(32)


def test_cli_train_width_rate_and_mup(tmp_path, capsys):
    from jaxinit.cli import main

    argv = ["train", "--data", "circles", "--inits", "he_normal", "--width", "8", "16",
            "--learning-rate", "0.01", "0.1", "--optimizer", "adam", "--parametrization", "mup",
            "--steps", "5", "--batch-size", "0", "--seeds", "1", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "width  learning_rate" in table
    res = ji.TrainResult.load(tmp_path / "result")
    assert res.dims == ("init", "width", "learning_rate", "seed")
    assert res.attrs["grid"]["parametrization"] == "mup"
    assert res.attrs["grid"]["base_width"] == 8
    assert res.attrs["grid"]["optimizer"] == "adam"
    assert main(["train", "--data", "circles", "--inits", "he_normal", "--parametrization", "mup"]) == 2  # fmt: skip
    assert "give width=" in capsys.readouterr().err
    figures = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    # per width the curves at its best rate, and the width-scaling figure
    assert figures == ["accuracy_width_16_best_rate.png", "accuracy_width_8_best_rate.png",
                       "loss_vs_learning_rate.png", "loss_width_16_best_rate.png",
                       "loss_width_8_best_rate.png"]  # fmt: skip
    page = (tmp_path / "report.html").read_text()
    assert "Width scaling" in page
    assert "<th>learning_rate</th>" in page  # the final table has a column per dim
