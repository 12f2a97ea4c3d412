"""ModelGrid: any Flax NNX model swept over inits and seeds (jaxinit.sweeping._model_*)."""

import functools
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit as ji
from jaxinit.sweeping import _model_run
from tests._tolerances import ENGINE_HIST_L1, MODEL_ATOL, MODEL_RTOL, theory_var_rtol

BATCH = 8
RNG = np.random.default_rng(0)
ZOO = {
    "mlp": (functools.partial(ji.models.MLP, d_in=8, width=16, depth=3), (BATCH, 8)),
    "cnn": (
        functools.partial(ji.models.CNN, in_channels=3, channels=8, depth=2, classes=4),
        (BATCH, 6, 6, 3),
    ),
    "resnet": (functools.partial(ji.models.ResNet, d_in=8, width=16, depth=2), (BATCH, 8)),
    "transformer": (
        functools.partial(ji.models.Transformer, d_in=8, d_model=16, heads=2, depth=1),
        (BATCH, 4, 8),
    ),
}
INITS = ["he_normal", "normal(stddev=0.5)", "glorot_uniform"]


def _inputs(shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _grid(name, **kw):
    make, shape = ZOO[name]
    return ji.ModelGrid(model=make, inits=kw.pop("inits", INITS), inputs=_inputs(shape), **kw)


def _reference(grid, init, seed):
    """The plain loop: the eagerly built model, Flax's own nnx.capture, numpy statistics."""
    model = nnx.view(
        grid.build(seed, init=init),
        deterministic=True,
        use_running_average=False,
        raise_if_not_found=False,
    )
    _, inter = nnx.capture(model, nnx.Intermediate, method_outputs=nnx.Intermediate)(
        jnp.asarray(grid.inputs)
    )
    values = {}
    for path, v in nnx.to_flat_state(inter):
        if path[-1] == "__call__":
            name = "/".join(map(str, path[:-1])) or "(model)"
            for i, a in enumerate(v.get_value()):
                values[name if i == 0 else f"{name}#{i}"] = np.asarray(a, np.float64)
    return values


@pytest.mark.parametrize("name", sorted(ZOO))
def test_the_compiled_sweep_equals_a_per_seed_loop(name):
    grid = _grid(name, seeds=[3, 0], gradients=False)
    res = ji.sweep(grid)
    layers = res.attrs["layers"]
    assert res.dims == ("init", "seed")
    assert res.pre_var.shape == (3, 2, len(layers))
    lo, hi = grid.hist_range
    for i, init in enumerate(grid.inits):
        for j, seed in enumerate(grid.seeds):
            ref = _reference(grid, init.spec, seed)
            assert set(layers) <= set(ref), set(layers) - set(ref)
            for l, layer in enumerate(layers):
                a = ref[layer].reshape(BATCH, -1)
                std = a.std()
                np.testing.assert_allclose(res.pre_var[i, j, l], a.var(), rtol=MODEL_RTOL)
                assert abs(res.pre_mean[i, j, l] - a.mean()) <= MODEL_ATOL * std + MODEL_RTOL * abs(
                    a.mean()
                )
                counts, _ = np.histogram(np.clip(a, lo, hi), bins=grid.bins, range=(lo, hi))
                below, above = (a < lo).sum(), (a > hi).sum()
                counts[0] -= below
                counts[-1] -= above
                got = res.hist[i, j, l]
                assert np.abs(got - counts).sum() <= max(2, ENGINE_HIST_L1 * a.size), layer
                assert res.hist_below[i, j, l] == below
                assert res.hist_above[i, j, l] == above


def test_the_mlp_through_the_model_path_is_the_engines_network():
    """The zoo MLP's kernel i is drawn with layer_keys(seed_key, i)[0], as the MLP engine's
    layer i: the same networks, the same readout, the same numbers to float32 rounding."""
    x = _inputs((16, 8))
    inits = ["he_normal", "orthogonal", "normal(stddev=0.1)"]
    make = functools.partial(ji.models.MLP, d_in=8, width=16, depth=3, activation="tanh")
    res = ji.sweep(ji.ModelGrid(model=make, inits=inits, seeds=3, inputs=x))
    engine = ji.sweep(
        ji.Grid(inits=inits, activations=["tanh"], depth=3, width=16, seeds=3, inputs=x)
    ).squeeze()
    assert res.attrs["layers"] == ["layers/0", "layers/1", "layers/2", "(model)"]
    for f in ("pre_mean", "pre_var", "grad_var", "weight_grad_norm"):
        np.testing.assert_allclose(
            res[f][..., :3], engine[f], rtol=MODEL_RTOL, atol=MODEL_ATOL, err_msg=f
        )
    # the model's output is the last post-activation; its gradient is the readout's cotangent
    np.testing.assert_allclose(res.post_var[..., 3], engine.post_var[..., 2], rtol=MODEL_RTOL)
    assert np.isnan(res.weight_grad_norm[..., 3]).all()


def test_the_gradient_at_the_output_is_the_readouts_cotangent():
    grid = _grid("resnet", seeds=2)
    res = ji.sweep(grid)
    last = res.attrs["layers"].index("(model)")
    for j, seed in enumerate(grid.seeds):
        key = jax.random.fold_in(ji.sweeping.seed_key(0, seed), 2)
        g = np.asarray(jax.random.normal(key, (BATCH, 16)), np.float64)
        np.testing.assert_allclose(res.grad_var[:, j, last], g.var(), rtol=MODEL_RTOL)


def test_attention_and_conv_kernels_take_their_modules_fans():
    attn = nnx.MultiHeadAttention(4, 64, decode=False, rngs=nnx.Rngs(0))
    assert ji.models.kernel_view(attn.query) == ((64, 64), False)  # kernel (64, 4, 16)
    assert ji.models.kernel_view(attn.out) == ((64, 64), False)  # kernel (4, 16, 64)
    conv = nnx.Conv(3, 8, (3, 3), rngs=nnx.Rngs(0))
    assert ji.models.kernel_view(conv) == ((3, 3, 3, 8), False)
    tconv = nnx.ConvTranspose(3, 8, (3, 3), transpose_kernel=True, rngs=nnx.Rngs(0))
    assert tconv.kernel.shape == (3, 3, 8, 3)
    assert ji.models.kernel_view(tconv) == ((3, 3, 3, 8), True)
    # and the built model's kernel has He's variance for fan-in 64, not 256
    make = functools.partial(ji.models.Transformer, d_in=8, d_model=64, heads=4, depth=1)
    grid = ji.ModelGrid(model=make, inits=["he_normal"], inputs=_inputs((2, 3, 8)))
    q = np.asarray(grid.build(0, init="he_normal").blocks[0].attn.query.kernel[...])
    assert q.shape == (64, 4, 16)
    assert abs(q.var() / (2 / 64) - 1) < 0.15  # 4096 draws: 5 standard errors ≈ 0.1


def test_a_rule_keeps_the_heads_own_init():
    make, shape = ZOO["cnn"]
    keep = ji.models.kernels(exclude=r"^head$")
    grid = ji.ModelGrid(model=make, inits=INITS, inputs=_inputs(shape), rule=keep)
    own = make(nnx.Rngs(jax.random.fold_in(ji.sweeping.seed_key(0, 0), 4)))
    built = grid.build(0, init="he_normal")
    np.testing.assert_array_equal(built.head.kernel[...], own.head.kernel[...])
    assert not np.array_equal(built.convs[0].kernel[...], own.convs[0].kernel[...])
    res = ji.sweep(grid)
    assert res.attrs["kernels"] == ["convs/0", "convs/1"]


def test_dropout_is_off_and_batch_norm_uses_the_batch():
    class Net(nnx.Module):
        def __init__(self, rngs, dropout):
            self.fc = nnx.Linear(8, 32, rngs=rngs)
            self.bn = nnx.BatchNorm(32, rngs=rngs)
            self.drop = nnx.Dropout(dropout, rngs=rngs)

        def __call__(self, x):
            return self.drop(self.bn(self.fc(x) * 5.0 + 3.0))

    x = _inputs((64, 8))
    runs = [
        ji.sweep(
            ji.ModelGrid(
                model=functools.partial(Net, dropout=p), inits=["he_normal"], inputs=x, seeds=2
            )
        )
        for p in (0.0, 0.5)
    ]
    np.testing.assert_array_equal(runs[0].pre_var, runs[1].pre_var)  # dropout off
    bn = runs[0].attrs["layers"].index("bn")
    np.testing.assert_allclose(runs[0].pre_var[..., bn], 1.0, rtol=1e-3)  # batch statistics
    np.testing.assert_allclose(runs[0].pre_mean[..., bn], 0.0, atol=1e-5)


def test_a_subclass_that_inherits_call_is_captured_and_repeat_calls_are_numbered():
    class MyLinear(nnx.Linear):
        pass

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.a = MyLinear(8, 8, rngs=rngs)

        def __call__(self, x):
            return self.a(self.a(x))

    res = ji.sweep(ji.ModelGrid(model=Net, inits=["he_normal"], inputs=_inputs((4, 8))))
    assert res.attrs["layers"] == ["a", "a#1", "(model)"]
    assert res.attrs["layer_types"] == ["MyLinear", "MyLinear", "Net"]


def test_a_second_grid_with_other_seeds_and_inits_compiles_nothing():
    make, shape = ZOO["mlp"]
    x = _inputs(shape)
    ji.sweep(ji.ModelGrid(model=make, inits=["he_normal", "lecun_normal"], seeds=2, inputs=x))
    before = ji.sweeping.programs()
    again = functools.partial(ji.models.MLP, d_in=8, width=16, depth=3)  # an equal factory
    ji.sweep(
        ji.ModelGrid(model=again, inits=["glorot_normal", "he_normal"], seeds=[7, 9], inputs=x)
    )
    assert ji.sweeping.programs() == before


def test_resume_and_a_changed_factory_is_refused(tmp_path, monkeypatch):
    """A killed sweep resumes bitwise; a checkpoint of another factory is refused before
    anything compiles."""
    grid = _grid("mlp", seeds=4)
    whole = ji.sweep(grid)

    def stop(update):
        if update.done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ji.sweep(grid, out=tmp_path, chunk_size=2, on_update=stop)
    assert len(list((tmp_path / "chunks").glob("*.npz"))) == 1
    resumed = ji.sweep(grid, out=tmp_path, chunk_size=2)
    for f in whole.fields:
        np.testing.assert_array_equal(resumed[f], whole[f], err_msg=f)
    other = functools.partial(ji.models.MLP, d_in=8, width=16, depth=3, activation="tanh")
    monkeypatch.setattr(_model_run, "_computer", lambda *a: pytest.fail("compiled first"))
    with pytest.raises(ValueError, match=r"another|differ|fingerprint"):
        ji.sweep(
            ji.ModelGrid(model=other, inits=INITS, seeds=4, inputs=grid.inputs),
            out=tmp_path,
            chunk_size=2,
        )


def test_two_sweeps_in_two_threads_see_only_their_own_model():
    grids = [_grid("mlp", seeds=2), _grid("resnet", seeds=2)]
    alone = [ji.sweep(g) for g in grids]
    ji.sweeping.clear_programs()  # trace and compile again, concurrently
    out, errors = [None, None], []

    def run(i):
        try:
            out[i] = ji.sweep(grids[i])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for a, b in zip(alone, out, strict=True):
        assert a.attrs["layers"] == b.attrs["layers"]
        for f in a.fields:
            np.testing.assert_array_equal(a[f], b[f], err_msg=f)
    assert "__call__" not in nnx.Linear.__dict__ or not hasattr(
        nnx.Linear.__dict__["__call__"], "_jaxinit_original_call"
    )


def test_an_einsum_needs_its_fan_in():
    class Mix(nnx.Module):
        def __init__(self, rngs):
            self.mix = nnx.Einsum("bd,dhk->bhk", (8, 2, 4), rngs=rngs)

        def __call__(self, x):
            return self.mix(x)

    # inputs of its own (the module's RNG is shared, so its draws depend on the tests before)
    x = np.random.default_rng(3).standard_normal((4, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=r"mix.*fan_in"):
        ji.sweep(ji.ModelGrid(model=Mix, inits=["he_normal"], inputs=x))
    rule = ji.models.kernels(fan_in={"mix": 8})
    seeds = 64
    res = ji.sweep(ji.ModelGrid(model=Mix, inits=["he_normal"], inputs=x, rule=rule, seeds=seeds))
    assert res.attrs["kernels"] == ["mix"]
    # He on fan-in 8: E[z²] = 2·mean(x²) over these inputs; the seed mean of a variance over
    # the 8 independent output columns, within theory_var_rtol (fan-in 16 would halve it)
    want = 2 * float(np.mean(np.square(x.astype(np.float64))))
    got = float(res.pre_var[0, :, 0].mean())
    assert got == pytest.approx(want, rel=theory_var_rtol(0, width=8, seeds=seeds))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"model": nnx.Linear(2, 2, rngs=nnx.Rngs(0))}, "instance; give a factory"),
        ({"model": 3}, "factory"),
        ({"inits": ["lsuv"]}, "LSUV"),
        ({"inputs": "gaussian"}, "input_shape"),
        ({"inputs": "sobol", "input_shape": (2, 8)}, "gaussian"),
        ({"hist_range": (1.0, -1.0)}, "lo < hi"),
        ({"rule": "head"}, "kernels"),
        ({"seeds": 0}, "seeds"),
    ],
)
def test_bad_model_grids_say_what_is_wrong(kw, match):
    args = {"model": ZOO["mlp"][0], "inits": ["he_normal"], "inputs": _inputs((4, 8)), **kw}
    with pytest.raises((TypeError, ValueError), match=match):
        ji.ModelGrid(**args)


@pytest.mark.multidevice
def test_results_do_not_depend_on_the_device_count_or_the_chunk():
    """Each device maps over its own seeds with the same per-seed body: bitwise the same."""
    grid = _grid("cnn", seeds=5)
    one = ji.sweep(grid, devices=jax.devices()[:1], chunk_size=5)
    two = ji.sweep(grid, devices=jax.devices()[:2], chunk_size=2)
    assert len(jax.devices()) >= 2
    for f in one.fields:
        np.testing.assert_array_equal(one[f], two[f], err_msg=f)


def test_records_frames_and_datasets_name_each_layer_by_its_path_and_type():
    res = ji.sweep(_grid("resnet", seeds=2, gradients=False))
    layers, types = res.attrs["layers"], res.attrs["layer_types"]
    rows = res.to_records()
    assert [r["path"] for r in rows[: len(layers)]] == layers
    assert [r["type"] for r in rows[: len(layers)]] == types
    frame = res.to_dataframe()
    block = frame[(frame.path == "blocks/1") & (frame.init == "he_normal") & (frame.seed == 1)]
    assert block.type.tolist() == ["ResidualBlock"]
    assert (
        block.pre_var.item() == res.sel(init="he_normal", seed=1).pre_var[layers.index("blocks/1")]
    )
    ds = res.to_xarray()
    assert ds.path.values.tolist() == layers
    assert ji.SweepResult.from_xarray(ds).equals(res)
    edges = res.to_dataframe(hist=True)
    assert edges.bin_lo.min() == res.attrs["hist_edges"][0]
    assert np.isfinite(edges.bin_hi).all()


def test_a_chunk_over_the_memory_budget_is_refused_before_it_runs(tmp_path):
    grid = _grid("mlp", seeds=4)
    with pytest.raises(ValueError, match=r"MiB per device.*memory_budget"):
        ji.sweep(grid, memory_budget=1024, out=tmp_path)
    assert not list(tmp_path.glob("chunks/*.npz"))  # nothing ran


class _Infinite(nnx.Module):
    """One Linear, then an output whose first column is +inf, second NaN and third -inf."""

    def __init__(self, rngs):
        self.fc = nnx.Linear(4, 4, rngs=rngs)

    def __call__(self, x):
        y = self.fc(x)
        return (
            jnp.where(jnp.arange(4) == 0, jnp.inf, y).at[:, 1].set(jnp.nan).at[:, 2].set(-jnp.inf)
        )


# 3 rows: the outputs are measured stacked by shape; 1100 rows (4400 > STACK_MAX entries):
# each on its own
@pytest.mark.parametrize("rows", [3, 1100])
@pytest.mark.parametrize("gradients", [False, True])
def test_nonfinite_counts_each_entry_of_a_captured_output_once(rows, gradients):
    """A model's captured output is both its pre- and post-activation: a NaN or inf entry
    counts once (it counted twice before), by the output's own histogram (whose classes
    tell NaN, -inf and +inf apart); -inf is below the histogram's range and +inf above, NaN
    in neither; finite layers count 0, and a layer that holds them keeps its other
    statistics defined by the same rule as the MLP's (non-finite)."""
    x = np.ones((rows, 4), np.float32)
    grid = ji.ModelGrid(
        model=_Infinite, inits=["he_normal", "lecun_normal"], seeds=2, inputs=x, gradients=gradients
    )
    res = ji.sweep(grid, progress=False)
    assert res.attrs["layers"] == ["fc", "(model)"]
    np.testing.assert_array_equal(res.nonfinite[..., 0], 0)
    np.testing.assert_array_equal(res.nonfinite[..., 1], 3 * rows)  # columns of inf, NaN, -inf
    assert np.isfinite(res.pre_var[..., 0]).all()
    assert not np.isfinite(res.pre_var[..., 1]).any()
    below, above, hist = res.hist_below[..., 1], res.hist_above[..., 1], res.hist[..., 1, :]
    assert (below >= rows).all()  # the -inf column
    assert (above >= rows).all()  # the +inf column
    total = hist.sum(-1) + below + above
    np.testing.assert_array_equal(total, 3 * rows)  # every entry but the NaN column


def test_a_cnn_with_gradients_runs_loop_free_on_cpu_and_equals_the_mapped_layout(monkeypatch):
    """On XLA:CPU a convolution's kernel gradient inside a loop runs ~7x slower, so a model
    with convolutions and gradients runs without loops (inits in sequence, one seed per
    device per call): the same statistics as the lax.map layout within float32 rounding,
    still one compiled program for any number of seeds."""
    from jaxinit.sweeping import _model_pass

    grid = _grid("cnn", seeds=5, gradients=True)
    structure = _model_pass.structure(grid)
    assert _model_pass.loop_free(structure, True, "cpu")
    assert not _model_pass.loop_free(structure, False, "cpu")  # the forward pass is as fast
    assert not _model_pass.loop_free(structure, True, "gpu")
    assert not _model_pass.loop_free(_model_pass.structure(_grid("mlp")), True, "cpu")
    before = _model_pass.compiled_count()
    fast = ji.sweep(grid, chunk_size=4)
    assert _model_pass.compiled_count() - before == 1  # 5 seeds in chunks of 4: one program
    monkeypatch.setattr(_model_pass, "loop_free", lambda *a: False)
    mapped = ji.sweep(grid, chunk_size=4)
    for f in ("pre_mean", "pre_var", "grad_var", "weight_grad_norm"):
        a, b = fast[f], mapped[f]
        np.testing.assert_allclose(
            a, b, rtol=MODEL_RTOL, atol=MODEL_ATOL * np.nanmax(abs(b)), err_msg=f
        )
    np.testing.assert_array_equal(
        np.isnan(fast.weight_grad_norm), np.isnan(mapped.weight_grad_norm)
    )
    assert np.abs(fast.hist - mapped.hist).sum() <= max(2, ENGINE_HIST_L1 * fast.hist.sum())
