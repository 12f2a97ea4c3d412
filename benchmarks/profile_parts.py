"""Where a sweep's time goes, per combination: draws, matmuls, statistics, histogram, backward, host.

Each part is measured by removing it from the compiled forward program (this patches
``jaxinit.sweeping._kernel._stats_of`` on purpose: a profile has to reach inside), on the standard
grid's shapes (batch 1000, d_in 100, 5 layers of 100, 30 bins) with its 10 inits, ``tanh``
alone and 16 seeds. Run it on a quiet machine, from the repository root::

    JAX_NUM_CPU_DEVICES=2 .venv/bin/python benchmarks/profile_parts.py [--width 256 --batch-size 1024]

The figures are in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax
import numpy as np

import jaxinit as ji
from jaxinit import sweeping
from jaxinit.sweeping import _kernel as kernel
from jaxinit.sweeping import _plan

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _standard import INITS  # the standard grid's initializers, defined once there

SEEDS = 16
DRAWS = "draws (one program per chunk, shared by every init and activation)"


def best_ms(f, repeats: int = 7) -> float:
    """The best of ``repeats`` calls of ``f`` (after one warm-up), in ms."""
    jax.block_until_ready(f())
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(f())
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def _without_hist(spec, act, z, h, *, stats_of):
    return stats_of(spec, act._replace(hist=None), z, h)


def _without_stats(spec, act, z, h, *, stats_of):
    st = stats_of(spec, act._replace(hist=None, saturation=None), z[..., :1, :1], h[..., :1, :1])
    return st._replace(post_mean=h[..., 0, 0])


def profile(
    gradients: bool, *, width: int = 100, batch_size: int = 1000
) -> dict[str, float | None]:
    grid = ji.Grid(
        inits=list(INITS),
        activations=["tanh"],
        depth=5,
        width=width,
        seeds=SEEDS,
        batch_size=batch_size,
        bins=30,
        gradients=gradients,
    )
    combos = len(INITS) * SEEDS
    mesh = jax.sharding.Mesh(np.array(jax.devices()), (kernel.SEEDS,))
    sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(kernel.SEEDS))
    plan = sweeping.plan(grid)
    dspec, fspec = plan.draw_specs[0], plan.forward_specs[0]
    seeds = np.arange(SEEDS, dtype=np.int32)
    members = _plan._members(grid, fspec.width, plan.member_blocks[0], fspec.members)

    def draws():
        d = kernel.draw(dspec, None, grid.root_seed, seeds)
        return jax.tree.map(lambda a: jax.device_put(np.asarray(a), sharded), d)

    drawn = draws()

    def forward_ms(spec) -> float:
        kernel.forward.clear_cache()
        run = lambda: kernel.forward(spec, mesh, np.int32(0), members, drawn, None)  # noqa: E731
        return best_ms(run) / combos

    out: dict[str, float | None] = {DRAWS: best_ms(draws) / combos}
    stats_of = kernel._stats_of
    full = forward_ms(fspec)
    try:
        kernel._stats_of = lambda *a: _without_hist(*a, stats_of=stats_of)
        no_hist = forward_ms(fspec)
        kernel._stats_of = lambda *a: _without_stats(*a, stats_of=stats_of)
        no_stats = forward_ms(fspec)
    finally:
        kernel._stats_of = stats_of
    forward_only = forward_ms(fspec._replace(grad_depths=()))
    ji.sweep(grid, progress=False)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        ji.sweep(grid, progress=False)
        best = min(best, time.perf_counter() - t)
    sweep_ms = best * 1e3 / combos
    out["forward program, total"] = full
    out["  matmuls, activation, weights formed (no statistics)"] = None if gradients else no_stats
    out["  moments, nonfinite (statistics without histogram)"] = (
        None if gradients else no_hist - no_stats
    )
    out["  histogram + dead + saturated (one flat scatter)"] = None if gradients else full - no_hist
    out["  backward pass (default minus gradients=False)"] = (
        full - forward_only if gradients else None
    )
    out["host (sweep minus its programs)"] = sweep_ms - full - out[DRAWS]
    out["ji.sweep, per combination"] = sweep_ms
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=100, help="hidden width")
    ap.add_argument("--batch-size", type=int, default=1000, help="samples per network")
    args = ap.parse_args(argv)
    rows = {g: profile(g, width=args.width, batch_size=args.batch_size) for g in (False, True)}

    def cell(v: float | None) -> str:
        return "—" if v is None else f"{v:.3f}"

    print(
        f"{'part (ms per combination, wall, ' + str(len(jax.devices())) + ' devices)':66s} "
        f"{'gradients=False':>15s} {'default':>8s}"
    )
    for key in rows[False]:
        print(f"{key:66s} {cell(rows[False][key]):>15s} {cell(rows[True][key]):>8s}")


if __name__ == "__main__":
    main()
