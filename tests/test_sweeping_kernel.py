"""The shared-draw engine: draws, sharing across inits, gradients=False, batch norm, statistics."""

import contextlib
import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit as ji
from jaxinit import _jax_compat, sweeping
from jaxinit.initializers import _bases as B
from jaxinit.initializers._core import draw, draw_families, families_many
from jaxinit.sweeping import _kernel as kernel
from jaxinit.sweeping import _plan
from jaxinit.sweeping import _stats as stats
from tests._network import backward, cotangent_key, input_key, layer_key, network
from tests._rounding import assert_within_rounding
from tests._tolerances import ENGINE_ATOL, ENGINE_RTOL, HIST_EDGE_ULPS

BASES = [
    B.Normal(),
    B.TruncatedNormal(lower=-2.0, upper=2.0),
    B.Uniform(),
    B.Uniform01(),
    B.Orthogonal(column_axis=-1),
    B.Constant(),
    B.Sparse(sparsity=0.5, axis=-2),
]


def test_shared_bits_give_each_family_its_own_draw_bitwise():
    for k in range(3):
        key = jax.random.key(k)
        got = jax.jit(lambda key: draw_families(BASES, key, (40, 24)))(key)
        for i, base in enumerate(BASES):
            np.testing.assert_array_equal(got[i], draw(base, key, (40, 24), jnp.float32))


def test_many_draws_at_once_are_each_draw_alone_bitwise():
    """families_many (the model path's draws: one threefry, one sampler per kind over every
    kernel) gives each (key, shape) the bits of draw(base, key, shape): the samplers are
    elementwise, so where an entry sits in the flat array changes nothing. (draw_families
    is each draw alone: the test above.)"""
    shapes = [(40, 24), (3, 5), (40, 24), (3, 3, 2, 4), (5, 3)]  # equal sizes: one request
    keys = [jax.random.key(k) for k in range(len(shapes))]
    got = jax.jit(lambda *ks: families_many(BASES, list(ks), shapes))(*keys)
    for key, shape, g in zip(keys, shapes, got, strict=True):
        assert g.shape == (len(BASES), *shape)
        np.testing.assert_array_equal(
            g, jax.jit(draw_families, static_argnums=(0, 2))(tuple(BASES), key, shape)
        )
    assert families_many(BASES, [], []) == []


def test_host_key_table_is_the_traced_one():
    spec = kernel.DrawSpec(
        w_bases=(B.Normal(),),
        b_bases=(B.Constant(),),
        d_in=3,
        width=4,
        depth=3,
        batch=2,
        inputs="gaussian",
        cotangent=True,
    )
    seeds = np.array([0, 5, 2**31 - 1], np.int32)
    host = kernel.key_table(spec, 3_000_000_000, seeds)
    traced = jax.jit(
        jax.vmap(
            lambda s: jax.random.key_data(
                kernel._key_table_traced(spec, ji.sweeping.seed_key(np.uint32(3_000_000_000), s))
            )
        )
    )(seeds)
    assert host.shape == (3, 2 * 3 + 2, 2)
    np.testing.assert_array_equal(host, traced)


@pytest.mark.parametrize("keys", ["threefry", "threefry_original_layout", "rbg"])
def test_kernel_draws_are_the_initializers_own_keys(keys):
    """Bitwise the initializers' draws: with jax's default keys (host key table, one fused
    threefry pass), with the older counter layout and with another PRNG (keys and bits
    drawn in the program, one request at a time)."""
    context = {
        "threefry": contextlib.nullcontext(),
        "threefry_original_layout": jax.threefry_partitionable(False),
        "rbg": jax.default_prng_impl("rbg"),
    }[keys]
    with context:
        assert _jax_compat.partitionable_threefry() == (keys == "threefry")
        _check_kernel_draws()


def _check_kernel_draws():
    grid = ji.Grid(
        inits=["he_normal", "glorot_uniform", "orthogonal"],
        activations=["relu"],
        depth=3,
        width=8,
        seeds=[0, 4],
        batch_size=6,
        d_in=5,
        bias_inits="normal(stddev=0.1)",
        root_seed=3_000_000_000,
    )
    spec = kernel.DrawSpec(
        w_bases=tuple(i.base for i in grid.inits),
        b_bases=(grid.bias_inits.base,),
        d_in=5,
        width=8,
        depth=3,
        batch=6,
        inputs="gaussian",
        cotangent=True,
    )
    d = kernel.draw(spec, None, np.uint32(grid.root_seed), np.array(grid.seeds, np.int32))
    for s, seed in enumerate(grid.seeds):
        for f, init in enumerate(grid.inits):
            k0 = layer_key(grid, seed, 0, 0)
            np.testing.assert_array_equal(
                d.first[s].reshape(5, 3, 8)[:, f], draw(init.base, k0, (5, 8), jnp.float32)
            )
            for l in (1, 2):
                np.testing.assert_array_equal(
                    d.hidden[s, l - 1, f],
                    draw(init.base, layer_key(grid, seed, l, 0), (8, 8), jnp.float32),
                )
        kb = layer_key(grid, seed, 2, 1)
        np.testing.assert_array_equal(d.bias[s, 2, 0], draw(B.Normal(), kb, (8,), jnp.float32))
        np.testing.assert_array_equal(d.x[s], jax.random.normal(input_key(grid, seed), (6, 5)))
        np.testing.assert_array_equal(
            d.cotangent[s], jax.random.normal(cotangent_key(grid, seed), (6, 8))
        )


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=ENGINE_RTOL, atol=ENGINE_ATOL)


@pytest.mark.slow
def test_shared_draws_equal_each_combination_alone():
    """Every init of the grid in one program, first layer shared per family, equals each
    init swept alone, to float32 rounding (ENGINE_RTOL, derived in _tolerances)."""
    inits = [
        "normal(stddev=1.0)",
        "normal(stddev=0.05)",
        "he_normal",
        "glorot_normal",
        "glorot_uniform",
        "uniform(low=0.05, high=0.2)",
        "orthogonal",
        "lsuv",
    ]
    kw = dict(
        activations=["tanh", "relu"],
        depth=[2, 3],
        width=12,
        seeds=[1, 6],
        batch_size=24,
        bias_inits=["zeros", "normal(stddev=0.1)"],
        bins=8,
    )
    together = ji.sweep(ji.Grid(inits=inits, **kw))
    shifted = ji.initializers.get("uniform(low=0.05, high=0.2)").coeffs((12, 12), jnp.float32)[1]
    assert float(shifted) != 0  # one init has W = aZ + b with b != 0: the x·1 term is tested
    for init in inits:
        alone = ji.sweep(ji.Grid(inits=[init], **kw))
        mine = together.sel(init=init)
        for f in ("pre_mean", "pre_var", "post_mean", "post_var", "grad_var", "weight_grad_norm"):
            _close(getattr(mine, f), getattr(alone.sel(init=init), f))
        hist_diff = np.abs(mine.hist - alone.sel(init=init).hist).sum()
        assert hist_diff <= 2, (init, hist_diff)  # only values at a bin edge may move


def test_member_tiles_change_only_rounding(monkeypatch):
    """The loop over tiles of members (1 per step on a CPU) against all members batched in
    one step, and tiles of 2: the same numbers to float32 rounding (ENGINE_RTOL)."""
    grid = ji.Grid(
        inits=["normal(stddev=1.0)", "he_normal", "glorot_uniform", "orthogonal"],
        activations=["tanh", "relu"],
        depth=3,
        width=8,
        seeds=[0, 3],
        batch_size=16,
        bins=6,
        bias_inits="normal(stddev=0.1)",
    )
    out = {}
    for tile in (1, 2, 4):
        monkeypatch.setattr(_plan, "CPU_TILE", tile)
        assert [f.tile for f in sweeping.plan(grid).forward_specs] == [tile]
        out[tile] = ji.sweep(grid)
    for tile in (2, 4):
        for f in ("pre_mean", "pre_var", "post_mean", "post_var", "grad_var", "weight_grad_norm"):
            _close(getattr(out[tile], f), getattr(out[1], f))
        assert np.abs(out[tile].hist - out[1].hist).sum() <= 2  # only values at a bin edge
    monkeypatch.setattr(_plan, "CPU_TILE", 3)  # not a divisor of the 4 members: gcd
    assert sweeping.plan(grid).forward_specs[0].tile == 1


def _bn_reference(grid, init, act, depth, seed):
    """A plain batch-normalized pass with jax.grad: the reference for the hand-written backward."""
    width = grid.coords()["width"][0]
    zeros = ji.initializers.get("zeros")  # batch norm drops the bias
    dz, dw = backward(network(grid, init, zeros, depth, width, seed), act, batchnorm=True)
    return np.array([d.var() for d in dz]), np.array([jnp.linalg.norm(d) for d in dw])


def test_batchnorm_backward_equals_jax_grad():
    grid = ji.Grid(
        inits=["he_normal", "normal(stddev=2.0)"],
        activations=["tanh", "relu"],
        depth=3,
        width=10,
        seeds=[2],
        batch_size=16,
        batchnorm=True,
    )
    res = ji.sweep(grid)
    for init in grid.inits:
        for act in grid.activations:
            gv, gn = _bn_reference(grid, init, act, 3, 2)
            got = res.sel(init=init.spec, activation=act.spec, seed=2)
            np.testing.assert_allclose(got.grad_var, gv, rtol=2e-4)
            np.testing.assert_allclose(got.weight_grad_norm, gn, rtol=2e-4)


def test_gradients_false_skips_the_backward_pass_and_says_so():
    kw = dict(
        inits=["he_normal", "glorot_uniform"],
        activations=["tanh", "relu"],
        depth=[2, 3],
        width=8,
        seeds=3,
        batch_size=16,
        bins=6,
    )
    full = ji.sweep(ji.Grid(**kw))
    fwd = ji.sweep(ji.Grid(**kw, gradients=False))
    assert "grad_var" not in fwd.fields
    assert "weight_grad_norm" not in fwd.fields
    # another program (the backward pass's stored layers change how XLA lays out the
    # forward): the same numbers to float32 rounding, not promised bitwise
    assert_within_rounding(fwd, full, subset=True)
    with pytest.raises(AttributeError, match="gradients=False"):
        fwd.grad_var
    assert ji.Grid.from_description(fwd.attrs["grid"]).gradients is False


@pytest.mark.slow
@pytest.mark.multidevice
def test_lsuv_orthogonal_cosine_bitwise_across_1_and_2_devices_and_batchnorm_within_rounding(
    tmp_path,
):
    """Without batch norm every field is bitwise the same on 1 and 2 devices (and for any
    chunk size). With it the forward fields are too, but the backward pass through the
    batch statistics differs in the last bit: XLA partitions the 2-device program's
    batch-norm backward differently (a known gap, measured at 1.2e-7 relative)."""
    script = """
import sys, jaxinit as ji, jax
assert len(jax.devices()) == int(sys.argv[2])
for bn in (False, True):  # one process per device count: jax starts once
    grid = ji.Grid(inits=["he_normal", "orthogonal", "lsuv"], activations=["tanh", "relu"],
                   depth=[2, 3], width=8, seeds=5, batch_size=16, bins=5, cosine=True, batchnorm=bn)
    ji.sweep(grid, chunk_size=int(sys.argv[3])).save(f"{sys.argv[1]}-bn{int(bn)}")
"""
    for n, chunk in ((1, 1), (2, 4)):
        env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(n)}
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / f"dev{n}"), str(n), str(chunk)],
            env=env,
            check=True,
            timeout=300,
        )
    for bn in (0, 1):
        one, two = (ji.SweepResult.load(tmp_path / f"dev{n}-bn{bn}") for n in (1, 2))
        if bn == 0:
            assert one.equals(two)
            continue
        for f in one.fields:
            if f in ("grad_var", "weight_grad_norm"):
                np.testing.assert_allclose(getattr(one, f), getattr(two, f), rtol=ENGINE_RTOL)
            else:
                np.testing.assert_array_equal(getattr(one, f), getattr(two, f))


def test_histogram_matches_numpy_except_within_ulps_of_an_edge():
    rng = np.random.default_rng(0)
    for lo, hi, bins in [(-1.0, 1.0, 30), (0.0, 3.0, 30), (-1.7580993, 3.0, 7)]:
        edges = np.linspace(lo, hi, bins + 1, dtype=np.float32)
        x = rng.uniform(lo - 0.5, hi + 0.5, 100_000).astype(np.float32)
        near = np.concatenate([np.nextafter(edges, -np.inf), edges, np.nextafter(edges, np.inf)])
        x = np.concatenate([x, near, [np.nan, np.inf, -np.inf]]).astype(np.float32)
        # XLA:CPU flushes subnormals to zero: the two beside an edge at 0 are zeros there
        x = np.where(np.abs(x) < np.finfo(np.float32).tiny, np.float32(0), x)
        hist = jax.jit(functools.partial(stats.histogram, lo=lo, hi=hi, bins=bins, axes=1))
        classes, dead, _ = hist(x)
        classes = np.asarray(classes)
        expected = np.histogram(x[np.isfinite(x)], bins=bins, range=(lo, hi))[0]
        assert classes[0] == np.sum(x < edges[0])  # below, -inf included
        assert classes[bins + 1] == np.sum(x > edges[-1])  # above, +inf included
        assert classes[bins + 2] == 1  # the NaN
        assert int(dead) == np.sum(x == 0)
        # values far from every interior edge are binned exactly as NumPy bins them
        spacing = np.abs(x[:, None] - edges[None, 1:-1])
        far = (spacing > HIST_EDGE_ULPS * np.spacing(np.abs(edges[1:-1]) + 1e-30)).all(1)
        far &= np.isfinite(x)
        got_far = hist(x[far])[0]
        np.testing.assert_array_equal(
            np.asarray(got_far)[1 : bins + 1], np.histogram(x[far], bins=bins, range=(lo, hi))[0]
        )
        # and the near-edge ones move by at most one bin each
        assert np.abs(classes[1 : bins + 1] - expected).sum() <= 2 * (~far & np.isfinite(x)).sum()


def test_nonfinite_counts_are_exact_and_overflow_is_flagged():
    z = jnp.asarray(
        np.array([[[1.0, np.inf], [np.nan, 2.0]], [[1.0, 2.0], [3.0, 4.0]]], np.float32)
    )
    s = jax.jit(
        lambda z: stats.layer_stats(z, jnp.tanh(z), saturation=(-0.99, 0.99), hist=(-1.0, 1.0, 4))
    )(z)
    np.testing.assert_array_equal(s.nonfinite, [3, 0])  # inf and nan in z, nan in tanh(z)
    big = jnp.asarray(np.tile([3e19, -3e19], (1, 4, 2)), jnp.float32)  # finite; z² overflows
    s = jax.jit(lambda z: stats.layer_stats(z, z, saturation=(None, None), hist=None))(big)
    assert int(s.nonfinite[0]) == 0
    assert not np.isfinite(float(s.pre_var[0]))


@pytest.mark.parametrize("same", [False, True])
def test_layer_stats_counts_are_numpys_counts_of_the_same_entries(same):
    """Per (layer, seed), mapped over layers as the engine's loop runs it: dead, saturated,
    below, above, every bin and the non-finite entries, against NumPy's counts of the same
    entries (with a model's captured output, ``same=True``, the histogram also counts NaN
    and ±inf, and only ``h`` is measured)."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((3, 2, 5, 8)).astype(np.float32) * 2  # (layer, seed, batch, width)
    z[0, 1, 2, :3] = [np.nan, np.inf, -np.inf]
    h = np.tanh(z)
    h[1, 0, :2] = 0.0  # dead entries
    h[2, 1, 0, :2] = [-np.inf, np.inf]  # beyond the histogram's range (a captured output's)
    sat, hist, bins, n = (-0.9, 0.9), (-1.0, 1.0, 6), 6, 5 * 8

    def one(zh):
        return stats.layer_stats(*zh, saturation=sat, hist=hist, same=same)

    got = jax.jit(lambda z, h: jax.lax.map(one, (z, h)))(z, h)
    flat = h.reshape(3, 2, n)
    for name, mask in [("dead", flat == 0), ("saturated", (flat < -0.9) | (flat > 0.9))]:
        count = np.rint(np.asarray(getattr(got, name), np.float64) * n)  # fractions of n
        np.testing.assert_array_equal(count, mask.sum(-1), err_msg=name)
    np.testing.assert_array_equal(got.hist_below, (flat < -1).sum(-1))  # -inf included
    np.testing.assert_array_equal(got.hist_above, (flat > 1).sum(-1))
    # each bin, as NumPy bins the same entries: none lies within rounding of an interior
    # edge but the zeros, which both put in the bin that starts at 0
    edges = np.linspace(-1, 1, bins + 1, dtype=np.float32)[1:-1]
    gap = np.abs(flat[..., None] - edges)[(flat != 0) & np.isfinite(flat)]
    assert (gap > HIST_EDGE_ULPS * np.spacing(np.abs(edges) + 1e-30)).all()
    numpy_bins = np.apply_along_axis(
        lambda r: np.histogram(r[np.isfinite(r)], bins=bins, range=(-1, 1))[0], -1, flat
    )
    np.testing.assert_array_equal(got.hist, numpy_bins)
    nonfinite = (~np.isfinite(flat)).sum(-1)
    if not same:
        nonfinite = nonfinite + (~np.isfinite(z.reshape(3, 2, n))).sum(-1)
    np.testing.assert_array_equal(got.nonfinite, nonfinite)


def test_lsuv_members_name_each_setting_with_its_dtype():
    bases = [ji.initializers.lsuv(target_var=2.0, tol=0.05, max_iter=7).base]
    bases.append(ji.initializers.he_normal().base)  # not LSUV: no rescale
    got = kernel.lsuv_members(bases)
    want = kernel.LsuvMembers(
        enabled=np.array([True, False]),
        target_var=np.array([2.0, 1.0], np.float32),
        tol=np.array([0.05, 1.0], np.float32),
        max_iter=np.array([7, 0], np.int32),
    )
    for name, g, w in zip(kernel.LsuvMembers._fields, got, want, strict=True):
        assert g.dtype == w.dtype, name
        np.testing.assert_array_equal(g, w, err_msg=name)
