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
import contextlib
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
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

import jaxinit as ji

INITS = (
    "normal(stddev=1.0)",
    "normal(stddev=0.01)",
    "glorot_normal",
    "he_normal",
    "glorot_uniform",
    "he_uniform",
    "lecun_normal",
    "orthogonal",
    "truncated_normal(stddev=0.05)",
    "uniform(low=-0.05, high=0.05)",
)
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "silu")
QUICK_INITS = ("he_normal", "normal(stddev=0.01)")
QUICK_ACTIVATIONS = ("sigmoid", "relu")
HIST_HALF_RANGE = 3.0  # histogram edge on an unbounded side, as jaxinit's default
SAMPLE = 160  # combinations timed for the torch and naive-JAX peers
LARGE_INITS = ("he_normal", "glorot_uniform")  # the 100k run: 2 × 2 × 25,000 seeds
LARGE_ACTIVATIONS = ("relu", "tanh")
LARGE_CHUNK = 1024  # seeds per chunk in the large runs (4 combinations per seed there)
TARGETS = {  # issue 10: must (aim)
    "fwd_numpy_ratio": (5.0, 10.0),  # gradients=False vs the seed-style NumPy loop
    "fwd_torch_ratio": (2.5, 4.0),  # gradients=False vs the PyTorch loop
    "fwd_probe_ratio": (0.9, 1.0),  # gradients=False vs the prototype probe
    "full_numpy_ratio": (4.0, 8.0),  # default vs the full-statistics NumPy loop
    "full_naive_ratio": (3.0, 3.0),  # default vs naive JAX, warm
    "end_to_end_numpy_ratio": (3.0, 5.0),  # fresh process, 320 combos, vs the NumPy loop
    "compile_s": (5.0, 3.0),
    "wide_fraction_of_peak": (0.35, 0.5),
    "large_rss_gb": (4.0, 4.0),
}
PEERS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "peers"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """One grid of the benchmark."""

    inits: tuple[str, ...]
    activations: tuple[str, ...]
    seeds: int
    batch: int
    d_in: int
    width: int
    depth: int = 5
    bins: int = 30
    gradients: bool = True

    def grid(self) -> ji.Grid:
        return ji.Grid(inits=list(self.inits), activations=list(self.activations),
                       depth=self.depth, width=self.width, seeds=self.seeds, batch=self.batch,
                       d_in=self.d_in, bins=self.bins, inputs="gaussian",
                       gradients=self.gradients)  # fmt: skip

    def __len__(self) -> int:
        return len(self.inits) * len(self.activations) * self.seeds

    def combinations(self) -> Iterator[tuple[str, str, int]]:
        for init in self.inits:
            for act in self.activations:
                for seed in range(self.seeds):
                    yield init, act, seed

    @property
    def flops(self) -> float:
        """Matmul flops of one combination, forward (+ backward; see the module docs)."""
        fwd = 2 * self.batch * (self.d_in * self.width + (self.depth - 1) * self.width**2)
        return 3.0 * fwd if self.gradients else fwd

    def describe(self) -> str:
        return (f"{len(self.inits)} inits × {len(self.activations)} activations × {self.seeds} "
                f"seeds = {len(self)} combinations; batch {self.batch}, d_in {self.d_in}, "
                f"{self.depth} layers of {self.width}, {self.bins} bins")  # fmt: skip


def configs(*, quick: bool, seeds: int | None) -> dict[str, Config]:
    """The standard grid, the width-256 grid and the two sizes of the large run."""
    if quick:
        base = Config(inits=QUICK_INITS, activations=QUICK_ACTIVATIONS, seeds=seeds or 2,
                      batch=64, d_in=16, width=16)  # fmt: skip
        wide, large = base, (1280, 128)  # wide: same programs, no extra compile
    else:
        base = Config(inits=INITS, activations=ACTIVATIONS, seeds=seeds or 16, batch=1000,
                      d_in=100, width=100)  # fmt: skip
        wide, large = dataclasses.replace(base, width=256, batch=1024, seeds=2), (25_000, 2_500)
    big = dataclasses.replace(base, inits=LARGE_INITS, activations=LARGE_ACTIVATIONS,
                              seeds=large[0], gradients=False)  # fmt: skip
    return {"standard": base, "wide": wide, "large": big,
            "large_tenth": dataclasses.replace(big, seeds=large[1])}  # fmt: skip


def sample(cfg: Config, n: int = SAMPLE) -> list[tuple[str, str, int]]:
    """A seeded sample of ``n`` combinations, the same number of seeds per (init, activation)."""
    rng = np.random.default_rng(0)
    per_pair = min(cfg.seeds, max(1, n // (len(cfg.inits) * len(cfg.activations))))
    return [(i, a, int(s)) for i in cfg.inits for a in cfg.activations
            for s in sorted(rng.choice(cfg.seeds, per_pair, replace=False))]  # fmt: skip


def hist_range(activation: str) -> tuple[float, float]:
    """The histogram range of an activation: its bounds where finite, else ±3 (as jaxinit)."""
    lo, hi = ji.activations.get(activation).bounds
    return (lo if math.isfinite(lo) else -HIST_HALF_RANGE,
            hi if math.isfinite(hi) else HIST_HALF_RANGE)  # fmt: skip


def saturation(activation: str) -> tuple[float | None, float | None]:
    """``a < lo`` or ``a > hi`` is saturated; None: no test (jaxinit's thresholds)."""
    return ji.activations.get(activation).saturation


# -- the NumPy peer -----------------------------------------------------------------

_TRUNC_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]
_F32 = np.float32


def _np_truncated(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """N(0, 1) cut at ±2, by redrawing what falls outside."""
    w = rng.standard_normal(shape, dtype=_F32)
    bad = np.abs(w) > 2
    while bad.any():
        w[bad] = rng.standard_normal(int(bad.sum()), dtype=_F32)
        bad = np.abs(w) > 2
    return w


def _np_uniform(rng: np.random.Generator, shape: tuple[int, int], limit: float) -> np.ndarray:
    return (rng.random(shape, dtype=_F32) * 2 - 1) * _F32(limit)


def _np_orthogonal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    n_in, n_out = shape
    q, r = np.linalg.qr(rng.standard_normal((max(shape), min(shape)), dtype=_F32))
    q *= np.sign(np.diag(r))
    return q if n_in >= n_out else q.T


# (rng, fan_in, fan_out) -> W (fan_in, fan_out), as the jax convention draws each
NUMPY_INITS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "normal(stddev=1.0)": lambda rng, i, o: rng.standard_normal((i, o), dtype=_F32),
    "normal(stddev=0.01)": lambda rng, i, o: rng.standard_normal((i, o), dtype=_F32) * _F32(0.01),
    "glorot_normal": lambda rng, i, o: _np_truncated(rng, (i, o)) * _F32(math.sqrt(2 / (i + o)) / _TRUNC_STD),
    "he_normal": lambda rng, i, o: _np_truncated(rng, (i, o)) * _F32(math.sqrt(2 / i) / _TRUNC_STD),
    "glorot_uniform": lambda rng, i, o: _np_uniform(rng, (i, o), math.sqrt(6 / (i + o))),
    "he_uniform": lambda rng, i, o: _np_uniform(rng, (i, o), math.sqrt(6 / i)),
    "lecun_normal": lambda rng, i, o: _np_truncated(rng, (i, o)) * _F32(math.sqrt(1 / i) / _TRUNC_STD),
    "orthogonal": lambda rng, i, o: _np_orthogonal(rng, (i, o)),
    "truncated_normal(stddev=0.05)": lambda rng, i, o: _np_truncated(rng, (i, o)) * _F32(0.05),
    "uniform(low=-0.05, high=0.05)": lambda rng, i, o: _np_uniform(rng, (i, o), 0.05),
}  # fmt: skip


def _np_sigmoid(z):
    with np.errstate(over="ignore"):  # e^{-z} = inf for z < -88 gives 0, as it should
        return 1 / (1 + np.exp(-z))


_GELU_C, _GELU_K = math.sqrt(2 / math.pi), 0.044715
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _np_gelu(z):
    t = np.tanh(_GELU_C * (z + _GELU_K * z**3))
    return 0.5 * z * (1 + t), 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * _GELU_C * (1 + 3 * _GELU_K * z * z)  # fmt: skip


def _np_elu(z, alpha=1.0, scale=1.0):
    a = scale * np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0)))
    return a, np.where(z > 0, scale, a + scale * alpha)


def _np_silu(z):
    s = _np_sigmoid(z)
    return z * s, s * (1 + z * (1 - s))


# z -> (a, dφ/dz)
NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "sigmoid": lambda z: (s := _np_sigmoid(z), s * (1 - s)),
    "tanh": lambda z: (t := np.tanh(z), 1 - t * t),
    "relu": lambda z: (np.maximum(z, 0), (z > 0).astype(_F32)),
    "leaky_relu": lambda z: (np.where(z >= 0, z, 0.01 * z), np.where(z >= 0, _F32(1), _F32(0.01))),
    "elu": _np_elu,
    "selu": lambda z: _np_elu(z, _SELU_ALPHA, _SELU_SCALE),
    "gelu": _np_gelu,
    "silu": _np_silu,
}


def numpy_combination(cfg: Config, init: str, activation: str, seed: int) -> dict[str, np.ndarray]:
    """Every statistic of one network, in NumPy, one layer at a time: fields ``(layer,)``, hist ``(layer, bin)``."""
    rng = np.random.default_rng(seed)
    draw_w, act = NUMPY_INITS[init], NUMPY_ACTIVATIONS[activation]
    sat_lo, sat_hi = saturation(activation)
    h = rng.standard_normal((cfg.batch, cfg.d_in), dtype=_F32)
    hs, ws, dphis, rows = [h], [], [], []
    for _ in range(cfg.depth):
        w = draw_w(rng, h.shape[1], cfg.width)
        z = h @ w
        h, dphi = act(z)
        saturated = 0.0
        if sat_lo is not None or sat_hi is not None:
            lo = -np.inf if sat_lo is None else sat_lo
            hi = np.inf if sat_hi is None else sat_hi
            saturated = ((h < lo) | (h > hi)).mean()
        rows.append({
            "pre_mean": z.mean(), "pre_var": z.var(), "post_mean": h.mean(), "post_var": h.var(),
            "saturated": saturated, "dead": (h == 0).mean(),
            "nonfinite": (~np.isfinite(z)).sum() + (~np.isfinite(h)).sum(),
            "hist": np.histogram(h, bins=cfg.bins, range=hist_range(activation))[0],
        })  # fmt: skip
        hs.append(h)
        ws.append(w)
        dphis.append(dphi)
    g = rng.standard_normal((cfg.batch, cfg.width), dtype=_F32)  # ∂L/∂h of the last layer
    for l in reversed(range(cfg.depth)):
        dz = g * dphis[l]
        rows[l]["grad_var"] = dz.var()
        rows[l]["weight_grad_norm"] = np.linalg.norm(hs[l].T @ dz)
        if l:
            g = dz @ ws[l].T
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


# -- the PyTorch peer ---------------------------------------------------------------


def _torch_peer(torch):
    """``(cfg, init, activation, seed) -> stats`` in torch, and its initializers."""
    nn, F = torch.nn, torch.nn.functional
    inits = {  # torch's own nn.init, its conventions (glorot/he/lecun normals untruncated)
        "normal(stddev=1.0)": lambda w, g: nn.init.normal_(w, std=1.0, generator=g),
        "normal(stddev=0.01)": lambda w, g: nn.init.normal_(w, std=0.01, generator=g),
        "glorot_normal": lambda w, g: nn.init.xavier_normal_(w, generator=g),
        "he_normal": lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g),
        "glorot_uniform": lambda w, g: nn.init.xavier_uniform_(w, generator=g),
        "he_uniform": lambda w, g: nn.init.kaiming_uniform_(w, nonlinearity="relu", generator=g),
        "lecun_normal": lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="linear", generator=g),
        "orthogonal": lambda w, g: nn.init.orthogonal_(w, generator=g),
        "truncated_normal(stddev=0.05)": lambda w, g: nn.init.trunc_normal_(w, std=0.05, a=-0.1, b=0.1, generator=g),
        "uniform(low=-0.05, high=0.05)": lambda w, g: nn.init.uniform_(w, -0.05, 0.05, generator=g),
    }  # fmt: skip
    acts = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": F.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
        "elu": F.elu,
        "selu": F.selu,
        "gelu": lambda z: F.gelu(z, approximate="tanh"),
        "silu": F.silu,
    }

    def run(cfg: Config, init: str, activation: str, seed: int) -> dict[str, np.ndarray]:
        gen = torch.Generator().manual_seed(seed)
        act = acts[activation]
        sat_lo, sat_hi = saturation(activation)
        lo, hi = hist_range(activation)
        h = torch.randn(cfg.batch, cfg.d_in, generator=gen)
        hs, ws, zs, rows = [h], [], [], []
        for _ in range(cfg.depth):
            w = torch.empty(cfg.width, h.shape[1])  # torch layout (out, in)
            with torch.no_grad():
                inits[init](w, gen)
            w.requires_grad_(True)
            z = F.linear(h, w)
            h = act(z)
            with torch.no_grad():
                saturated = torch.zeros(())
                if sat_lo is not None:
                    saturated = saturated + (h < sat_lo).float().mean()
                if sat_hi is not None:
                    saturated = saturated + (h > sat_hi).float().mean()
                rows.append({
                    "pre_mean": z.mean(), "pre_var": z.var(unbiased=False), "post_mean": h.mean(),
                    "post_var": h.var(unbiased=False), "saturated": saturated,
                    "dead": (h == 0).float().mean(),
                    "nonfinite": (~torch.isfinite(z)).sum() + (~torch.isfinite(h)).sum(),
                    "hist": torch.histc(h, bins=cfg.bins, min=lo, max=hi),
                })  # fmt: skip
            hs.append(h)
            ws.append(w)
            zs.append(z)
        cot = torch.randn(cfg.batch, cfg.width, generator=gen)
        grads = torch.autograd.grad(h, zs + ws, grad_outputs=cot)
        for l in range(cfg.depth):
            rows[l]["grad_var"] = grads[l].var(unbiased=False)
            rows[l]["weight_grad_norm"] = torch.linalg.norm(grads[cfg.depth + l])
        return {k: np.array([float(r[k]) for r in rows]) for k in rows[0] if k != "hist"} | {
            "hist": np.stack([r["hist"].numpy() for r in rows])
        }

    return run


# -- the naive JAX peer -------------------------------------------------------------


def naive_jax_function(cfg: Config, init: str, activation: str, counter: list[int]):
    """A jitted ``key -> stats`` for one (init, activation), written as a user would."""
    w_init, act = ji.initializers.get(init), ji.activations.get(activation)
    sat_lo, sat_hi = saturation(activation)
    lo, hi = hist_range(activation)

    def run(key):
        counter[0] += 1  # runs once per trace, i.e. per compile
        kx, kw, kc = jax.random.split(key, 3)
        x = jax.random.normal(kx, (cfg.batch, cfg.d_in))
        fans = [cfg.d_in] + [cfg.width] * (cfg.depth - 1)
        ws = [w_init(k, (n, cfg.width)) for k, n in zip(jax.random.split(kw, cfg.depth), fans, strict=True)]  # fmt: skip

        def forward(ws, probes):  # probes: zeros whose gradients are ∂L/∂z
            h, zs, hs = x, [], []
            for w, p in zip(ws, probes, strict=True):
                z = h @ w + p
                h = act(z)
                zs.append(z)
                hs.append(h)
            return h, (zs, hs)

        probes = [jnp.zeros((cfg.batch, cfg.width))] * cfg.depth
        _, vjp, (zs, hs) = jax.vjp(forward, ws, probes, has_aux=True)
        d_ws, d_zs = vjp(jax.random.normal(kc, (cfg.batch, cfg.width)))
        rows = []
        for z, h, dz, dw in zip(zs, hs, d_zs, d_ws, strict=True):
            sat = jnp.zeros(h.shape, bool)
            sat = sat if sat_lo is None else sat | (h < sat_lo)
            sat = sat if sat_hi is None else sat | (h > sat_hi)
            rows.append({
                "pre_mean": z.mean(), "pre_var": z.var(), "post_mean": h.mean(),
                "post_var": h.var(), "saturated": sat.mean(),
                "dead": (h == 0).mean(),
                "nonfinite": (~jnp.isfinite(z)).sum() + (~jnp.isfinite(h)).sum(),
                "hist": jnp.histogram(h, bins=cfg.bins, range=(lo, hi))[0],
                "grad_var": dz.var(), "weight_grad_norm": jnp.linalg.norm(dw),
            })  # fmt: skip
        return {k: jnp.stack([r[k] for r in rows]) for k in rows[0]}

    return jax.jit(run)


# -- measurements -------------------------------------------------------------------

_COMPILES = {"n": 0, "s": 0.0}


def _on_event(event: str, secs: float, **kwargs) -> None:
    del kwargs
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES["n"] += 1
        _COMPILES["s"] += secs


jax.monitoring.register_event_duration_secs_listener(_on_event)


@contextlib.contextmanager
def _no_persistent_cache():
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
    a = np.random.default_rng(0).standard_normal((n, n), dtype=_F32)
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
    run = _torch_peer(torch)
    combos = sample(cfg)
    for act in cfg.activations:
        run(cfg, cfg.inits[0], act, 0)
    best = math.inf
    for _ in range(2):
        t = time.perf_counter()
        for combo in combos:
            run(cfg, *combo)
        best = min(best, time.perf_counter() - t)
    return {"combos_per_s": len(combos) / best, "seconds": best, "combos": len(combos),
            "sampled": True, "version": torch.__version__,
            "threads": torch.get_num_threads()}  # fmt: skip


def time_naive_jax(cfg: Config) -> dict:
    """One jit per (init, activation), first calls (compile) and then warm calls."""
    combos = sample(cfg)
    traces = [0]
    compiles_before, compile_s_before = _COMPILES["n"], _COMPILES["s"]
    fns, keys = {}, {}
    t = time.perf_counter()
    with _no_persistent_cache():
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
    return {"combos_per_s": warm, "seconds": best, "combos": len(combos), "sampled": True,
            "jit_functions": len(fns), "traces": traces[0],
            "backend_compiles": _COMPILES["n"] - compiles_before,
            "compile_s": _COMPILES["s"] - compile_s_before,
            "first_pass_s": first_pass,  # the sample's first calls, compiles included
            "full_grid_estimate_s": first_pass + (len(cfg) - len(combos)) / warm}  # fmt: skip


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
    return {"combos_per_s": rate, "seconds": best, "combos": len(cfg), "repeats": repeats,
            "sampled": False, "in_process_first_call_s": cold, "gflops": rate * cfg.flops / 1e9,
            "flops_per_combo": cfg.flops}  # fmt: skip


# -- fresh processes ----------------------------------------------------------------


def _kernel_programs() -> int | None:
    try:
        from jaxinit import kernel

        return kernel.programs()
    except AttributeError:  # the kernel's layout changed
        return None


def _child_first_call(cfg: Config) -> dict:
    t = time.perf_counter()
    ji.sweep(cfg.grid())
    return {"first_call_s": time.perf_counter() - t, "kernel_programs": _kernel_programs(),
            "backend_compiles": _COMPILES["n"], "compile_s": _COMPILES["s"]}  # fmt: skip


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
    proc = subprocess.run([sys.executable, __file__, "--child", arg], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"benchmark child {kind} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]) | {"process_s": wall}


def _child(arg: str) -> None:
    spec = json.loads(arg)
    cfgs = [Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in c.items()})
            for c in spec["configs"]]  # fmt: skip
    out = _child_first_call(*cfgs) if spec["kind"] == "first_call" else _child_large(*cfgs)
    print(json.dumps(out))


# -- the report ---------------------------------------------------------------------


def _peers_module(name: str):
    """A module of ``../shared/peers`` (the reference programs), or None where absent."""
    if not (PEERS / f"{name}.py").exists():
        return None
    if str(PEERS) not in sys.path:
        sys.path.insert(0, str(PEERS))
    import importlib

    return importlib.import_module(name)


def time_seed_numpy(seeds: int) -> dict:
    """``../shared/peers/peer_numpy_loop.py``: the classic blog loop, forward statistics."""
    mod = _peers_module("peer_numpy_loop")
    if mod is None:
        return {"skipped": "no ../shared/peers"}
    mod.run_grid(1, np.float32)  # warm-up
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
    mod = _peers_module("peer_torch_loop")
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
    cmd = [sys.executable, "probe_jax_vmap.py", "--devices", str(os.cpu_count() or 1),
           "--seeds", str(seeds), "--hist", "cvmap_scatter", "--chunks", "all,8",
           "--shapes", "1000x100", "--reps", "3"]  # fmt: skip
    env = {**os.environ, "PEERS_NO_WAIT": "1"}
    env.pop("JAX_NUM_CPU_DEVICES", None)
    proc = subprocess.run(cmd, cwd=PEERS, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        return {"skipped": f"probe failed: {proc.stderr[-300:]}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    best = out["best"]
    return {"combos_per_s": best["combos_per_s"], "combos": best["S"] * 80, "sampled": False,
            "config": f"{out['devices']} devices, {best['S']} seeds, {best['chunk_seeds']} per block, hist {best['hist']}"}  # fmt: skip


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
        lines.append(f"{label:44s} {p['combos_per_s']:9.1f} {_fmt_ratio(r):>10s} {target:>16s}  {how}")  # fmt: skip

    fwd, full = fig["jaxinit_forward"], fig["jaxinit_default"]
    lines.append("forward statistics (gradients=False):")
    row("  jaxinit ji.sweep, gradients=False", fwd, None, "", 0)
    row("  NumPy loop (peers/peer_numpy_loop.py)", fig["seed_numpy"], 1, _target(t["fwd_numpy_ratio"]), fwd["combos_per_s"])  # fmt: skip
    row("  PyTorch loop (peers/peer_torch_loop.py)", fig["seed_torch"], 1, _target(t["fwd_torch_ratio"]), fwd["combos_per_s"])  # fmt: skip
    row("  prototype (peers/probe_jax_vmap.py)", fig["probe"], 1, _target(t["fwd_probe_ratio"]), fwd["combos_per_s"])  # fmt: skip
    lines.append("full statistics (default: forward + backward):")
    row("  jaxinit ji.sweep", full, None, "", 0)
    row("  full-statistics NumPy loop", fig["numpy"], 1, _target(t["full_numpy_ratio"]), full["combos_per_s"])  # fmt: skip
    row("  full-statistics PyTorch loop", fig["torch"], 1, "", full["combos_per_s"])
    row("  naive JAX (jit per init × act), warm", fig["naive_jax"], 1, _target(t["full_naive_ratio"]), full["combos_per_s"])  # fmt: skip
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
    ]  # fmt: skip
    for key, label in (("forward_mm", "gradients=False"), ("default_mm", "default")):
        mm = fig[key]
        lines.append(f"{'matmul GFLOP/s, width 100, ' + label:60s} {mm['gflops']:8.1f} ({mm['fraction']:5.1%} of peak)")  # fmt: skip
    w = fig["wide"]
    lines.append(f"{'matmul GFLOP/s, width 256, batch 1024, ' + ('default' if w['gradients'] else 'gradients=False'):60s} {w['gflops']:8.1f} ({w['fraction']:5.1%} of peak)  {_target(t['wide_fraction_of_peak'], '')}")  # fmt: skip
    w = fig["wide_default"]
    lines.append(f"{'matmul GFLOP/s, width 256, batch 1024, default':60s} {w['gflops']:8.1f} ({w['fraction']:5.1%} of peak)")  # fmt: skip
    if fig.get("large"):
        lg = fig["large"]
        lines += [
            f"{'large run: ' + lg['config']:60s}",
            f"{'  ' + format(lg['combos'], ',') + ' combos, warm, s':60s} {lg['large_s']:14.1f}  ({lg['combos_per_s']:.0f} combos/s)",
            f"{'  ' + format(lg['tenth_combos'], ',') + ' combos, warm, s':60s} {lg['tenth_s']:14.1f}  (time ratio {lg['linearity']:.2f}; linear: {lg['combos'] / lg['tenth_combos']:.0f})",
            f"{'  peak RSS of that process, GB':60s} {lg['max_rss_bytes'] / 1e9:14.2f}  <{t['large_rss_gb'][0]:g} GB",
        ]  # fmt: skip
    return "\n".join(lines)


def _timed_jaxinit(cfg: Config, repeats: int) -> tuple[dict, dict]:
    with CpuWatch() as mon:
        out = time_jaxinit(cfg, repeats=repeats)
    return out, mon.result


class CpuWatch:
    """``common.CpuMonitor`` of ``../shared/peers`` (CPU of other processes), or nothing."""

    def __enter__(self):
        mod = _peers_module("common")
        self._mon = None if mod is None else mod.CpuMonitor().__enter__()
        return self

    def __exit__(self, *exc):
        self.result = {}
        if self._mon is not None:
            self._mon.__exit__(*exc)
            self.result = self._mon.result
        return False


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
        "machine": {"cpus": os.cpu_count(), "devices": len(jax.devices()),
                    "platform": platform.platform(), "load_average_at_start": os.getloadavg(),
                    "jax": jax.__version__, "backend": jax.default_backend(),
                    "numpy": np.__version__, "python": platform.python_version()},
        "targets": TARGETS,
    }  # fmt: skip
    say(f"benchmark: {std.describe()}; {len(jax.devices())} jax devices")
    sizes = (512,) if args.quick else (1024, 2048)
    peaks = [matmul_peak(n) for n in sizes]
    e2e_cfg = fwd if args.quick else dataclasses.replace(fwd, seeds=4)
    with tempfile.TemporaryDirectory(prefix="jaxinit-bench-cache-") as cache:
        say("jaxinit: first call in a fresh process (empty compilation cache) ...")
        fig["first_call"] = _run_child("first_call", [fwd], cache)
        say("jaxinit: first call in a fresh process (warm disk cache) ...")
        fig["first_call_cached"] = _run_child("first_call", [fwd], cache)
    with tempfile.TemporaryDirectory(prefix="jaxinit-bench-cache-") as cache:
        say(f"jaxinit: fresh process on {len(e2e_cfg)} combos (empty cache) ...")
        e2e = _run_child("first_call", [e2e_cfg], cache)
        say(f"jaxinit: fresh process on {len(e2e_cfg)} combos (warm disk cache) ...")
        e2e_cached = _run_child("first_call", [e2e_cfg], cache)
    say("jaxinit: warm, gradients=False ...")
    fig["jaxinit_forward"], fig["cpu_monitor"] = _timed_jaxinit(fwd, repeats=2)
    say("jaxinit: warm, default ...")
    fig["jaxinit_default"], _ = _timed_jaxinit(std, repeats=2)
    n_seeds = 1 if args.quick else 4
    say("peers: seed-style NumPy loop ...")
    fig["seed_numpy"] = time_seed_numpy(n_seeds)
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
    fig["end_to_end"] = {"combos": len(e2e_cfg), "process_s": e2e["process_s"],
                         "numpy_s": numpy_320, "numpy_ratio": numpy_320 / e2e["process_s"],
                         "cached_process_s": e2e_cached["process_s"],
                         "cached_numpy_ratio": numpy_320 / e2e_cached["process_s"]}  # fmt: skip
    # The peak again, after the timed runs: one measurement can land on a slow moment (a
    # run of this benchmark once measured 87 GFLOP/s at its start, 155 a minute later),
    # and a low peak would inflate every fraction below. The best of both is the peak.
    peaks += [matmul_peak(n) for n in sizes]
    fig["peak"] = {k: max(p[k] for p in peaks) for k in ("jax_gflops", "numpy_gflops", "gflops")}
    fig["peak"]["each_gflops"] = [round(p["gflops"], 1) for p in peaks]
    for key, cfg, res in (("forward_mm", fwd, fig["jaxinit_forward"]),
                          ("default_mm", std, fig["jaxinit_default"])):  # fmt: skip
        g = res["combos_per_s"] * cfg.flops / 1e9
        fig[key] = {"gflops": g, "fraction": g / fig["peak"]["gflops"]}
    wide_cfg = dataclasses.replace(cfgs["wide"], batch=64 if args.quick else 1024, gradients=False)
    say(f"jaxinit: wide ({wide_cfg.describe()}) ...")
    wide = time_jaxinit(wide_cfg, repeats=2)
    fig["wide"] = {"gflops": wide["gflops"], "fraction": wide["gflops"] / fig["peak"]["gflops"],
                   "gradients": False, "combos_per_s": wide["combos_per_s"]}  # fmt: skip
    wide_default = time_jaxinit(dataclasses.replace(wide_cfg, gradients=True), repeats=2)
    fig["wide_default"] = {"gflops": wide_default["gflops"], "gradients": True,
                           "fraction": wide_default["gflops"] / fig["peak"]["gflops"],
                           "combos_per_s": wide_default["combos_per_s"]}  # fmt: skip
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
    fig["machine"]["load_average_at_end"] = os.getloadavg()
    text = report(fig)
    print(text)
    fig["table"] = text
    if args.json:
        args.json.write_text(json.dumps(fig, indent=2, default=float))
    return fig


if __name__ == "__main__":
    main()
