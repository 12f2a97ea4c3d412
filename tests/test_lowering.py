"""Every compiled program of ``sweep`` and ``train`` lowers for GPU and TPU (issue 25).

No accelerator is needed: :func:`jax.export.export` lowers for a platform it
does not run on. The programs are recorded at their real shapes by a dry run
(``tests/_programs.py``: tracing only, no arithmetic), at the standard grid's
shapes (``benchmarks/_standard.py``: 10 inits × 8 activations, depth 5, width
100, batch 1000) and at width 1024, on the CPU's plan and on the accelerator's
(16 lanes, the whole block of members per step). A construct that lowers only
on CPU (a host callback, a CPU-only custom call) fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

import jaxinit as ji
from benchmarks._standard import ACTIVATIONS, INITS  # the standard grid, defined once
from jaxinit import _jax_compat
from jaxinit.sweeping import _plan, _run
from tests._programs import SWEEP_PROGRAMS, export, recorded

PLATFORMS = ("cuda", "tpu")
STANDARD = dict(
    inits=list(INITS),
    activations=list(ACTIVATIONS),
    depth=5,
    width=100,
    batch_size=1000,
    d_in=100,
    seeds=16,
    bins=30,
)
ACCELERATOR = dict(memory_budget=16 << 30)  # the plan's defaults, with on_accelerator() true
CPU = {}


def _lowered(calls, expected):
    assert sorted({c.name for c in calls}) == sorted(expected)
    for call in calls:
        exported = export(call, PLATFORMS)
        assert exported.platforms == PLATFORMS
        assert exported.mlir_module_serialized  # a module was produced for both


SWEEP_CASES = {
    "standard": (STANDARD, CPU),
    "standard-accelerator": (STANDARD, ACCELERATOR),
    "standard-no-gradients": ({**STANDARD, "gradients": False}, ACCELERATOR),
    "batchnorm-lsuv-depths": (
        {
            **STANDARD,
            "inits": ["lsuv", "orthogonal", "he_normal"],
            "depth": [2, 5],
            "batchnorm": True,
        },
        ACCELERATOR,
    ),
    "width-1024": ({**STANDARD, "width": 1024, "batch_size": 1024, "seeds": 2}, ACCELERATOR),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SWEEP_CASES))
def test_sweep_programs_lower_for_gpu_and_tpu(case, monkeypatch):
    grid_kw, run_kw = SWEEP_CASES[case]
    monkeypatch.setattr(_plan, "on_accelerator", lambda: run_kw is ACCELERATOR)
    if run_kw is ACCELERATOR:  # planned for an 80 GB device (nothing is allocated: a dry run)
        monkeypatch.setattr(_run, "devices_memory", lambda devices: 80 * 10**9)
    with recorded(programs=SWEEP_PROGRAMS) as calls:
        res = ji.sweep(ji.Grid(**grid_kw), **run_kw)
    assert res.pre_var.shape[-1] == max(np.atleast_1d(grid_kw["depth"]))
    _lowered(calls, ["_draw_from_table", "forward"])


def test_traced_draws_lower_for_gpu_and_tpu(monkeypatch):
    """Without jax's default threefry layout the draws derive their keys on the device."""
    monkeypatch.setattr(_jax_compat, "partitionable_threefry", lambda keys=None: False)
    monkeypatch.setattr(_plan, "on_accelerator", lambda: True)
    monkeypatch.setattr(_run, "devices_memory", lambda devices: 80 * 10**9)
    grid = ji.Grid(**{**STANDARD, "inits": ["he_normal", "orthogonal"], "activations": ["tanh"]})
    with recorded(programs=SWEEP_PROGRAMS) as calls:
        ji.sweep(grid, **ACCELERATOR)
    _lowered(calls, ["_draw_traced", "forward"])


def _mnist_like(n=256, d=784, classes=10):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, classes, n)


TRAIN_CASES = {
    "mnist": dict(
        inits=["he_normal", "glorot_uniform"],
        seeds=2,
        hidden=(100, 100),
        optimizer="sgd(learning_rate=0.1)",
        shuffle="per_seed",
    ),
    # one program per width; the rates are data (each model's injected learning rate)
    "width-1024-mup-rates": dict(
        inits=["he_normal"],
        seeds=1,
        hidden=(1, 1),
        width=[1024],
        learning_rate=[0.01, 0.1],
        optimizer="adam",
        parametrization="mup",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train_programs_lower_for_gpu_and_tpu(case):
    grid = ji.TrainGrid(
        batch_size=64, steps=20, record_stats_at=(0, 20), eval_every=10, **TRAIN_CASES[case]
    )
    with recorded() as calls:
        ji.train(grid, _mnist_like(), _mnist_like(128))
    _lowered(calls, ["init_opt", "train_chunk", "evaluate", "batch_stats"])


def _program_lines(depth, **kw):
    grid = ji.Grid(inits=["he_normal", "lsuv"], activations=["tanh", "relu"], depth=depth,
                   width=8, batch_size=8, seeds=2, **kw)  # fmt: skip
    with recorded(programs=SWEEP_PROGRAMS) as calls:
        ji.sweep(grid)
    forward = next(c for c in calls if c.name == "forward")
    return len(forward.fn.trace(*forward.args).lower().as_text().splitlines())


@pytest.mark.parametrize("kw", [{}, {"gradients": False}, {"batchnorm": True}])
def test_program_does_not_grow_with_depth(kw):
    """Forward and backward passes are scans over layers: depth is a loop count, not code
    (issue 25: depth 1000 with gradients took 190 s to compile when the backward was unrolled)."""
    assert _program_lines(40, **kw) == _program_lines(4, **kw)
