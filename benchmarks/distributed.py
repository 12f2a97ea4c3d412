"""The standard grid on 1 process × 2 devices against 2 processes × 1 device (jax.distributed).

Both sweep the standard grid of ``standard_grid.py`` (10 inits × 8 activations ×
16 seeds, 5 layers of 100 units, 1000 samples, 30 bins) into a fresh ``out=``
directory with the same seeds per chunk (half the seeds, so two chunks: one a
process in the second configuration), so the only difference is who runs the
chunks: two devices of one process, or two processes of one device each
exchanging their chunks through the directory. Each configuration runs in
fresh interpreters (the device count is fixed when jax starts): one warm-up
sweep (compilation), then the best of ``--repeats`` timed sweeps; a
two-process sweep's time is the slower process's, since every process returns
only once it has read every chunk. On one machine the point is correctness;
the ratio shows the overhead (two programs and two jax runtimes on the same
cores, the chunk files, polling).

Printed beside each: the load average before and after, and the CPU that other
processes used meanwhile (``../shared/peers/common.CpuMonitor``, less this
benchmark's own child processes); figures taken with that above ~0.1 are
contaminated.

    python benchmarks/distributed.py [--quick] [--seeds N] [--chunk-size S] [--repeats R] [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import resource
import socket
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import standard_grid  # noqa: E402 - the standard grid and the CPU monitor, defined once there

CONFIGS = (("1 process × 2 devices", 1, 2), ("2 processes × 1 device", 2, 1))


def child(spec: dict) -> dict:
    """One process of a configuration: a warm-up sweep, then the timed ones; seconds each."""
    import jax

    if spec["processes"] > 1:
        jax.distributed.initialize(
            spec["coordinator"],
            num_processes=spec["processes"],
            process_id=spec["process"],
            initialization_timeout=120,
        )
    import jaxinit as ji

    grid = standard_grid.Config(**spec["config"]).grid()
    root = pathlib.Path(spec["out"])
    kw = {"chunk_size": spec["chunk_size"], "progress": False}
    ji.sweep(grid, out=root / "warm", **kw)
    times = []
    for r in range(spec["repeats"]):
        start = time.perf_counter()
        res = ji.sweep(grid, out=root / f"run{r}", **kw)
        times.append(time.perf_counter() - start)
    return {"times": times, "combos": len(grid), "computed_by": res.attrs["computed_by"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(label: str, processes: int, devices: int, cfg, *, chunk_size: int, repeats: int) -> dict:
    """One configuration in fresh interpreters; its best time and the machine's state meanwhile."""
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), "JAX_PLATFORMS": "cpu"}
    coordinator = f"127.0.0.1:{_free_port()}"
    load_before = os.getloadavg()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="jaxinit-bench-") as out,
        standard_grid.CpuWatch() as mon,
    ):
        procs = []
        for p in range(processes):
            spec = {
                "config": dataclasses.asdict(cfg),
                "processes": processes,
                "process": p,
                "coordinator": coordinator,
                "out": out,
                "chunk_size": chunk_size,
                "repeats": repeats,
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--child", json.dumps(spec)],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        outs = [proc.communicate(timeout=3600)[0] for proc in procs]
    wall = time.perf_counter() - start
    if any(proc.returncode for proc in procs):
        raise RuntimeError(f"{label}: a process failed (exit {[p.returncode for p in procs]})")
    got = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    best = min(max(g["times"][r] for g in got) for r in range(repeats))  # the slower process's
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (used.ru_utime + used.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    own_frac = own / (wall * (os.cpu_count() or 1))
    cpu = dict(mon.result)
    if "foreign_cpu_frac" in cpu:  # the monitor counts our children as foreign: take them out
        cpu["foreign_cpu_frac"] = round(max(0.0, cpu["foreign_cpu_frac"] - own_frac), 3)
    return {
        "label": label,
        "processes": processes,
        "devices_per_process": devices,
        "combos": got[0]["combos"],
        "best_s": best,
        "combos_per_s": got[0]["combos"] / best,
        "computed_by": sorted(set(got[0]["computed_by"].values())),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "children_cpu_frac": round(own_frac, 3),
        **cpu,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tiny grid, for the smoke test")
    ap.add_argument("--seeds", type=int, default=None, help="seeds of the standard grid")
    ap.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="seeds per chunk (None: half the seeds, so each process has one)",
    )
    ap.add_argument("--repeats", type=int, default=3, help="timed sweeps per configuration")
    ap.add_argument("--json", type=pathlib.Path, default=None, help="write every figure here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return {}
    cfg = standard_grid.configs(quick=args.quick, seeds=args.seeds)["standard"]
    chunk_size = args.chunk_size or max(1, cfg.seeds // 2)
    print(f"grid: {cfg.describe()}; {chunk_size} seeds per chunk", flush=True)
    rows = [
        run(label, p, d, cfg, chunk_size=chunk_size, repeats=args.repeats)
        for label, p, d in CONFIGS
    ]
    ratio = rows[1]["combos_per_s"] / rows[0]["combos_per_s"]
    print(
        f"{'configuration':<24} {'best s':>8} {'combos/s':>9} {'ratio':>6}  {'load (1, 5, 15 min) before -> after':<38} other CPU"
    )
    for row in rows:
        load = f"{row['load_before']} -> {row['load_after']}"
        other = row.get("foreign_cpu_frac", "n/a")
        print(
            f"{row['label']:<24} {row['best_s']:>8.3f} {row['combos_per_s']:>9.1f} "
            f"{row['combos_per_s'] / rows[0]['combos_per_s']:>5.2f}×  {load:<38} {other}"
        )
    print(f"2 processes × 1 device / 1 process × 2 devices: {ratio:.2f}×")
    fig = {"grid": cfg.describe(), "chunk_seeds": chunk_size, "rows": rows, "ratio": ratio}
    if args.json:
        args.json.write_text(json.dumps(fig, indent=1))
    return fig


if __name__ == "__main__":
    main()
