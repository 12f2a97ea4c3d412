"""How lane width and host device count change jaxinit's warm sweep speed on a CPU.

Each configuration runs in a fresh interpreter, since the number of CPU devices
(``JAX_NUM_CPU_DEVICES``) is fixed when jax starts. The grid is a quarter of the
standard grid's inits × half its activations × its 16 seeds, at its shapes
(1000 Gaussian samples, 5 layers of 100, 30 bins): 256 combinations. Printed:
first call (compile included) and the best of two warm calls, in combos/s, and
each configuration's ratio to (1 device, lanes 1), measured in the same run.

    python benchmarks/lanes_and_devices.py [--configs 1x1 2x1 2x8 2x16] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

INITS = ["normal(stddev=1.0)", "he_normal", "glorot_uniform", "lecun_normal"]
ACTIVATIONS = ["sigmoid", "tanh", "relu", "gelu"]


def child(lanes: int, quick: bool) -> dict:
    import jaxinit as ji

    shape = (
        dict(depth=2, width=8, seeds=2, batch_size=16)
        if quick
        else dict(depth=5, width=100, seeds=16, batch_size=1000)
    )
    grid = ji.Grid(inits=INITS, activations=ACTIVATIONS, bins=30, **shape)
    start = time.perf_counter()
    ji.sweep(grid, lanes=lanes, progress=False)
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        ji.sweep(grid, lanes=lanes, progress=False)
        best = min(best, time.perf_counter() - start)
    return {"combos": len(grid), "first_s": first, "warm_combos_per_s": len(grid) / best}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--configs",
        nargs="+",
        default=["1x1", "2x1", "2x8", "2x16"],
        help="DEVICESxLANES, e.g. 2x8",
    )
    ap.add_argument("--quick", action="store_true", help="a tiny grid, for the smoke test")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(int(args.child), args.quick)))
        return []
    rows = []
    for config in args.configs:
        try:
            devices, lanes = (int(x) for x in config.split("x"))
        except ValueError:
            ap.error(f"--configs {config!r}: expected DEVICESxLANES such as 2x8")
        env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), "JAXINIT_COMPILATION_CACHE": "0"}
        cmd = [sys.executable, __file__, "--child", str(lanes)] + (
            ["--quick"] if args.quick else []
        )
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        rows.append({"devices": devices, "lanes": lanes, **json.loads(out.splitlines()[-1])})
    base = rows[0]["warm_combos_per_s"]
    print(f"{rows[0]['combos']} combinations; load average {os.getloadavg()[0]:.2f}")
    print(
        f"{'devices':>7s} {'lanes':>5s} {'first call s':>12s} {'warm combos/s':>13s} {'× first row':>11s}"
    )
    for r in rows:
        print(
            f"{r['devices']:7d} {r['lanes']:5d} {r['first_s']:12.1f} {r['warm_combos_per_s']:13.1f} "
            f"{r['warm_combos_per_s'] / base:10.2f}×"
        )
    return rows


if __name__ == "__main__":
    main()
