r"""Compile time against depth: the sweep's programs are scans over layers (issue 25).

    python benchmarks/deep_compile.py [--depths 5 100 500 1000] [--quick]

For each depth, a fresh compile (jax's persistent cache off) of the draw and forward
programs of ``Grid(depth=L, width=4, batch_size=16, 2 inits × 2 activations, 2 seeds)``,
with gradients on and off: the seconds XLA spent compiling (``jax.monitoring``'s
backend-compile events), the whole first call, and the ratio of each to depth 5's,
measured in the same run: both passes are scans over layers, so the ratios stay near 1
(an unrolled backward pass grows linearly: 100 s at depth 500). Prints the load average
before and after.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import jaxinit as ji
from jaxinit.sweeping import _kernel as kernel

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # the modules beside this file

from _measure import COMPILES, no_persistent_cache


def compile_once(depth: int, gradients: bool) -> dict:
    grid = ji.Grid(
        inits=["he_normal", "orthogonal"],
        activations=["tanh", "relu"],
        depth=depth,
        width=4,
        batch_size=16,
        seeds=2,
        gradients=gradients,
    )
    kernel.clear_programs()
    n, s = COMPILES["n"], COMPILES["s"]
    with no_persistent_cache():
        t = time.perf_counter()
        ji.sweep(grid)
        first = time.perf_counter() - t
    return {"compile_s": COMPILES["s"] - s, "compiles": COMPILES["n"] - n, "first_call_s": first}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--depths", type=int, nargs="+", default=[5, 100, 500, 1000])
    p.add_argument("--quick", action="store_true", help="depths 5 and 20 only (a smoke test)")
    args = p.parse_args(argv)
    depths = [5, 20] if args.quick else args.depths
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for gradients in (True, False):
        base = None
        for depth in depths:
            r = compile_once(depth, gradients) | {"depth": depth, "gradients": gradients}
            base = base or r
            r["compile_ratio"] = r["compile_s"] / base["compile_s"]
            r["first_call_ratio"] = r["first_call_s"] / base["first_call_s"]
            rows.append(r)
    print("\n| gradients | depth | programs | compile s | × depth 5 | first call s | × depth 5 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['gradients']} | {r['depth']} | {r['compiles']} | {r['compile_s']:.2f} | "
            f"{r['compile_ratio']:.2f} | {r['first_call_s']:.2f} | {r['first_call_ratio']:.2f} |"
        )
    print(f"\nload average {os.getloadavg()[0]:.2f}")
    return rows


if __name__ == "__main__":
    main()
