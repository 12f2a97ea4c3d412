r"""jaxinit against its peers on the standard grid, measured in one run.

The standard grid crosses 10 initializers with 8 activations and 16 seeds
(1280 networks): 1000 Gaussian inputs of dimension 100, 5 layers of 100 units,
30-bin histograms. Every peer computes the same thing for one combination: the
forward pass with per-layer pre/post mean and variance, saturated and dead
fractions, non-finite count and a histogram of the post-activations, then the
backward pass of a standard-normal cotangent on the last layer with per-layer
Var(∂L/∂z) and ‖∂L/∂W‖_F. The peers:

- **NumPy loop**: one combination at a time, as the original blog posts write
  it, over the whole grid. float32 and ``np.random.default_rng`` (today's NumPy
  idiom, and not slower than the blog's float64 ``np.random.randn``);
- **PyTorch loop** (when torch is importable): the same with torch ops,
  ``torch.nn.init`` and autograd, one combination at a time, on a seeded sample;
- **naive JAX**: one ``jax.jit`` function per (initializer, activation), closing
  over both as a user would write it, called once per combination, on a sample;
- **jaxinit**: ``ji.sweep(grid)``.

Matmul flops per combination, counted for GFLOP/s, with B samples, input
dimension d_in, width W and L layers:

.. math::

    F_\mathrm{fwd} = 2 B (d_\mathrm{in} W + (L - 1) W^2), \qquad
    F = F_\mathrm{fwd} + F_\mathrm{bwd} \approx 3 F_\mathrm{fwd}

(backward ≈ 2 × forward: one matmul for ∂L/∂W and one for ∂L/∂h per layer).
The machine's matmul peak is the best of a few 1024² and 2048² float32 matmuls,
by ``jnp.dot`` and by NumPy, measured in the same run at its start and again
after the timed runs.

    python benchmarks/standard_grid.py [--quick] [--skip-100k] [--seeds N] [--json PATH]

First-call figures run in a fresh interpreter (``subprocess``) with an empty
compilation cache, so the compile is real; the 100k run has a process of its own
so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

import jaxinit as ji

# the modules beside this file, also when it is loaded by path (tests, train_mnist.py)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _measure import (
    COMPILES,
    matmul_peak,
    time_jaxinit,
    time_naive_jax,
    time_numpy,
    time_probe,
    time_seed_numpy,
    time_seed_torch,
    time_torch,
    timed_jaxinit,
)
from _measure import CpuWatch as CpuWatch  # re-exported: distributed.py, train_mnist.py
from _measure import finish as finish  # re-exported: train_mnist.py
from _peers import numpy_combination as numpy_combination  # re-exported: the tests
from _standard import (
    LARGE_CHUNK,
    TARGETS,
    Config,
    configs,
)

# -- fresh processes ----------------------------------------------------------------


def _kernel_programs() -> int | None:
    try:
        from jaxinit.sweeping import _kernel as kernel

        return kernel.programs()
    except AttributeError:  # the kernel's layout changed
        return None


def _child_first_call(cfg: Config) -> dict:
    t = time.perf_counter()
    ji.sweep(cfg.grid())
    return {
        "first_call_s": time.perf_counter() - t,
        "kernel_programs": _kernel_programs(),
        "backend_compiles": COMPILES["n"],
        "compile_s": COMPILES["s"],
    }


def _child_large(big: Config, tenth: Config) -> dict:
    """A warm-up with the same chunk shapes (it compiles), then the two sizes, warm."""
    warmup = dataclasses.replace(big, seeds=LARGE_CHUNK)
    out = {"warmup_combos": len(warmup)}
    for name, cfg in (("warmup", warmup), ("tenth", tenth), ("large", big)):
        t = time.perf_counter()
        ji.sweep(cfg.grid(), chunk_size=LARGE_CHUNK)  # every chunk full: one shape, no recompile
        out[f"{name}_s"] = time.perf_counter() - t
    out["kernel_programs"] = _kernel_programs()
    out["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return out


def _run_child(kind: str, cfgs: list[Config], cache_dir: str) -> dict:
    """Runs ``kind`` in a fresh interpreter with jaxinit's compilation cache in ``cache_dir``."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["JAXINIT_CACHE_DIR"] = cache_dir
    arg = json.dumps({"kind": kind, "configs": [dataclasses.asdict(c) for c in cfgs]})
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", arg],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"benchmark child {kind} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]) | {"process_s": wall}


def _child(arg: str) -> None:
    spec = json.loads(arg)
    cfgs = [
        Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in c.items()})
        for c in spec["configs"]
    ]
    out = _child_first_call(*cfgs) if spec["kind"] == "first_call" else _child_large(*cfgs)
    print(json.dumps(out))


# -- the report ---------------------------------------------------------------------


def _fmt_ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


def _target(t: tuple[float, float], unit: str = "×") -> str:
    must, aim = t
    return f"≥{must:g}{unit}" + ("" if aim == must else f" (aim {aim:g}{unit})")


def report(fig: dict) -> str:
    std, t, peak = fig["configs"]["standard"], fig["targets"], fig["peak"]
    m = fig["machine"]
    lines = [
        f"standard grid: {std}",
        f"machine: {m['cpus']} CPUs, {m['devices']} jax CPU devices, jax {m['jax']}, numpy "
        f"{m['numpy']}; matmul peak {peak['gflops']:.1f} GFLOP/s (jax {peak['jax_gflops']:.1f}, "
        f"numpy {peak['numpy_gflops']:.1f}; best of {peak.get('each_gflops', '?')} at the start "
        f"and after the timed runs); load average {m['load_average_at_start'][0]:.2f} at "
        f"start, {m['load_average_at_end'][0]:.2f} at end; other processes' CPU while jaxinit "
        f"was timed: {fig['cpu_monitor'].get('foreign_cpu_frac', '?')} of the machine",
        "",
        f"{'program':44s} {'combos/s':>9s} {'jaxinit ×':>10s} {'target':>16s}  timed over",
    ]

    def row(label, p, ratio, target, base):
        if "skipped" in p:
            lines.append(f"{label:44s} {'skipped: ' + p['skipped']}")
            return
        how = f"{p['combos']} {'sampled ' if p.get('sampled') else ''}combos"
        if p.get("config"):
            how += f"; {p['config']}"
        r = None if ratio is None else base / p["combos_per_s"]
        lines.append(
            f"{label:44s} {p['combos_per_s']:9.1f} {_fmt_ratio(r):>10s} {target:>16s}  {how}"
        )

    fwd, full = fig["jaxinit_forward"], fig["jaxinit_default"]
    lines.append("forward statistics (gradients=False):")
    row("  jaxinit ji.sweep, gradients=False", fwd, None, "", 0)
    row(
        "  NumPy loop (peers/peer_numpy_loop.py)",
        fig["seed_numpy"],
        1,
        _target(t["fwd_numpy_ratio"]),
        fwd["combos_per_s"],
    )
    row(
        "  PyTorch loop (peers/peer_torch_loop.py)",
        fig["seed_torch"],
        1,
        _target(t["fwd_torch_ratio"]),
        fwd["combos_per_s"],
    )
    row(
        "  prototype (peers/probe_jax_vmap.py)",
        fig["probe"],
        1,
        _target(t["fwd_probe_ratio"]),
        fwd["combos_per_s"],
    )
    lines.append("full statistics (default: forward + backward):")
    row("  jaxinit ji.sweep", full, None, "", 0)
    row(
        "  full-statistics NumPy loop",
        fig["numpy"],
        1,
        _target(t["full_numpy_ratio"]),
        full["combos_per_s"],
    )
    row("  full-statistics PyTorch loop", fig["torch"], 1, "", full["combos_per_s"])
    row(
        "  naive JAX (jit per init × act), warm",
        fig["naive_jax"],
        1,
        _target(t["full_naive_ratio"]),
        full["combos_per_s"],
    )
    fc, e2e = fig["first_call"], fig["end_to_end"]
    lines += [
        "",
        f"{'figure':60s} {'measured':>14s}  target",
        f"{'first call, fresh process, empty cache: sweep() s':60s} {fc['first_call_s']:14.2f}  ≤{t['compile_s'][0]:g} s (aim {t['compile_s'][1]:g})",
        f"{'  of which XLA compiles (count, s)':60s} {fc['backend_compiles']:>6d}, {fc['compile_s']:5.2f}  ({fc['kernel_programs']} kernel programs)",
        f"{'fresh process, ' + str(e2e['combos']) + ' combos: import + compile + run, s':60s} {e2e['process_s']:14.2f}",
        f"{'  vs the NumPy loop on the same ' + str(e2e['combos']) + ' (' + format(e2e['numpy_s'], '.2f') + ' s)':60s} {e2e['numpy_ratio']:13.2f}×  {_target(t['end_to_end_numpy_ratio'])}",
        f"{'fresh process, warm disk cache: first sweep() s':60s} {fig['first_call_cached']['first_call_s']:14.2f}",
        f"{'fresh process, warm disk cache, ' + str(e2e['combos']) + ' combos: import + load + run, s':60s} {e2e['cached_process_s']:14.2f}",
        f"{'  vs the NumPy loop on the same ' + str(e2e['combos']):60s} {e2e['cached_numpy_ratio']:13.2f}×",
    ]
    for key, label in (("forward_mm", "gradients=False"), ("default_mm", "default")):
        mm = fig[key]
        lines.append(
            f"{'matmul GFLOP/s, width 100, ' + label:60s} {mm['gflops']:8.1f} ({mm['fraction']:5.1%} of peak)"
        )
    w = fig["wide"]
    lines.append(
        f"{'matmul GFLOP/s, width 256, batch 1024, ' + ('default' if w['gradients'] else 'gradients=False'):60s} {w['gflops']:8.1f} ({w['fraction']:5.1%} of peak)  {_target(t['wide_fraction_of_peak'], '')}"
    )
    w = fig["wide_default"]
    lines.append(
        f"{'matmul GFLOP/s, width 256, batch 1024, default':60s} {w['gflops']:8.1f} ({w['fraction']:5.1%} of peak)"
    )
    if fig.get("large"):
        lg = fig["large"]
        lines += [
            f"{'large run: ' + lg['config']:60s}",
            f"{'  ' + format(lg['combos'], ',') + ' combos, warm, s':60s} {lg['large_s']:14.1f}  ({lg['combos_per_s']:.0f} combos/s)",
            f"{'  ' + format(lg['tenth_combos'], ',') + ' combos, warm, s':60s} {lg['tenth_s']:14.1f}  (time ratio {lg['linearity']:.2f}; linear: {lg['combos'] / lg['tenth_combos']:.0f})",
            f"{'  peak RSS of that process, GB':60s} {lg['max_rss_bytes'] / 1e9:14.2f}  <{t['large_rss_gb'][0]:g} GB",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tiny grid, for the smoke test")
    ap.add_argument("--skip-100k", action="store_true", help="skip the 100,000-combination run")
    ap.add_argument("--seeds", type=int, default=None, help="seeds of the standard grid")
    ap.add_argument("--json", type=pathlib.Path, default=None, help="write every figure here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child)
        return {}
    cfgs = configs(quick=args.quick, seeds=args.seeds)
    std = cfgs["standard"]
    fwd = dataclasses.replace(std, gradients=False)
    start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {msg}", file=sys.stderr, flush=True)

    fig: dict = {
        "configs": {k: c.describe() for k, c in cfgs.items()},
        "machine": {
            "cpus": os.cpu_count(),
            "devices": len(jax.devices()),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "targets": TARGETS,
    }
    say(f"benchmark: {std.describe()}; {len(jax.devices())} jax devices")
    sizes = (512,) if args.quick else (1024, 2048)
    peaks = [matmul_peak(n) for n in sizes]
    e2e_cfg = fwd if args.quick else dataclasses.replace(fwd, seeds=4)
    with tempfile.TemporaryDirectory(prefix="jaxinit-bench-cache-") as cache:
        say("jaxinit: first call in a fresh process (empty compilation cache) ...")
        fig["first_call"] = _run_child("first_call", [fwd], cache)
        say("jaxinit: first call in a fresh process (warm disk cache) ...")
        fig["first_call_cached"] = _run_child("first_call", [fwd], cache)
    if e2e_cfg == fwd:  # --quick: the same runs as the first call's
        e2e, e2e_cached = fig["first_call"], fig["first_call_cached"]
    else:
        with tempfile.TemporaryDirectory(prefix="jaxinit-bench-cache-") as cache:
            say(f"jaxinit: fresh process on {len(e2e_cfg)} combos (empty cache) ...")
            e2e = _run_child("first_call", [e2e_cfg], cache)
            say(f"jaxinit: fresh process on {len(e2e_cfg)} combos (warm disk cache) ...")
            e2e_cached = _run_child("first_call", [e2e_cfg], cache)
    say("jaxinit: warm, gradients=False ...")
    fig["jaxinit_forward"], fig["cpu_monitor"] = timed_jaxinit(fwd, repeats=2)
    say("jaxinit: warm, default ...")
    fig["jaxinit_default"], _ = timed_jaxinit(std, repeats=2)
    n_seeds = 1 if args.quick else 4
    say("peers: seed-style NumPy loop ...")
    fig["seed_numpy"] = time_seed_numpy(n_seeds, warmup=not args.quick)
    say("peers: seed-style PyTorch loop ...")
    fig["seed_torch"] = time_seed_torch(n_seeds)
    say("peers: the prototype probe ...")
    fig["probe"] = {"skipped": "--quick"} if args.quick else time_probe(std.seeds)
    say("full-statistics NumPy loop ...")
    fig["numpy"] = time_numpy(std)
    say("full-statistics PyTorch loop ...")
    fig["torch"] = time_torch(std)
    say("naive JAX ...")
    fig["naive_jax"] = time_naive_jax(std)
    numpy_320 = (
        fig["seed_numpy"].get("seconds", math.nan)
        * len(e2e_cfg)
        / max(1, fig["seed_numpy"].get("combos", 1))
    )
    fig["end_to_end"] = {
        "combos": len(e2e_cfg),
        "process_s": e2e["process_s"],
        "numpy_s": numpy_320,
        "numpy_ratio": numpy_320 / e2e["process_s"],
        "cached_process_s": e2e_cached["process_s"],
        "cached_numpy_ratio": numpy_320 / e2e_cached["process_s"],
    }
    # The peak again, after the timed runs: one measurement can land on a slow moment (a
    # run of this benchmark once measured 87 GFLOP/s at its start, 155 a minute later),
    # and a low peak would inflate every fraction below. The best of both is the peak.
    peaks += [matmul_peak(n) for n in sizes]
    fig["peak"] = {k: max(p[k] for p in peaks) for k in ("jax_gflops", "numpy_gflops", "gflops")}
    fig["peak"]["each_gflops"] = [round(p["gflops"], 1) for p in peaks]
    for key, cfg, res in (
        ("forward_mm", fwd, fig["jaxinit_forward"]),
        ("default_mm", std, fig["jaxinit_default"]),
    ):
        g = res["combos_per_s"] * cfg.flops / 1e9
        fig[key] = {"gflops": g, "fraction": g / fig["peak"]["gflops"]}
    wide_cfg = dataclasses.replace(
        cfgs["wide"], batch_size=64 if args.quick else 1024, gradients=False
    )
    say(f"jaxinit: wide ({wide_cfg.describe()}) ...")
    wide = time_jaxinit(wide_cfg, repeats=2)
    fig["wide"] = {
        "gflops": wide["gflops"],
        "fraction": wide["gflops"] / fig["peak"]["gflops"],
        "gradients": False,
        "combos_per_s": wide["combos_per_s"],
    }
    wide_default = time_jaxinit(dataclasses.replace(wide_cfg, gradients=True), repeats=2)
    fig["wide_default"] = {
        "gflops": wide_default["gflops"],
        "gradients": True,
        "fraction": wide_default["gflops"] / fig["peak"]["gflops"],
        "combos_per_s": wide_default["combos_per_s"],
    }
    if not args.skip_100k:
        big, tenth = cfgs["large"], cfgs["large_tenth"]
        say(f"jaxinit: large run ({big.describe()}), in its own process ...")
        with tempfile.TemporaryDirectory(prefix="jaxinit-bench-cache-") as cache:
            lg = _run_child("large", [big, tenth], cache)
        fig["large"] = lg | {
            "config": f"{len(big.inits)} inits × {len(big.activations)} activations, "
            f"{big.seeds} / {tenth.seeds} seeds",
            "combos": len(big),
            "tenth_combos": len(tenth),
            "combos_per_s": len(big) / lg["large_s"],
            "linearity": lg["large_s"] / lg["tenth_s"],
        }
    return finish(fig, report, args.json)


if __name__ == "__main__":
    main()
