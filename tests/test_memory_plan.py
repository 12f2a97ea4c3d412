"""The accelerator plan fits its device (issue 25): simulated 80 GB (H100) and 141 GB (H200)
devices, a grid of 10⁶ combinations at the standard shapes, the budget capped at the free
memory, and training runs that cannot fit refused before anything is drawn."""

from __future__ import annotations

import dataclasses
import re

import jax
import numpy as np
import pytest

import jaxinit as ji
from benchmarks._standard import ACTIVATIONS, INITS  # the standard grid, defined once
from jaxinit import _host, sweeping
from jaxinit._dims import dim_values
from jaxinit.sweeping import _plan
from jaxinit.sweeping import _run as sweep_run
from jaxinit.training import EVAL_BATCH, _run

H100, H200 = 80 * 10**9, 141 * 10**9
STANDARD = dict(
    inits=list(INITS), activations=list(ACTIVATIONS), depth=5, batch_size=1000, d_in=100, bins=30
)


@pytest.fixture
def accelerator(monkeypatch):
    monkeypatch.setattr(_plan, "on_accelerator", lambda: True)


def _device_bytes(grid, plan, devices=1):
    """What one device holds at once: a chunk's draws and statistics, one group's temporaries."""
    spec = plan.forward_specs[0]
    group = _plan._bytes_per_group(grid, max(dim_values(grid.width)), plan.lanes, spec.members)
    per_seed = max(_plan._draw_bytes_per_seed(d) for d in plan.draw_specs)
    per_seed += _plan._stats_bytes_per_seed(grid, spec.members * len(plan.member_blocks))
    return group, max(len(c.seeds) for c in plan.chunks) * per_seed // devices + group


@pytest.mark.parametrize("device_memory", [H100, H200])
@pytest.mark.parametrize("width", [100, 1024])
def test_a_million_combinations_plan_into_chunks_that_fit(accelerator, device_memory, width):
    grid = ji.Grid(**STANDARD, width=width, seeds=12_500)  # 10 × 8 × 12,500 = 10⁶
    assert len(grid) == 10**6
    plan = sweeping.plan(grid, memory_budget=2**40, device_memory=device_memory)
    assert plan.lanes == _plan.ACCELERATOR_LANES
    group, held = _device_bytes(grid, plan)
    usable = _host.MEMORY_HEADROOM * device_memory
    assert group <= usable  # the 1 TiB budget was capped at the device's free memory
    assert held <= usable
    # every seed of every width is planned exactly once
    seeds = sorted(s for c in plan.chunks for s in c.seeds)
    assert seeds == sorted(list(range(12_500)) * len(dim_values(grid.width)))


def test_wide_networks_get_fewer_seeds_per_chunk_and_a_clear_error_when_none_fits(accelerator):
    """Width 2¹⁴ with memory_budget=2**40 ended in a raw XLA out-of-memory error."""
    grid = ji.Grid(inits=["he_normal"], activations=["relu"], depth=5, width=2**14, seeds=64,
                   batch_size=1000, d_in=100)  # fmt: skip
    plan = sweeping.plan(grid, memory_budget=2**40, device_memory=H100, lanes=1)
    _, held = _device_bytes(grid, plan)
    assert held <= _host.MEMORY_HEADROOM * H100
    assert 1 <= plan.chunk_seeds < 64  # one seed's draws are 4.3 GB: a chunk cannot hold all
    with pytest.raises(
        ValueError, match=r"one group of 1 lane.* over the memory_budget .* 7\.45 GiB\)"
    ):
        sweeping.plan(grid, memory_budget=2**40, device_memory=8 * 10**9, lanes=1)
    with pytest.raises(ValueError, match=r"chunk_size=64 seeds' draws .* at most \d+ seeds fit"):
        sweeping.plan(grid, memory_budget=2**40, device_memory=H100, lanes=1, chunk_size=64)


def test_sweep_refuses_before_running_what_the_device_cannot_hold(monkeypatch):
    monkeypatch.setattr(sweep_run, "devices_memory", lambda devices: 2 * 10**9)
    grid = ji.Grid(inits=["he_normal"], activations=["relu"], depth=5, width=2**14, seeds=4)
    with pytest.raises(ValueError, match=r"at width 16384 needs .* 1\.86 GiB\)"):
        ji.sweep(grid, memory_budget=2**40)


def test_the_budget_is_capped_but_small_grids_plan_as_before():
    grid = ji.Grid(**STANDARD, width=100, seeds=64)
    roomy = sweeping.plan(grid, device_memory=H200)
    assert roomy.chunk_seeds == sweeping.CHUNK_COMBINATIONS // 80  # memory is no limit
    tight = sweeping.plan(grid, memory_budget=2**40, device_memory=2 * 10**9)
    _, held = _device_bytes(grid, tight)
    assert held <= _host.MEMORY_HEADROOM * 2 * 10**9


def test_a_cpu_device_counts_on_its_share_of_the_host():
    """Every CPU device shares the host's memory: two devices plan for half each."""
    devices = jax.devices()
    share = _host.device_memory(devices[0])
    assert share == _host.memory_limit() // len(devices)
    assert _host.devices_memory(devices) == share


def _mnist(n=256):
    return np.zeros((n, 784), np.float32), np.arange(n) % 10


def test_a_model_grid_on_cpu_needs_its_activations_once_not_once_per_model():
    """On XLA:CPU a model grid trains and evaluates one model per call, so the activations
    are needed once per device; vmapped (accelerators) once per model."""

    def make(rngs):
        return ji.models.Transformer(rngs, d_in=28, d_model=32, heads=2, depth=1, classes=10)

    grid = ji.TrainGrid(model=make, inits=["he_normal"], seeds=64, batch_size=64)
    x = (60000, 28, 28)
    vmapped = _run.training_bytes(grid, 28, 10, x[0], example=x[1:])
    looped = _run.training_bytes(grid, 28, 10, x[0], example=x[1:], one_at_a_time=True)
    assert vmapped.shared == 0
    assert looped.shared > 0
    assert looped.per_model + looped.shared == vmapped.per_model  # one model: the same need
    assert looped.total(64) - looped.total(1) == 63 * looped.per_model


def test_a_model_grid_evaluates_in_chunks_no_larger_than_its_training_step():
    """A 512-wide Transformer (batch 64) was refused on a 24 GB host: its estimate counted
    every intermediate of a 1000-example evaluation chunk. A model grid now evaluates at most
    twice a mini-batch at a time, so evaluation never sets its memory; the MLP keeps
    EVAL_BATCH (its intermediates are a few per layer)."""

    def make(rngs):
        return ji.models.Transformer(rngs, d_in=28, d_model=64, heads=4, depth=1, classes=10)

    grid = ji.TrainGrid(model=make, inits=["he_normal"], seeds=1, batch_size=64)
    assert _run.eval_rows(grid, 60000) == 128
    assert _run.eval_rows(grid, 100) == 100  # fewer examples than that: one chunk
    assert _run.eval_rows(dataclasses.replace(grid, batch_size=None), 60000) == EVAL_BATCH
    mlp = ji.TrainGrid(inits=["he_normal"], seeds=1, hidden=(32,), batch_size=64)
    assert _run.eval_rows(mlp, 60000) == EVAL_BATCH

    def shared(n_eval):
        return _run.training_bytes(
            grid, 28, 10, 60000 + n_eval, n_eval=n_eval, example=(28, 28), one_at_a_time=True
        ).shared

    assert shared(10) == shared(10000)  # the training step's activations, whatever the eval


def test_train_refuses_what_cannot_fit_before_drawing(monkeypatch):
    """512 seeds of hidden (4096, 4096) with Adam died with SIGABRT; now a clear error."""
    monkeypatch.setattr(_run, "devices_memory", lambda devices: H100)
    monkeypatch.setattr(_run, "_groups", lambda *a: pytest.fail("drew before checking"))
    grid = ji.TrainGrid(inits=["he_normal"], seeds=512, hidden=(4096, 4096),
                        optimizer="adam(learning_rate=1e-3)", batch_size=128, steps=10)  # fmt: skip
    with pytest.raises(ValueError, match=r"512 models per device need about \d+\.\d+ GiB"):
        ji.train(grid, _mnist(), devices=jax.devices()[:1])
    # the estimate: 20.1M parameters a model, ×3 for parameters, gradients and update,
    # and Adam's two moments: 5 × 4 bytes each, about 0.37 GiB a model, plus activations
    sizes = _run.training_bytes(grid, 784, 10, 2 * 256, n_eval=256)  # as train sees _mnist()
    one = sizes.per_model
    params = 784 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 10 + 10
    assert 5 * 4 * params <= one <= 5 * 4 * params * 1.5  # and activations, a few rows
    fit = int((_host.MEMORY_HEADROOM * H100 - sizes.data) // one)
    assert 100 < fit < 200  # 64 GB of 0.4 GB models
    with pytest.raises(ValueError, match=rf"about {fit} fit per device"):
        ji.train(grid, _mnist(), devices=jax.devices()[:1])


def test_plan_takes_the_devices_as_sweep_takes_them():
    """``plan(devices=...)`` is a count or the list of devices ``sweep`` takes: a list plans
    for its count and, unless ``device_memory`` is given, its smallest device's memory."""
    grid = ji.Grid(inits=["he_normal"], activations=["tanh"], depth=2, width=8, seeds=64)
    two = jax.devices()[:2]
    assert len(two) == 2  # conftest: two CPU devices
    listed = sweeping.plan(grid, devices=two)
    counted = sweeping.plan(grid, devices=2, device_memory=_host.devices_memory(two))
    assert listed == counted
    assert sweeping.plan(grid, devices=two, device_memory=H100) == sweeping.plan(
        grid, devices=2, device_memory=H100
    )
    for bad, error in (
        ([], ValueError),
        (["cpu:0"], ValueError),
        (0, ValueError),
        (2.5, TypeError),
    ):
        with pytest.raises(error, match=rf"sweep: devices .*got {re.escape(repr(bad))}"):
            sweeping.plan(grid, devices=bad)
