r"""Any Flax NNX model: ``ji.sweep(ji.ModelGrid(...))`` against its peers, in one run.

The models are the prototype's (``../shared/peers/any_model/probe_any_model.py``),
built from jaxinit's zoo with the same sizes and layers: a CNN (4 convolutions
3×3×32, "SAME", ReLU, on 8×8×3 inputs, global pooling, a linear head of 10) and a
pre-LayerNorm Transformer encoder (a linear embedding of 32 features to d=64,
4 blocks of 4-head self-attention and an MLP 64→128→64 with tanh-GELU, a final
LayerNorm, 16 tokens), batch 256, 4 inits × 32 seeds = 128 models each. Every
peer builds each model from its seed, re-draws every kernel with
``W = gain · fan_in^-p · Z`` (Z a standard normal truncated to [-2, 2], divided by
its std; the four inits ``truncated_normal(stddev=1)``, ``lecun_normal``,
``truncated_normal(stddev=0.01)``, ``he_normal`` are one family, so jaxinit draws
once per seed), runs the batch through it with dropout off and records
statistics of every captured output: each Linear/Conv/LayerNorm/attention module,
each user block and the model itself (6 outputs for the CNN, 43 for the
Transformer), histograms over [-4, 4] in 30 bins with below/above counts.

- **(a) jaxinit**: ``ji.sweep(ModelGrid(..., gradients=False))``, one compiled
  program over the grid (``lax.map`` over seeds, ``lanes`` at a time), on the
  lanes jaxinit picks by itself (1 on a CPU); also with ``lanes=4`` (vmapped
  blocks of 4 models) as a layout comparison.
- **(b) per-seed jit loop**: the prototype's ``make_one`` (approach B: build, then
  re-draw every kernel from the graph; Flax's ``nnx.capture``), one ``jax.jit``
  per model, called once per (init, seed), on the same zoo factory.
- **(c) PyTorch hook loop** (when torch is importable; not with ``--quick``): the
  prototype's ``torch_loop``, the same architecture in ``torch.nn`` (attention as
  four ``Linear`` and ``scaled_dot_product_attention``), forward hooks on the same
  outputs, under ``inference_mode``, best of 1 and 2 threads, with
  ``OMP_WAIT_POLICY=PASSIVE`` (set here before torch is imported).
- **MLP**: the zoo MLP (6 × 128 ReLU on 64 inputs) through the model path against
  the MLP engine (``ji.sweep(ji.Grid(...))``), same inits, seeds, inputs and
  bins, ``gradients=False`` in both.

What differs in the work: the peers' statistics are the prototype's (mean,
variance, 32 histogram counts, dead = the fraction of units ≤ 0 on every input);
jaxinit records its ``LayerStats`` schema: the same moments (filled into both
``pre_*`` and ``post_*``), dead as the fraction of entries exactly 0, a
saturated fraction (0: no thresholds), non-finite counts (a branch that runs
only when a sum is not finite), and it returns labelled host arrays. The MLP
engine records pre- and post-activation statistics of 6 layers; the model path
records 7 outputs (the 6 ``Linear`` outputs and the model's output).

Reported: seconds and ms per model (best of ``--rounds`` interleaved rounds),
jaxinit's speed against each row, compile seconds (first call minus the best
warm call; jaxinit's persistent compilation cache is off unless
``JAXINIT_COMPILATION_CACHE`` says otherwise), XLA compiles of the first and
warm calls and of a second sweep with other seeds and inits (must be 0), the
versions, the device, the load average and the CPU other processes used while
the rounds ran.

    python benchmarks/any_model.py [--quick] [--seeds 32] [--rounds 2] [--no-torch] [--json PATH]
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # not when loaded by a test: the environment is the test's
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch: no OpenMP spinning beside XLA
    # first calls compile for real: jaxinit's persistent cache stays off (set before its
    # import; jax cannot turn a cache off once a process has used it)
    os.environ.setdefault("JAXINIT_COMPILATION_CACHE", "0")

import argparse
import functools
import importlib
import math
import pathlib
import platform
import sys
import time
from collections.abc import Callable

import flax
import jax
import numpy as np

import jaxinit as ji

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _measure import COMPILES, CpuWatch, finish
from _standard import PEERS

PROBE_DIR = PEERS / "any_model"
TN = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]
# (jaxinit spec, gain, p): the same initializer as W = gain · fan_in^-p · Z, Z = truncnormal / TN
INITS = (
    ("truncated_normal(stddev=1.0)", TN, 0.0),
    ("lecun_normal", 1.0, 0.5),
    ("truncated_normal(stddev=0.01)", 0.01 * TN, 0.0),
    ("he_normal", math.sqrt(2.0), 0.5),
)
# the second sweep: other scales of the same family (the program must not change)
OTHER_INITS = (
    "truncated_normal(stddev=0.5)",
    "glorot_normal",
    "truncated_normal(stddev=0.02)",
    "truncated_normal(stddev=0.1)",
)
HIST_RANGE = (-4.0, 4.0)  # the prototype's
BINS = 30
LAYOUT_LANES = 4
TARGETS = {  # issue 27: jaxinit's speed over the peer's, must (aim)
    "jit loop": (1.0, 1.5),
    "torch cnn": (2.0, 4.0),
    "torch transformer": (4.0, 4.0),
    "mlp engine": (0.5, 0.5),  # the model path within 2× of the MLP engine
}


def models(quick: bool) -> dict[str, tuple[Callable, tuple[int, ...]]]:
    """name -> (factory, input shape); the prototype's sizes (smaller with ``quick``)."""
    batch, depth, mlp_depth = (4, 1, 2) if quick else (256, 4, 6)
    return {
        "cnn": (
            functools.partial(
                ji.models.CNN, in_channels=3, channels=32, depth=depth, kernel_size=3, classes=10
            ),
            (batch, 8, 8, 3),
        ),
        "transformer": (
            functools.partial(
                ji.models.Transformer,
                d_in=32,
                d_model=64,
                heads=4,
                depth=depth,
                mlp_ratio=2,
                activation="gelu",
            ),
            (batch, 16, 32),
        ),
        "mlp": (
            functools.partial(
                ji.models.MLP, d_in=64, width=128, depth=mlp_depth, activation="relu"
            ),
            (batch, 64),
        ),
    }


def probe_module():
    """The prototype (``../shared/peers/any_model/probe_any_model.py``), or None where absent."""
    if not (PROBE_DIR / "probe_any_model.py").exists():
        return None
    if str(PROBE_DIR) not in sys.path:
        sys.path.insert(0, str(PROBE_DIR))
    return importlib.import_module("probe_any_model")


def torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def same_parameters(probe, name: str, make: Callable) -> bool | None:
    """Whether the zoo model has the prototype class's parameter shapes (None: no prototype)."""
    if probe is None or name not in probe.MODELS:
        return None
    from flax import nnx

    def shapes(model):
        return sorted(v.shape for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))

    return shapes(make(nnx.Rngs(0))) == shapes(probe.MODELS[name][0](nnx.Rngs(0)))


def time_rounds(fns: dict[str, Callable], rounds: int) -> dict[str, dict]:
    """Round 0 calls each function once (its compile), then ``rounds`` interleaved rounds;
    per function: the first call's and the best warm call's seconds and XLA compiles."""
    out = {k: {"times": [], "compiles": []} for k in fns}
    for _ in range(rounds + 1):
        for k, f in fns.items():
            c0, s0, t = COMPILES["n"], COMPILES["s"], time.perf_counter()
            jax.block_until_ready(f())
            out[k]["times"].append(time.perf_counter() - t)
            out[k]["compiles"].append(COMPILES["n"] - c0)
            out[k].setdefault("xla_compile_s", COMPILES["s"] - s0)  # the first call's
    for v in out.values():
        v["seconds"] = min(v["times"][1:])
        v["first_s"] = v["times"][0]
        v["compile_s"] = v["first_s"] - v["seconds"]
        v["first_compiles"] = v["compiles"][0]
        v["warm_compiles"] = sum(v["compiles"][1:])
    return out


def model_grid(make, inits, seeds, x) -> ji.ModelGrid:
    return ji.ModelGrid(
        model=make,
        inits=list(inits),
        seeds=seeds,
        inputs=x,
        bins=BINS,
        hist_range=HIST_RANGE,
        gradients=False,
    )


def bench_model(name, make, x, args, probe, use_torch) -> dict:
    """One model: jaxinit (default lanes and ``LAYOUT_LANES``), the jit loop, torch."""
    n_inits, seeds = len(args.inits), args.seeds
    specs = [s for s, _, _ in args.inits]
    grid = model_grid(make, specs, seeds, x)
    lanes = ji.sweeping.default_lanes()
    fns = {
        f"jaxinit (lanes={lanes})": lambda: ji.sweep(
            grid, chunk_size=seeds, lanes=lanes, progress=False
        ),
    }
    if lanes != LAYOUT_LANES and not (args.quick and name == "transformer"):
        fns[f"jaxinit lanes={LAYOUT_LANES}"] = lambda: ji.sweep(
            grid, chunk_size=seeds, lanes=LAYOUT_LANES, progress=False
        )
    info = {"layers": None, "peer_layers": None, "torch_layers": None}
    gains = np.array([g for _, g, _ in args.inits], np.float32)
    ps = np.array([p for _, _, p in args.inits], np.float32)
    seed_arr = np.arange(seeds, dtype=np.int32)
    if probe is not None:
        one = probe.make_one(make)
        one_jit = jax.jit(one)
        xj = jax.numpy.asarray(x)
        fns["per-seed jit loop"] = lambda: probe.loop(one_jit, seed_arr, gains, ps, xj)
        info["peer_layers"] = len(jax.eval_shape(one, 0, 1.0, 0.0, xj))
    if use_torch and probe is not None and name in ("cnn", "transformer"):
        run = probe.torch_loop(
            name, x, seed_arr, list(zip(gains.tolist(), ps.tolist(), strict=True))
        )
        info["torch_layers"] = run(1)  # also a warm-up
        fns["torch hooks, 1 thread"] = lambda: run(1)
        fns["torch hooks, 2 threads"] = lambda: run(2)
    with CpuWatch() as cpu:
        rows = time_rounds(fns, args.rounds)
    res = ji.sweep(grid, chunk_size=seeds, progress=False)
    info["layers"] = len(res.attrs["layers"])
    # a second sweep with other seeds and other inits of the same family: nothing compiles
    other = model_grid(make, OTHER_INITS[:n_inits], range(seeds, 2 * seeds), x)
    c0, p0 = COMPILES["n"], ji.sweeping.programs()
    ji.sweep(other, chunk_size=seeds, lanes=lanes, progress=False)
    second = {"xla_compiles": COMPILES["n"] - c0, "new_programs": ji.sweeping.programs() - p0}
    if probe is not None:
        c0 = COMPILES["n"]
        probe.loop(one_jit, seed_arr + seeds, gains * 1.1, ps, jax.numpy.asarray(x))
        second["jit_loop_xla_compiles"] = COMPILES["n"] - c0
    return {
        "model": name,
        "models": n_inits * seeds,
        "input_shape": list(x.shape),
        "lanes": lanes,
        "rows": rows,
        "second_call": second,
        "other_cpu": cpu.result.get("foreign_cpu_frac"),
        "same_parameters_as_prototype": None if args.quick else same_parameters(probe, name, make),
        **info,
    }


def bench_mlp(make, x, args) -> dict:
    """The zoo MLP through the model path against the MLP engine, same work otherwise."""
    specs = [s for s, _, _ in args.inits]
    lanes = ji.sweeping.default_lanes()
    mgrid = model_grid(make, specs, args.seeds, x)
    egrid = ji.Grid(
        inits=specs,
        activations=["relu"],
        depth=make.keywords["depth"],
        width=make.keywords["width"],
        seeds=args.seeds,
        inputs=x,
        bins=BINS,
        hist_range=HIST_RANGE,
        gradients=False,
    )
    fns = {
        f"jaxinit model path (lanes={lanes})": lambda: ji.sweep(
            mgrid, chunk_size=args.seeds, lanes=lanes, progress=False
        ),
        "jaxinit MLP engine (ji.Grid)": lambda: ji.sweep(egrid, progress=False),
    }
    with CpuWatch() as cpu:
        rows = time_rounds(fns, args.rounds)
    return {
        "model": "mlp",
        "models": len(specs) * args.seeds,
        "input_shape": list(x.shape),
        "lanes": lanes,
        "rows": rows,
        "other_cpu": cpu.result.get("foreign_cpu_frac"),
    }


def _target(key: str) -> str:
    if key not in TARGETS:
        return ""
    must, aim = TARGETS[key]
    return f"≥{must:g}×" + ("" if aim == must else f" (aim {aim:g}×)")


def report(fig: dict) -> str:
    m = fig["machine"]
    lines = [
        f"any model: {fig['grid']}",
        f"machine: {m['cpus']} CPUs, {m['devices']}; jax {m['jax']}, flax {m['flax']}, "
        f"numpy {m['numpy']}, torch {m['torch'] or 'not installed'}; OMP_WAIT_POLICY="
        f"{m['omp_wait_policy']}; XLA_FLAGS={m['xla_flags'] or '(none)'}; persistent compilation "
        f"cache {m['persistent_cache'] or 'off'}; load average "
        f"{m['load_average_at_start'][0]:.2f} at start, {m['load_average_at_end'][0]:.2f} at end",
        "",
        "jaxinit × = this row's seconds / jaxinit's (how many times faster jaxinit is); compile s ="
        " first call minus the best warm call (in brackets: XLA's backend compile alone); XLA"
        " compiles: first / warm calls",
        "",
        "| model | program | s | ms/model | jaxinit × | target | compile s (XLA) | XLA compiles |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for b in fig["benchmarks"]:
        rows = b["rows"]
        ref_name = next(iter(rows))
        ref = rows[ref_name]["seconds"]
        torch_rows = [k for k in rows if k.startswith("torch")]
        for k, r in rows.items():
            if k == ref_name:
                target = ""
            elif k.startswith("torch"):
                target = _target(f"torch {b['model']}")
            elif k == "per-seed jit loop":
                target = _target("jit loop")
            elif "engine" in k:
                target = _target("mlp engine")
            else:
                target = ""
            comp = (
                "–" if k.startswith("torch") else f"{r['compile_s']:.2f} ({r['xla_compile_s']:.2f})"
            )
            comps = (
                "–" if k.startswith("torch") else f"{r['first_compiles']} / {r['warm_compiles']}"
            )
            lines.append(
                f"| {b['model']} | {k} | {r['seconds']:.3f} | {1e3 * r['seconds'] / b['models']:.2f}"
                f" | {r['seconds'] / ref:.2f}× | {target} | {comp} | {comps} |"
            )
        if torch_rows:
            best = min(rows[k]["seconds"] for k in torch_rows)
            lines.append(
                f"| {b['model']} | torch hooks, best of 1/2 threads | {best:.3f} | "
                f"{1e3 * best / b['models']:.2f} | {best / ref:.2f}× | "
                f"{_target('torch ' + b['model'])} | – | – |"
            )
    lines.append("")
    for b in fig["benchmarks"]:
        extra = []
        if b.get("layers") is not None:
            extra.append(
                f"layers captured: jaxinit {b['layers']}, jit loop {b.get('peer_layers')}, torch "
                f"{b.get('torch_layers') if b.get('torch_layers') is not None else '–'}"
            )
        if b.get("same_parameters_as_prototype") is not None:
            extra.append(
                f"zoo model = prototype's parameter shapes: {b['same_parameters_as_prototype']}"
            )
        if b.get("second_call"):
            s = b["second_call"]
            extra.append(
                f"second sweep (other seeds and inits): {s['xla_compiles']} XLA compiles, "
                f"{s['new_programs']} new model programs"
                + (
                    f"; jit loop {s['jit_loop_xla_compiles']} XLA compiles"
                    if "jit_loop_xla_compiles" in s
                    else ""
                )
            )
        extra.append(f"lanes (jaxinit's choice): {b['lanes']}")
        extra.append(f"other processes' CPU while timed: {b['other_cpu']} of the machine")
        lines.append(f"{b['model']}: " + "; ".join(extra))
    for note in fig["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tiny grid, for the smoke test")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per init (default 32; quick 2)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 2)")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    ap.add_argument(
        "--torch", action="store_true", help="with --quick: run the PyTorch peer too (depth 4)"
    )
    ap.add_argument(
        "--models",
        nargs="+",
        default=["cnn", "transformer", "mlp"],
        choices=["cnn", "transformer", "mlp"],
    )
    ap.add_argument("--json", type=pathlib.Path, default=None, help="write every figure here")
    args = ap.parse_args(argv)
    args.seeds = args.seeds or (2 if args.quick else 32)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.inits = INITS[:2] if args.quick else INITS
    start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {msg}", file=sys.stderr, flush=True)

    probe = probe_module()
    tv = None if args.no_torch or (args.quick and not args.torch) else torch_version()
    notes = []
    if probe is None:
        notes.append(f"no prototype at {PROBE_DIR}: the jit loop and torch peers are skipped")
    if args.quick:
        notes.append(
            "--quick: depth 1, batch 4 (the torch peer, with --torch, keeps depth 4); the figures "
            "only show that it runs"
        )
    elif tv is None and not args.no_torch:
        notes.append("torch is not importable here: the PyTorch peer is skipped")
    fig: dict = {
        "grid": f"{len(args.inits)} inits × {args.seeds} seeds = {len(args.inits) * args.seeds} "
        f"models per program; inits {[s for s, _, _ in args.inits]}; best of {args.rounds} "
        "interleaved rounds",
        "machine": {
            "cpus": os.cpu_count(),
            "devices": str(jax.devices()),
            "backend": jax.default_backend(),
            "platform": platform.platform(),
            "jax": jax.__version__,
            "flax": flax.__version__,
            "numpy": np.__version__,
            "torch": torch_version(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "persistent_cache": jax.config.jax_compilation_cache_dir or None,
            "load_average_at_start": os.getloadavg(),
        },
        "benchmarks": [],
        "notes": notes,
    }
    rng = np.random.default_rng(0)
    for name, (make, shape) in models(args.quick).items():
        if name not in args.models:
            continue
        x = rng.standard_normal(shape, dtype=np.float32)
        say(f"{name}: {len(args.inits)} inits × {args.seeds} seeds, input {shape} ...")
        if name == "mlp":
            fig["benchmarks"].append(bench_mlp(make, x, args))
        else:
            fig["benchmarks"].append(bench_model(name, make, x, args, probe, tv is not None))
    return finish(fig, report, args.json)


if __name__ == "__main__":
    main()
