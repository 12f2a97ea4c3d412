"""The seed experiment: per-layer activation histograms under four initializations.

std 1, std 0.01, Xavier/Glorot and He weights, under sigmoid, tanh and ReLU;
5 layers of 100 units; 1000 Gaussian inputs. One compiled sweep replaces the
twelve Python loops of the original posts.

    python -m sweeps.seed_histograms --out out/seed_histograms [--seeds 4] [--quick]

Writes ``histograms.png`` (layers × configurations), ``summary.json`` (per-layer
variance, saturated and dead fractions, averaged over seeds) and ``result/``
(the full SweepResult), and prints a per-layer table.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
from matplotlib.figure import Figure

import jaxinit as ji

INITS = ["normal(stddev=1.0)", "normal(stddev=0.01)", "glorot_normal", "he_normal"]
ACTIVATIONS = ["sigmoid", "tanh", "relu"]


def make_grid(*, quick: bool, seeds: int) -> ji.Grid:
    width, batch = (16, 64) if quick else (100, 1000)
    return ji.Grid(inits=INITS, activations=ACTIVATIONS, depth=5, width=width, seeds=seeds,
                   batch=batch, inputs="gaussian", bins=30)  # fmt: skip


def plot(res: ji.SweepResult, path: pathlib.Path) -> None:
    inits, acts = res.coords["init"], res.coords["activation"]
    n_layers = res.post_var.shape[-1]
    rows = [(i, a) for a in acts for i in inits]
    fig = Figure(figsize=(2.0 * n_layers, 1.3 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), n_layers, sharey="row", squeeze=False)
    for r, (init, act) in enumerate(rows):
        edges = np.asarray(res.attrs["hist_edges"][act])
        counts = res.sel(init=init, activation=act).hist.sum(0)  # summed over seeds
        for layer in range(n_layers):
            ax = axes[r, layer]
            total = max(counts[layer].sum(), 1)
            ax.stairs(counts[layer] / total, edges, fill=True, color="#0072B2")
            ax.tick_params(labelsize=6)
            if r == 0:
                ax.set_title(f"layer {layer + 1}", fontsize=8)
            if layer == 0:
                ax.set_ylabel(f"{act}\n{init}", fontsize=6)
    fig.supxlabel("post-activation value", fontsize=8)
    fig.supylabel("fraction of units", fontsize=8)
    fig.savefig(path, dpi=110)


def summarize(res: ji.SweepResult) -> dict:
    out = {}
    for init in res.coords["init"]:
        for act in res.coords["activation"]:
            s = res.sel(init=init, activation=act)
            out[f"{init} | {act}"] = {
                "post_var": s.post_var.mean(0).tolist(),
                "post_mean": s.post_mean.mean(0).tolist(),
                "saturated": s.saturated.mean(0).tolist(),
                "dead": s.dead.mean(0).tolist(),
                "grad_var": s.grad_var.mean(0).tolist(),
            }
    return out


def table(summary: dict) -> str:
    lines = [f"{'init | activation':38s} {'layer':>5s} {'post_mean':>10s} {'post_var':>10s} "
             f"{'saturated':>9s} {'dead':>6s}"]  # fmt: skip
    for label, s in summary.items():
        for layer, (m, v, sat, dead) in enumerate(
            zip(s["post_mean"], s["post_var"], s["saturated"], s["dead"], strict=True)
        ):
            lines.append(f"{label:38s} {layer + 1:5d} {m:10.4g} {v:10.4g} {sat:9.1%} {dead:6.1%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, required=True, help="output directory")
    parser.add_argument("--seeds", type=int, default=4, help="networks per configuration")
    parser.add_argument("--quick", action="store_true", help="tiny widths, for smoke tests")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be a positive integer; got {args.seeds}")
    args.out.mkdir(parents=True, exist_ok=True)
    res = ji.sweep(make_grid(quick=args.quick, seeds=args.seeds))
    res.save(args.out / "result")
    plot(res, args.out / "histograms.png")
    summary = summarize(res)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(table(summary))
    print(f"\nwrote {args.out}/histograms.png, summary.json and result/")
    return summary


if __name__ == "__main__":
    main()
