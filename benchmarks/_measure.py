"""What ``standard_grid.py`` measures with: compile events, the matmul peak, the CPU of
other processes, and the timing of each peer (the ``../shared/peers`` programs too)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _peers import naive_jax_function, numpy_combination, torch_peer
from _standard import ACTIVATIONS, INITS, PEERS, Config, sample

import jaxinit as ji

# -- measurements -------------------------------------------------------------------

COMPILES = {"n": 0, "s": 0.0}


def on_compile_event(event: str, secs: float, **kwargs) -> None:
    del kwargs
    if event == "/jax/core/compile/backend_compile_duration":
        COMPILES["n"] += 1
        COMPILES["s"] += secs


jax.monitoring.register_event_duration_secs_listener(on_compile_event)


@contextlib.contextmanager
def no_persistent_cache():
    """Compiles for real: jaxinit turns on jax's persistent cache at import."""
    before = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", before)


def matmul_peak(n: int, repeats: int = 5) -> dict[str, float]:
    """Best GFLOP/s of an ``n × n`` float32 matmul, by jax and by NumPy."""
    flops = 2.0 * n**3
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    dot = jax.jit(jnp.dot)
    ja = jnp.asarray(a)
    dot(ja, ja).block_until_ready()
    a @ a
    best = {"jax": math.inf, "numpy": math.inf}
    for _ in range(repeats):
        t = time.perf_counter()
        dot(ja, ja).block_until_ready()
        best["jax"] = min(best["jax"], time.perf_counter() - t)
        t = time.perf_counter()
        a @ a
        best["numpy"] = min(best["numpy"], time.perf_counter() - t)
    out = {f"{k}_gflops": flops / v / 1e9 for k, v in best.items()}
    return out | {"gflops": max(out.values()), "n": n}


def alone(run, *, peak_n: int = 1024) -> dict:
    """``run()``'s figures beside what says whether they count: the load average before and
    after, the CPU other processes used meanwhile (``CpuWatch``; above ~0.1 the run is
    contaminated), ``XLA_FLAGS``, and the float32 matmul peak of jax and NumPy measured in the
    same run (best of before and after)."""
    load = [os.getloadavg()[0]]
    with CpuWatch() as cpu:
        before = matmul_peak(peak_n)
        figures = run()
        after = matmul_peak(peak_n)
    load.append(os.getloadavg()[0])
    peak = {k: max(before[k], after[k]) for k in ("jax_gflops", "numpy_gflops", "gflops")}
    return figures | {
        "matmul_peak": {k: round(v, 1) for k, v in peak.items()},
        "load_average": [round(x, 2) for x in load],
        "other_cpu": cpu.result.get("foreign_cpu_frac"),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def time_numpy(cfg: Config) -> dict:
    """The NumPy loop over every combination of the grid."""
    for act in cfg.activations:  # warm-up: first touches of each code path
        numpy_combination(cfg, cfg.inits[0], act, 0)
    t = time.perf_counter()
    for init, act, seed in cfg.combinations():
        numpy_combination(cfg, init, act, seed)
    s = time.perf_counter() - t
    return {"combos_per_s": len(cfg) / s, "seconds": s, "combos": len(cfg), "sampled": False}


def time_torch(cfg: Config) -> dict:
    try:
        import torch
    except ImportError:
        return {"skipped": "not installed"}
    run = torch_peer(torch)
    combos = sample(cfg)
    for act in cfg.activations:
        run(cfg, cfg.inits[0], act, 0)
    best = math.inf
    for _ in range(2):
        t = time.perf_counter()
        for combo in combos:
            run(cfg, *combo)
        best = min(best, time.perf_counter() - t)
    return {
        "combos_per_s": len(combos) / best,
        "seconds": best,
        "combos": len(combos),
        "sampled": True,
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def time_naive_jax(cfg: Config) -> dict:
    """One jit per (init, activation), first calls (compile) and then warm calls."""
    combos = sample(cfg)
    traces = [0]
    compiles_before, compile_s_before = COMPILES["n"], COMPILES["s"]
    fns, keys = {}, {}
    t = time.perf_counter()
    with no_persistent_cache():
        for init, act, seed in combos:
            if seed not in keys:
                keys[seed] = jax.random.key(seed)
            if (init, act) not in fns:
                fns[init, act] = naive_jax_function(cfg, init, act, traces)
            jax.block_until_ready(fns[init, act](keys[seed]))
    first_pass = time.perf_counter() - t
    best = math.inf
    for _ in range(2):
        t = time.perf_counter()
        for init, act, seed in combos:
            jax.block_until_ready(fns[init, act](keys[seed]))
        best = min(best, time.perf_counter() - t)
    warm = len(combos) / best
    return {
        "combos_per_s": warm,
        "seconds": best,
        "combos": len(combos),
        "sampled": True,
        "jit_functions": len(fns),
        "traces": traces[0],
        "backend_compiles": COMPILES["n"] - compiles_before,
        "compile_s": COMPILES["s"] - compile_s_before,
        "first_pass_s": first_pass,  # the sample's first calls, compiles included
        "full_grid_estimate_s": first_pass + (len(cfg) - len(combos)) / warm,
    }


def time_jaxinit(cfg: Config, repeats: int) -> dict:
    """``ji.sweep`` warm: one call to compile, then the best of ``repeats``."""
    grid = cfg.grid()
    t = time.perf_counter()
    ji.sweep(grid)
    cold = time.perf_counter() - t
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        ji.sweep(grid)  # returns NumPy arrays: every result is back on the host
        best = min(best, time.perf_counter() - t)
    rate = len(cfg) / best
    return {
        "combos_per_s": rate,
        "seconds": best,
        "combos": len(cfg),
        "repeats": repeats,
        "sampled": False,
        "in_process_first_call_s": cold,
        "gflops": rate * cfg.flops / 1e9,
        "flops_per_combo": cfg.flops,
    }


def peers_module(name: str):
    """A module of ``../shared/peers`` (the reference programs), or None where absent."""
    if not (PEERS / f"{name}.py").exists():
        return None
    if str(PEERS) not in sys.path:
        sys.path.insert(0, str(PEERS))
    import importlib

    return importlib.import_module(name)


def time_seed_numpy(seeds: int, *, warmup: bool = True) -> dict:
    """``../shared/peers/peer_numpy_loop.py``: the classic blog loop, forward statistics
    (after a one-seed warm-up run, unless ``warmup=False``: a smoke test's figures)."""
    mod = peers_module("peer_numpy_loop")
    if mod is None:
        return {"skipped": "no ../shared/peers"}
    if warmup:
        mod.run_grid(1, np.float32)
    t = time.perf_counter()
    mod.run_grid(seeds, np.float32)
    s = time.perf_counter() - t
    n = seeds * len(INITS) * len(ACTIVATIONS)
    return {"combos_per_s": n / s, "seconds": s, "combos": n, "sampled": False}


def time_seed_torch(seeds: int) -> dict:
    """``../shared/peers/peer_torch_loop.py``: the same loop in PyTorch."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return {"skipped": "torch not installed"}
    mod = peers_module("peer_torch_loop")
    if mod is None:
        return {"skipped": "no ../shared/peers"}
    mod.run_grid(1)
    t = time.perf_counter()
    mod.run_grid(seeds)
    s = time.perf_counter() - t
    n = seeds * len(INITS) * len(ACTIVATIONS)
    return {"combos_per_s": n / s, "seconds": s, "combos": n, "sampled": False}


def time_probe(seeds: int) -> dict:
    """``../shared/peers/probe_jax_vmap.py`` in its best configuration (2 devices), its own process."""
    if not (PEERS / "probe_jax_vmap.py").exists():
        return {"skipped": "no ../shared/peers"}
    cmd = [
        sys.executable,
        "probe_jax_vmap.py",
        "--devices",
        str(os.cpu_count() or 1),
        "--seeds",
        str(seeds),
        "--hist",
        "cvmap_scatter",
        "--chunks",
        "all,8",
        "--shapes",
        "1000x100",
        "--reps",
        "3",
    ]
    env = {**os.environ, "PEERS_NO_WAIT": "1"}
    env.pop("JAX_NUM_CPU_DEVICES", None)
    proc = subprocess.run(cmd, cwd=PEERS, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        return {"skipped": f"probe failed: {proc.stderr[-300:]}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    best = out["best"]
    return {
        "combos_per_s": best["combos_per_s"],
        "combos": best["S"] * 80,
        "sampled": False,
        "config": f"{out['devices']} devices, {best['S']} seeds, {best['chunk_seeds']} per block, hist {best['hist']}",
    }


def timed_jaxinit(cfg: Config, repeats: int) -> tuple[dict, dict]:
    with CpuWatch() as mon:
        out = time_jaxinit(cfg, repeats=repeats)
    return out, mon.result


class CpuWatch:
    """``common.CpuMonitor`` of ``../shared/peers`` (CPU of other processes), or nothing."""

    def __enter__(self):
        mod = peers_module("common")
        self._mon = None if mod is None else mod.CpuMonitor().__enter__()
        return self

    def __exit__(self, *exc):
        self.result = {}
        if self._mon is not None:
            self._mon.__exit__(*exc)
            self.result = self._mon.result
        return False


def finish(fig: dict, table, path) -> dict:
    """A benchmark's last step: the load average at the end, ``table(fig)`` printed and kept
    as ``fig["table"]``, every figure written to ``path`` as JSON (when given)."""
    fig["machine"]["load_average_at_end"] = os.getloadavg()
    fig["table"] = table(fig)
    print(fig["table"])
    if path:
        path.write_text(json.dumps(fig, indent=2, default=_json_value))
    return fig


def _json_value(value):
    """numpy numbers as numbers, anything else JSON cannot hold as its text."""
    return float(value) if isinstance(value, np.floating | np.integer) else str(value)


def timed(fn) -> float:
    """Seconds of ``fn()``, its outputs ready."""
    t = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t


def naive_peer_seconds(calls: int) -> float | None:
    """``../shared/peers/peer_jax_naive.py``'s ``run_combo`` (he_normal, tanh: a network's
    draws and forward pass, jitted), ``calls`` warm calls on other keys: the yardstick that
    says how fast the machine ran; None without ``../shared/peers``."""
    mod = peers_module("peer_jax_naive")
    if mod is None:
        return None
    jax.block_until_ready(mod.run_combo(jax.random.PRNGKey(0), init="he_normal", act="tanh"))
    return timed(
        lambda: [
            mod.run_combo(jax.random.PRNGKey(k), init="he_normal", act="tanh")
            for k in range(1, calls + 1)
        ]
    )
