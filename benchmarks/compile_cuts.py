r"""Compile seconds of a sweep and of ``theory.depth_scales``, beside a peer compiled in the same run.

    python benchmarks/compile_cuts.py [--widths 16 17 18 19] [--quick]

Every compile is fresh (jax's persistent cache off). Measured:

- **sweep**: the backend-compile seconds (``jax.monitoring``) of ``ji.sweep`` of
  ``Grid(he_normal and glorot_uniform × tanh and relu, depth 3, batch 16, 2 seeds)`` at each
  width, its draw and forward programs, with gradients (the default) and without;
- **depth_scales**: the compile seconds of ``theory.depth_scales`` on a 37 × 5 grid of
  (σ_w², σ_b²) and at one point, per activation;
- **peer**: ``../shared/peers/peer_jax_naive.py``'s ``run_combo`` (one jitted (init,
  activation) of the standard grid, written as a user would), lowered and compiled for
  ``he_normal`` with tanh and with relu: the yardstick, so that figures from runs made at
  different moments (or of different versions, as ``PYTHONPATH=<checkout>`` runs an older
  jaxinit) compare as ratios to it.

Prints the load average before and after, the CPU other processes used meanwhile and one
JSON line. Run it alone; the README's "The test suite's time" has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

if __name__ == "__main__":  # fresh compiles: jaxinit turns jax's persistent cache on at
    # import unless told not to. Only as a script: imported (as the smoke test does), it must
    # not change the process's environment, which later subprocesses inherit
    os.environ.setdefault("JAXINIT_COMPILATION_CACHE", "0")

import jax
import numpy as np

import jaxinit as ji
from jaxinit import theory

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # the modules beside this file

from _measure import COMPILES, alone, no_persistent_cache, peers_module

THEORY_ACTIVATIONS = ("tanh", "relu", "erf", "selu", "gelu", "sigmoid", "softplus", "elu")


def _compiled(fn) -> float:
    """The backend-compile seconds that ``fn()`` spends."""
    before = COMPILES["s"]
    jax.block_until_ready(fn())
    return COMPILES["s"] - before


def sweep_seconds(width: int, gradients: bool) -> float:
    grid = ji.Grid(
        inits=["he_normal", "glorot_uniform"],
        activations=["tanh", "relu"],
        depth=3,
        width=width,
        seeds=2,
        batch_size=16,
        gradients=gradients,
    )
    return _compiled(lambda: ji.sweep(grid, progress=False).pre_var)


def depth_scales_seconds(activation: str) -> dict[str, float]:
    w = np.linspace(0.5, 4.0, 37, dtype=np.float32)[:, None]
    b = np.array([0.0, 0.01, 0.05, 0.3, 1.0], np.float32)[None, :]
    return {
        "grid": _compiled(lambda: theory.depth_scales(activation, sigma_w2=w, sigma_b2=b).chi1),
        "point": _compiled(
            lambda: theory.depth_scales(activation, sigma_w2=1.5, sigma_b2=0.05).chi1
        ),
    }


def peer_seconds() -> float | None:
    """``run_combo`` of ``peer_jax_naive.py``, compiled for (he_normal, tanh) and (he_normal,
    relu); None without ``../shared/peers``."""
    mod = peers_module("peer_jax_naive")
    if mod is None:
        return None
    key = jax.random.PRNGKey(0)
    jax.clear_caches()  # a fresh compile, also the second time
    t = time.perf_counter()
    for act in ("tanh", "relu"):
        mod.run_combo.lower(key, init="he_normal", act=act).compile()
    return time.perf_counter() - t


def measure(widths: list[int], activations: tuple[str, ...]) -> dict:
    with no_persistent_cache():
        peer = peer_seconds()
        sweep = {
            name: [round(sweep_seconds(w, g), 3) for w in widths]
            for name, g in (("with gradients", True), ("without", False))
        }
        scales = {a: depth_scales_seconds(a) for a in activations}
        peer_after = peer_seconds()
    out = {
        "jaxinit": ji.__file__,
        "peer_s": None if peer is None else [round(peer, 3), round(peer_after, 3)],
        "sweep_s": sweep,
        "depth_scales_s": {a: {k: round(v, 3) for k, v in s.items()} for a, s in scales.items()},
        "depth_scales_total_s": round(sum(sum(s.values()) for s in scales.values()), 3),
    }
    if peer is not None:
        ref = min(peer, peer_after)
        out["ratio_to_peer"] = {
            **{f"sweep {k}": round(float(np.mean(v)) / ref, 3) for k, v in sweep.items()},
            "depth_scales total": round(out["depth_scales_total_s"] / ref, 3),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", type=int, nargs="+", default=[16, 17, 18, 19])
    p.add_argument("--quick", action="store_true", help="one width, tanh only (a smoke test)")
    args = p.parse_args(argv)
    if min(args.widths) < 1:
        p.error(f"--widths must be positive; got {args.widths}")
    widths = args.widths[:1] if args.quick else args.widths
    activations = THEORY_ACTIVATIONS[:1] if args.quick else THEORY_ACTIVATIONS
    out = alone(lambda: measure(widths, activations), peak_n=256)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
