"""The sweep engine: the notebook contract, loop equivalence, invariances, compile count, textbook cases."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit as ji
from jaxinit import sweeping
from jaxinit.sweeping._grid import DESCRIBED
from tests._kill import run_and_kill
from tests._network import backward, forward_stats, network
from tests._rounding import assert_within_rounding
from tests._tolerances import (
    SWEEP_BATCH,
    SWEEP_SEEDS,
    SWEEP_VAR_RTOL,
    SWEEP_WIDTH,
)

SMALL = dict(depth=3, width=16, seeds=3, batch_size=32, bins=10)


def test_notebook_snippet():
    inits = ["normal(stddev=1.0)", "normal(stddev=0.01)", "glorot_normal", "he_normal"]
    grid = ji.Grid(inits=inits, activations=["sigmoid", "tanh", "relu"], depth=5, width=24,
                   seeds=4, batch_size=50, inputs="gaussian", bins=30)  # fmt: skip
    res = ji.sweep(grid)
    s = res.sel(init="he_normal", activation="relu")
    assert s.post_var.shape == (4, 5)  # (seed, layer)
    assert s.hist.shape == (4, 5, 30)
    assert res.post_var.shape == (4, 3, 4, 5)  # (init, activation, seed, layer)
    # sel takes the specs as given and the canonical ones
    res2 = ji.sweep(ji.Grid(inits=["xavier_normal", "normal(stddev=1)"], activations=["tanh"],
                            depth=2, width=8, seeds=2, batch_size=10))  # fmt: skip
    for given, canonical in [
        ("xavier_normal", "glorot_normal"),
        ("normal(stddev=1)", "normal(stddev=1.0)"),
    ]:
        np.testing.assert_array_equal(
            res2.sel(init=given).post_var, res2.sel(init=canonical).post_var
        )
    assert res.hist.sum(-1).max() <= 50 * 24
    assert res.coords["init"] == tuple(ji.initializers.get(i).spec for i in inits)


def _reference(grid, init, act, depth, width, bias, seed):
    """A plain, unvectorized pass: weights from the initializers themselves, jax.grad for gradients."""
    net = network(grid, init, bias, depth, width, seed)
    dz, _ = backward(net, act)
    return {**forward_stats(net, act), "grad_var": np.array([d.var() for d in dz])}


def test_vmapped_equals_plain_loop():
    grid = ji.Grid(inits=["he_uniform", "orthogonal(scale=1.2)"],
                   activations=["tanh", "relu"], depth=[2, 3], width=16, seeds=[0, 5],
                   batch_size=32, bias_inits="normal(stddev=0.1)")  # fmt: skip
    res = ji.sweep(grid, chunk_size=2)
    for combo in grid:
        ref = _reference(grid, combo.init, combo.activation, combo.depth, combo.width,
                         combo.bias_init, combo.seed)  # fmt: skip
        got = res.sel(init=combo.init.spec, activation=combo.activation.spec,
                      depth=combo.depth, seed=combo.seed)  # fmt: skip
        for field, expected in ref.items():
            values = getattr(got, field)
            np.testing.assert_allclose(values[: combo.depth], expected, rtol=2e-4, atol=1e-6)
            assert np.isnan(values[combo.depth :]).all()


def test_bitwise_identical_across_chunk_sizes():
    # by construction: every group of lanes runs one compiled body; the chunk size only
    # changes how many times the loop over groups runs it
    grid = ji.Grid(inits=["he_normal", "glorot_uniform"], activations=["tanh"], **SMALL)
    base = ji.sweep(grid, chunk_size=1)
    for size in (9, None):
        assert ji.sweep(grid, chunk_size=size).equals(base)
    assert ji.sweep(grid, chunk_size=1, lanes=2).equals(ji.sweep(grid, chunk_size=6, lanes=2))


def test_a_combination_alone_equals_it_in_a_grid_to_rounding():
    """A combination's numbers do not depend on the rest of the grid beyond float32 rounding:
    the first layer is one matmul over every weight family's draws, so another set of
    families is another GEMM shape, which XLA:CPU may sum in another order."""
    grid = ji.Grid(inits=["he_normal", "glorot_uniform"], activations=["tanh"], **SMALL)
    base = ji.sweep(grid)
    alone = ji.sweep(
        ji.Grid(inits=["glorot_uniform"], activations=["tanh"], **{**SMALL, "seeds": [2]})
    )
    in_grid = base.sel(init=["glorot_uniform"], seed=[2])
    assert alone.coords == in_grid.coords
    assert_within_rounding(alone, in_grid)
    # and the comparison sees a real difference: another seed is another network
    with pytest.raises(AssertionError):
        assert_within_rounding(alone, base.sel(init=["glorot_uniform"], seed=[1]))


@pytest.mark.slow
def test_compile_count_depends_on_shapes_not_seeds_or_scales():
    """One draw and one forward program per width, chunk shape and member count: the number
    of seeds, the scale values and families are data, never new programs."""
    kw = dict(activations=["tanh", "relu", "selu"], depth=2, width=12, batch_size=20, bins=5)
    sweeping.clear_programs()
    before = sweeping.programs()
    ji.sweep(ji.Grid(inits=["normal(stddev=0.5)", "normal(stddev=1.0)", "orthogonal"], seeds=7,
                     **kw), chunk_size=4)  # fmt: skip
    assert sweeping.programs() - before == 2  # draw + forward
    # more seeds, other scale values (same number of inits): no new program
    ji.sweep(ji.Grid(inits=["normal(stddev=0.1)", "normal(stddev=3.0)", "orthogonal(scale=1.5)"],
                     seeds=11, **kw), chunk_size=4)  # fmt: skip
    assert sweeping.programs() - before == 2
    # a second width is a second shape: one more program of each kind
    before = sweeping.programs()
    ji.sweep(ji.Grid(inits=["he_normal", "orthogonal"], activations=["sigmoid", "gelu"],
                     depth=2, width=[12, 16], batch_size=20, bins=5, seeds=3))  # fmt: skip
    assert sweeping.programs() - before == 4


def _textbook(inits, activation, depth, **kw):
    grid = ji.Grid(inits=inits, activations=[activation], depth=depth, width=SWEEP_WIDTH,
                   seeds=SWEEP_SEEDS, batch_size=SWEEP_BATCH, **kw)  # fmt: skip
    return ji.sweep(grid)


@pytest.mark.slow
def test_textbook_relu():
    res = _textbook(["he_normal", "normal(stddev=0.01)"], "relu", 5).squeeze()
    he = res.sel(init="he_normal")
    # He + ReLU: Var(z_l) = 2 Var(z_{l-1}) E[relu(z)^2]/Var(z) = 2 * (1/2) ... = 2 for unit inputs
    np.testing.assert_allclose(he.pre_var.mean(0), 2.0, rtol=SWEEP_VAR_RTOL[5])
    small = res.sel(init="normal(stddev=0.01)")
    # std 0.01: each layer multiplies the variance by width * 1e-4 / 2 = 0.0128
    ratio = small.pre_var[:, 1:] / small.pre_var[:, :-1]
    np.testing.assert_allclose(ratio.mean(0), SWEEP_WIDTH * 1e-4 / 2, rtol=SWEEP_VAR_RTOL[5])
    # ... and its gradients vanish toward the input
    assert (small.grad_var[:, 0] < 1e-6 * small.grad_var[:, -1]).all()
    assert (np.diff(small.grad_var, axis=1) > 0).all()


@pytest.mark.slow
def test_textbook_sigmoid_saturation():
    res = _textbook(["normal(stddev=1.0)", "glorot_normal"], "sigmoid", 5).squeeze()
    assert (res.sel(init="normal(stddev=1.0)").saturated > 0.5).all()  # Var(z) ~ width
    assert (res.sel(init="glorot_normal").saturated < 0.01).all()


@pytest.mark.slow
def test_textbook_selu_self_normalizes():
    res = _textbook(["lecun_normal"], "selu", 30).squeeze()
    mean, var = res.post_mean.mean(0), res.post_var.mean(0)  # over seeds: (layer,)
    assert np.abs(mean).max() < 0.1
    np.testing.assert_allclose(var, 1.0, rtol=SWEEP_VAR_RTOL[30])


def test_divergence_is_recorded_not_raised():
    grid = ji.Grid(inits=["normal(stddev=1.0)", "he_normal"], activations=["relu"], depth=50,
                   width=100, seeds=2, batch_size=16)  # fmt: skip
    res = ji.sweep(grid)
    big = res.sel(init="normal(stddev=1.0)", activation="relu")
    assert (big.diverged_layer > 10).all()  # std 1 at width 100: ×50 variance per layer
    stats = np.stack([big.pre_mean, big.pre_var, big.post_mean, big.post_var], -1)
    for seed, first in enumerate(big.diverged_layer):
        # the first layer with a non-finite value, or a statistic that overflowed float32
        assert big.nonfinite[seed, first] > 0 or not np.isfinite(stats[seed, first]).all()
        assert (big.nonfinite[seed, :first] == 0).all()
        assert np.isfinite(stats[seed, :first]).all()
    he = res.sel(init="he_normal", activation="relu")
    assert (he.diverged_layer == -1).all()
    assert (he.nonfinite == 0).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(inits=["he_norml"]), r"unknown initializer 'he_norml'.*Did you mean 'he_normal'"),
        (dict(activations=[]), r"activations is empty"),
        (dict(activations=["rleu"]), r"unknown activation 'rleu'.*Did you mean 'relu'"),
        (dict(depth=0), r"depth must be an int >= 1; got 0"),
        (dict(width=[8, 8]), r"width has repeated values"),
        (dict(seeds=0), r"seeds must be an int >= 1; got 0"),
        (dict(inputs="gauss"), r"inputs='gauss' is not valid; choose 'gaussian', 'uniform'"),
        (dict(inputs=np.zeros(5)), r"shape \(batch >= 1, d_in\); got \(5,\)"),
        (dict(batch_size=0), r"batch_size must be an int >= 1 or None; got 0"),
        (
            dict(batch_size=1, cosine=True),
            r"cosine=True needs a batch_size of at least 2 samples; got 1",
        ),
        (dict(batch_size=1, batchnorm=True), r"batchnorm=True needs a batch_size of at least 2"),
        (dict(bias_inits="he_normal"), r"bias init 'he_normal' needs a rank-2 shape"),
        (dict(inits=[jax.nn.initializers.he_normal()]), r"has no name.*custom\(fn, name="),
        (dict(inits=["he_normal", "kaiming_normal"]), r"same configuration twice: \['he_normal'\]"),
        (dict(hist_range=(1.0, -1.0)), r"hist_range"),
    ],
)
def test_bad_grids_fail_before_running(kwargs, match):
    base = dict(inits=["he_normal"], activations=["relu"], depth=2, width=8, seeds=1, batch_size=4)
    with pytest.raises(ValueError, match=match):
        ji.Grid(**{**base, **kwargs})


def test_array_inputs_and_uniform_inputs():
    x = np.random.default_rng(0).random((40, 7)).astype(np.float32)
    res = ji.sweep(
        ji.Grid(inits=["he_normal"], activations=["relu"], depth=2, width=8, seeds=2, inputs=x)
    )
    assert res.post_var.shape == (1, 1, 2, 2)
    res_u = ji.sweep(ji.Grid(inits=["he_normal"], activations=["relu"], depth=2, width=8, seeds=2,
                             inputs="uniform", d_in=7, batch_size=40))  # fmt: skip
    assert res_u.post_var.shape == res.post_var.shape


_KILL_SCRIPT = """
import sys, jax, jaxinit as ji
grid = ji.Grid(inits=["he_normal", "glorot_uniform"], activations=["tanh"], depth=2, width=8,
               seeds=12, batch_size=16, bins=5)
def tick(u):
    print(f"chunk {u.done}/{u.total}", flush=True)
    if u.done >= 2:
        import time; time.sleep(60)  # the test kills us here
ji.sweep(grid, out=sys.argv[1], chunk_size=2, lanes=2, devices=jax.devices()[:1], on_update=tick)
"""


@pytest.mark.slow
def test_kill_and_resume(tmp_path):
    import os

    out = tmp_path / "ckpt"
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "1"}
    lines = run_and_kill(_KILL_SCRIPT, str(out), at="chunk 2/", env=env)
    assert lines[-1].startswith("chunk 2/"), lines
    written = {p.name: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.npz")}
    assert len(written) == 2  # two whole chunks survived the kill, no partial file
    assert not (out / "result").exists()

    grid = ji.Grid(inits=["he_normal", "glorot_uniform"], activations=["tanh"], depth=2, width=8,
                   seeds=12, batch_size=16, bins=5)  # fmt: skip
    calls = []
    resumed = ji.sweep(grid, out=out, lanes=2, devices=jax.devices()[:1],
                       on_update=lambda u: calls.append(u.done))  # fmt: skip
    for name, mtime in written.items():  # finished chunks were read back, not rewritten
        assert (out / "chunks" / name).stat().st_mtime_ns == mtime
    # 12 seeds in chunks of 2 (every init and activation of a seed in its chunk): 6 chunks
    assert len(list((out / "chunks").glob("*.npz"))) == len(calls) == 6
    fresh = ji.sweep(grid, chunk_size=2, lanes=2, devices=jax.devices()[:1])
    assert resumed.equals(fresh)
    assert ji.SweepResult.load(out / "result").equals(fresh)
    # a different sweep refuses the directory instead of mixing results
    other = ji.Grid(
        inits=["he_normal"], activations=["tanh"], depth=2, width=8, seeds=12, batch_size=16, bins=5
    )
    with pytest.raises(ValueError, match=r"different sweep \(grid differ\)"):
        ji.sweep(other, out=out, lanes=2)


@pytest.mark.multidevice
def test_bitwise_identical_across_devices(tmp_path):
    """1 vs 4 host devices, in subprocesses (the device count is fixed at jax start).

    Bitwise by construction: each device (process) runs the same compiled body for each group of lanes; their number only changes how many groups each one loops over."""
    import os
    import subprocess
    import sys

    script = """
import sys, jaxinit as ji, jax
assert len(jax.devices()) == int(sys.argv[2])
grid = ji.Grid(inits=["he_normal", "orthogonal", "uniform"], activations=["tanh", "relu"],
               depth=[2, 3], width=8, seeds=5, batch_size=16, bins=5)
ji.sweep(grid).save(sys.argv[1])
"""
    results = []
    for n in (1, 4):
        path = tmp_path / f"dev{n}"
        env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(n)}
        subprocess.run(
            [sys.executable, "-c", script, str(path), str(n)], env=env, check=True, timeout=300
        )
        results.append(ji.SweepResult.load(path))
    assert results[0].equals(results[1])


@pytest.mark.slow
def test_persistent_compilation_cache(tmp_path):
    """A second process loads the sweep's programs from the cache instead of compiling."""
    import os
    import subprocess
    import sys

    script = """
import jax, jax.monitoring
hits = []
jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event))
import jaxinit as ji
ji.sweep(ji.Grid(inits=["he_normal"], activations=["tanh"], depth=2, width=8, seeds=2, batch_size=8))
print(sum(e == "/jax/compilation_cache/cache_hits" for e in hits))
"""
    env = {**os.environ, "JAXINIT_CACHE_DIR": str(tmp_path / "xla"), "JAX_NUM_CPU_DEVICES": "1"}
    run = lambda: subprocess.run([sys.executable, "-c", script], env=env, check=True,  # noqa: E731
                                 capture_output=True, text=True, timeout=300).stdout  # fmt: skip
    assert int(run().split()[-1]) == 0  # cold: everything compiled
    assert any((tmp_path / "xla").iterdir())
    assert int(run().split()[-1]) >= 1  # warm: the kernel came from disk
    off = subprocess.run([sys.executable, "-c", "import jax, jaxinit; print(jax.config.jax_compilation_cache_dir)"],
                         env={**env, "JAXINIT_COMPILATION_CACHE": "0"}, capture_output=True, text=True, check=True)  # fmt: skip
    assert off.stdout.strip() == "None"


@pytest.mark.slow
@pytest.mark.multidevice
def test_orthogonal_sharded_over_host_devices_does_not_deadlock(tmp_path):
    """LAPACK QR inside a program sharded over 2 host devices deadlocked (4 of 4 runs of this
    configuration before the fix); the weights are now drawn in a program of their own."""
    import os
    import subprocess
    import sys

    script = """
import jax, jaxinit as ji
assert len(jax.devices()) == 2
grid = ji.Grid(inits=["orthogonal", "orthogonal(scale=2.0)"], activations=["tanh", "relu"],
               depth=5, width=100, seeds=32, batch_size=200, bins=10)
print(float(ji.sweep(grid, chunk_size=32).pre_var.mean()))
"""
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "2", "JAXINIT_CACHE_DIR": str(tmp_path)}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=180, check=True)  # fmt: skip
        assert float(done.stdout.split()[-1]) > 0


def test_histogram_plus_outside_counts_cover_every_finite_value():
    # std-1 ReLU runs far beyond the default range [0, 3]; the histogram must
    # not hide that: counts in range + below + above = all finite values.
    grid = ji.Grid(inits=["normal(stddev=1.0)", "he_normal"], activations=["relu", "tanh"],
                   depth=3, width=16, seeds=2, batch_size=24)  # fmt: skip
    res = ji.sweep(grid)
    total = res.hist.sum(-1) + res.hist_below + res.hist_above
    np.testing.assert_array_equal(total, 24 * 16)
    np.testing.assert_array_equal(res.sel(activation="relu").hist_below, 0)  # relu ≥ 0 = lo
    assert res.sel(init="normal(stddev=1.0)", activation="relu").hist_above[..., -1].min() > 0
    np.testing.assert_array_equal(res.sel(activation="tanh").hist_above, 0)  # within [-1, 1]


@pytest.mark.parametrize("bias", ["zeros", "normal(stddev=0.3)"])
def test_lsuv_gives_every_layer_unit_variance_on_the_grid_inputs(bias):
    grid = ji.Grid(inits=["lsuv", "lsuv(target_var=2.0, tol=0.01)", "orthogonal"],
                   activations=["tanh", "relu", "selu"], depth=6, width=16, seeds=2, batch_size=64,
                   bias_inits=bias)  # fmt: skip
    res = ji.sweep(grid)
    # Mishkin & Matas stop once |Var(z) - target| < tol; batch norm is off, so pre_var is Var(z)
    assert np.abs(res.sel(init="lsuv").pre_var - 1.0).max() < 0.1
    assert np.abs(res.sel(init="lsuv(target_var=2.0, tol=0.01)").pre_var - 2.0).max() < 0.01
    # plain orthogonal under relu halves the variance each layer; LSUV undoes exactly that
    orth = res.sel(init="orthogonal", activation="relu").pre_var
    assert orth[..., -1].max() < 0.5  # 2^-5 in expectation; width 16 is noisy
    # the gradients are those of the rescaled network: finite, and not those of plain orthogonal
    g = res.sel(init="lsuv").grad_var
    assert np.isfinite(g).all()
    assert not np.allclose(g, res.sel(init="orthogonal").grad_var)


def test_lsuv_in_the_sweep_equals_the_standalone_lsuv():
    # Same seed key, same inputs: the kernel's rescale and jaxinit.lsuv.lsuv run the
    # same algorithm, so every layer's pre-activation variance agrees.
    x = np.asarray(jax.random.normal(jax.random.key(7), (48, 12)))
    grid = ji.Grid(inits=["lsuv"], activations=["tanh"], depth=4, width=12, seeds=[3],
                   inputs=x, bias_inits="normal(stddev=0.3)")  # fmt: skip
    res = ji.sweep(grid).squeeze()
    alone = ji.lsuv.lsuv(grid.seed_key(3), jnp.asarray(x), widths=(12,) * 4, activation="tanh",
                         bias_init="normal(stddev=0.3)")  # fmt: skip
    np.testing.assert_allclose(res.pre_var, np.asarray(alone.variances), rtol=1e-4)
    assert np.all(np.asarray(alone.iterations) >= 1)


def test_grid_from_description_round_trips_dims_and_scalars():
    grids = [
        ji.Grid(inits=["he_normal"], activations=["relu"], depth=3, width=8, batch_size=8, seeds=2),
        ji.Grid(inits=["he_normal", "zeros"], activations=["relu"], depth=[3], width=[8, 12],
                batch_size=8, seeds=[4, 1], bias_inits=["zeros"], inputs="uniform", cosine=True),
    ]  # fmt: skip
    for grid in grids:
        again = ji.Grid.from_description(grid.describe())
        assert again.describe() == grid.describe()
        assert again.scalar_dims() == grid.scalar_dims()
    assert set(grids[0].describe()) == {*ji.sweeping.DIMS, *DESCRIBED}
    for key in ("dims", "gradients", "hist_range"):  # every key is required
        partial = {k: v for k, v in grids[1].describe().items() if k != key}
        with pytest.raises(ValueError, match=rf"lacks \['{key}'\].*rerun the sweep"):
            ji.Grid.from_description(partial)
    with pytest.raises(ValueError, match="ran on an input array"):
        ji.Grid.from_description({**grids[0].describe(), "inputs": "array"})


def test_grid_stores_canonical_fields_once():
    x = np.arange(24, dtype=np.float64).reshape(6, 4)
    grid = ji.Grid(inits=["xavier_normal", "he_normal"], activations="relu", depth=[2, 3],
                   width=8, seeds=3, inputs=x)  # fmt: skip
    # one name per setting, holding what runs: objects, tuples, a range, the array's sizes
    assert [i.spec for i in grid.inits] == ["glorot_normal", "he_normal"]
    assert isinstance(grid.activations, tuple)
    assert grid.activations[0].spec == "relu"
    assert grid.depth == (2, 3)
    assert grid.width == 8
    assert grid.seeds == range(3)
    assert (grid.batch_size, grid.d_in) == (6, 4)
    assert grid.bias_inits.spec == "zeros"
    assert grid.inputs.dtype == np.float32
    assert not grid.inputs.flags.writeable
    x[0, 0] = 99.0  # the grid holds a copy
    assert grid.inputs[0, 0] == 0.0
    assert grid.aliases == {"init": {"xavier_normal": "glorot_normal"}}
    assert "xavier" not in repr(grid)
    assert "range(0, 3)" in repr(grid)
    # replace re-validates canonical input and carries the aliases of labels still there
    more = dataclasses.replace(grid, seeds=[5, 1], depth=4)
    assert more.seeds == (5, 1)
    assert more.depth == 4
    assert more.scalar_dims() == ("depth", "width", "bias_init")
    assert more.aliases == grid.aliases
    assert more.describe()["init"] == grid.describe()["init"]
    fewer = dataclasses.replace(grid, inits=["he_normal"])
    assert fewer.aliases == {}
    # generated inputs: batch 1000 and d_in the first width unless given
    gen = ji.Grid(inits=["he_normal"], activations=["tanh"], width=[16, 8])
    assert (gen.batch_size, gen.d_in, gen.width) == (1000, 16, (16, 8))
    assert dataclasses.replace(gen, width=32).d_in == 16  # resolved once, a field like any
    with pytest.raises(ValueError, match=r"batch_size=1000 contradicts .*give batch_size=6"):
        ji.Grid(inits=["he_normal"], activations=["tanh"], inputs=x, batch_size=1000)
    with pytest.raises(ValueError, match=r"inputs='gausian' is not valid.*'gaussian'\?"):
        ji.Grid(inits=["he_normal"], activations=["tanh"], inputs="gausian")
    with pytest.raises(ValueError, match=r"seeds must be in \[0, 2\*\*31\).*got -1"):
        ji.Grid(inits=["he_normal"], activations=["tanh"], seeds=range(-1, 3))


def test_grid_iteration_is_the_plain_loop_of_the_product():
    grid = ji.Grid(inits=["he_normal", "zeros"], activations=["tanh"], depth=[1, 2], width=4,
                   seeds=[7, 3], batch_size=4)  # fmt: skip
    combos = list(grid)
    assert len(combos) == len(grid) == 8
    assert [c.index for c in combos] == list(range(8))
    assert [(c.init.spec, c.depth, c.seed) for c in combos[:3]] == [
        ("he_normal", 1, 7), ("he_normal", 1, 3), ("he_normal", 2, 7)
    ]  # fmt: skip
    assert {c.width for c in combos} == {4}
    assert {c.bias_init.spec for c in combos} == {"zeros"}
