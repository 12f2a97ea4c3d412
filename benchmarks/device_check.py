r"""One script for the day an accelerator is available: jaxinit's throughput on it, beside
the device's own float32 matmul peak measured in the same run.

    python benchmarks/device_check.py            # meant to take under 8 minutes on an H100
    python benchmarks/device_check.py --quick    # the same parts at toy sizes (CI smoke test)

Parts, each timed warm (a first call compiles; the second is timed):

1. the standard grid (``benchmarks/_standard.py``: 10 inits × 8 activations, depth 5,
   width 100, batch 1000, with gradients) at 512 seeds (40,960 networks);
2. ``sweeps/big_grid.py`` at its full size (10 × 10 × depths 5/10/20/50 × 32 seeds), fresh;
3. the standard grid at width 1024 (batch 1024, 32 seeds);
4. MNIST, 1002 MLPs (3 inits × 334 seeds, 784-100-100-100-100-10, batch 128, SGD) trained
   at once for 500 steps: model-steps/s. Without an MNIST copy (``$JAXINIT_DATA``) it
   trains on random data of MNIST's shapes, and says so.

It prints combos/s (networks evaluated per second), model-steps/s, and each part's
achieved GFLOP/s as a fraction of the float32 matmul peak (``jnp.dot`` of two n × n
matrices, n = 8192 on an accelerator, best of 5), with the load average and the
devices. The flop counts are the matmuls' alone: a sweep network costs
``2·B·(d_in·W + (L-1)·W²)`` forward and twice that again with gradients (∂h and ∂W);
a training step ``6·B·Σ d_l·d_{l+1}``, less the first layer's ∂x.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import pathlib
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxinit as ji

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _standard beside this file; sweeps/ at the root

from _standard import ACTIVATIONS, INITS  # noqa: E402

MNIST_INITS = ("normal(stddev=0.01)", "glorot_normal", "he_normal")
MNIST_HIDDEN = (100, 100, 100, 100)
MNIST_BATCH = 128


def matmul_peak(n: int, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of ``jnp.dot`` on two ``n × n`` matrices, on jax's default device."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, a).block_until_ready()
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        dot(a, a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9


def sweep_flops(grid: ji.Grid) -> float:
    """Matmul flops of every network of ``grid`` (see the module's docstring)."""
    total = 0.0
    for depth in np.atleast_1d(grid.depth):
        for width in np.atleast_1d(grid.width):
            fwd = 2.0 * grid.batch_size * (grid.d_in * width + (depth - 1) * width**2)
            total += fwd * (3.0 if grid.gradients else 1.0)
    per = total / (np.size(grid.depth) * np.size(grid.width))
    return per * len(grid)


def timed_sweep(name: str, grid: ji.Grid, peak: float) -> dict:
    t = time.perf_counter()
    ji.sweep(grid)  # compiles
    first = time.perf_counter() - t
    t = time.perf_counter()
    ji.sweep(grid)
    s = time.perf_counter() - t
    gflops = sweep_flops(grid) / s / 1e9
    return dict(
        part=name,
        networks=len(grid),
        first_call_s=first,
        seconds=s,
        combos_per_s=len(grid) / s,
        gflops=gflops,
        fraction_of_peak=gflops / peak,
    )


def big_grid(quick: bool, peak: float) -> dict:
    from sweeps import big_grid as bg

    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--out", str(pathlib.Path(tmp) / "big")] + (["--quick"] if quick else [])
        t = time.perf_counter()
        summary = bg.main(argv)
        s = time.perf_counter() - t
    grid = bg.make_grid(quick=quick, seeds=32, width=100, batch_size=1000, depths=[5, 10, 20, 50])
    gflops = sweep_flops(grid) / summary["wall_time_s"] / 1e9
    return dict(
        part="big_grid (fresh, compiles included)",
        networks=summary["networks"],
        seconds=summary["wall_time_s"],
        script_s=s,
        combos_per_s=summary["combos_per_s"],
        gflops=gflops,
        fraction_of_peak=gflops / peak,
    )


def mnist(models_per_init: int, steps: int, peak: float) -> dict:
    try:
        x, y = ji.data.load_mnist("train", download=False)
        source = "MNIST"
    except Exception as err:  # no copy on this machine: the same shapes, random
        rng = np.random.default_rng(0)
        x = rng.random((60_000, 784), np.float32)
        y = rng.integers(0, 10, 60_000)
        source = f"random data of MNIST's shapes (no MNIST copy: {type(err).__name__})"
    grid = ji.TrainGrid(
        inits=list(MNIST_INITS),
        seeds=models_per_init,
        hidden=MNIST_HIDDEN,
        steps=steps,
        batch_size=MNIST_BATCH,
        optimizer="sgd(learning_rate=0.01)",
    )
    evals = (x[:1000], y[:1000])
    t = time.perf_counter()
    ji.train(grid, (x, y), evals, progress=False)
    first = time.perf_counter() - t
    t = time.perf_counter()
    ji.train(grid, (x, y), evals, progress=False)
    s = time.perf_counter() - t
    models = len(MNIST_INITS) * models_per_init
    sizes = (784, *MNIST_HIDDEN, 10)
    flops = 6.0 * MNIST_BATCH * sum(a * b for a, b in itertools.pairwise(sizes))
    flops -= 2.0 * MNIST_BATCH * 784 * MNIST_HIDDEN[0]
    gflops = flops * models * steps / s / 1e9
    return dict(
        part=f"mnist ({source})",
        models=models,
        steps=steps,
        first_call_s=first,
        seconds=s,
        model_steps_per_s=models * steps / s,
        gflops=gflops,
        fraction_of_peak=gflops / peak,
    )


def standard(width: int, batch_size: int, seeds: int, *, quick: bool) -> ji.Grid:
    inits, acts = (INITS[:2], ACTIVATIONS[:2]) if quick else (INITS, ACTIVATIONS)
    return ji.Grid(
        inits=list(inits),
        activations=list(acts),
        depth=5,
        width=width,
        batch_size=batch_size,
        d_in=100 if not quick else 16,
        seeds=seeds,
        bins=30,
    )


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="toy sizes (a smoke test)")
    p.add_argument("--json", type=pathlib.Path, help="also write the rows here")
    args = p.parse_args(argv)
    q = args.quick
    dev = jax.devices()[0]
    print(
        f"device: {dev.device_kind} ({dev.platform}, {len(jax.devices())} device(s)); "
        f"jax {jax.__version__}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    peak = matmul_peak(512 if q or dev.platform == "cpu" else 8192)
    print(f"float32 matmul peak: {peak:,.0f} GFLOP/s", flush=True)
    rows = []
    parts = [
        lambda: timed_sweep(
            "standard grid",
            standard(16 if q else 100, 64 if q else 1000, 4 if q else 512, quick=q),
            peak,
        ),
        lambda: big_grid(q, peak),
        lambda: timed_sweep(
            "width 1024",
            # --quick: the standard part's shapes, so its programs are reused (a smoke test)
            standard(16 if q else 1024, 64 if q else 1024, 4 if q else 32, quick=q),
            peak,
        ),
        lambda: mnist(1 if q else 334, 10 if q else 500, peak),
    ]
    for part in parts:
        row = part()
        rows.append(row)
        print(
            json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
            flush=True,
        )
    print("\n| part | networks or models | s | combos/s or model-steps/s | GFLOP/s | of peak |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        rate = r.get("combos_per_s") or r.get("model_steps_per_s") or 0.0
        print(
            f"| {r['part']} | {r.get('networks', r.get('models'))} | {r['seconds']:.2f} | "
            f"{rate:,.0f} | {r['gflops']:,.0f} | {r['fraction_of_peak']:.1%} |"
        )
    print(f"\npeak {peak:,.0f} GFLOP/s on {dev.device_kind}; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"peak_gflops": peak, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    sys.exit(main() and 0)
