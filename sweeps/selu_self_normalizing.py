"""Seed 004: SELU with LeCun-normal weights normalizes itself; ELU and ReLU with He do not.

SELU + lecun_normal, ELU + he_normal and ReLU + he_normal, 50 layers of 100
units on 1000 Gaussian inputs, with and without batch normalization before
the activation. Klambauer et al. (2017, https://arxiv.org/abs/1706.02515)
chose SELU's α and λ so that (mean 0, variance 1) is a stable fixed point of
the layer map when σ_w² = fan_in · Var(w) = 1: the post-activations stay at
mean ≈ 0 and variance ≈ 1 through depth with no normalization layer at all.

    python -m sweeps.selu_self_normalizing --out out/selu [--seeds 4] [--quick]

Writes ``summary.json`` (per pair and batch-norm setting: post-activation mean
and variance at layers 1, 10 and L, seed means), ``moments.png`` (mean and
variance by layer) and ``report.html``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import jaxinit as ji
from sweeps import _common

PAIRS = [("lecun_normal", "selu"), ("he_normal", "elu"), ("he_normal", "relu")]


def make_grid(*, quick: bool, seeds: int, batchnorm: bool) -> ji.Grid:
    depth, width, batch = (12, 32, 128) if quick else (50, 100, 1000)
    return ji.Grid(inits=sorted({i for i, _ in PAIRS}), activations=[a for _, a in PAIRS],
                   depth=depth, width=width, seeds=seeds, batch=batch, batchnorm=batchnorm,
                   gradients=False)  # fmt: skip


def plot(results: dict[bool, ji.SweepResult]) -> Figure:
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True, sharey="row")
    for col, (bn, res) in enumerate(results.items()):
        for k, (init, act) in enumerate(PAIRS):
            m = _common.per_layer(res, ("post_mean", "post_var"), init=init, activation=act)
            layers = np.arange(1, m["post_mean"].size + 1)
            style = dict(color=ji.report.PALETTE[k], label=f"{act} + {init}")
            axes[0, col].plot(layers, m["post_mean"], **style)
            axes[1, col].plot(layers, m["post_var"], **style)
        axes[0, col].set_title("with batch norm" if bn else "no batch norm", fontsize=9)
        axes[1, col].set_xlabel("layer")
        axes[1, col].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1, col].set_yscale("log")
    for ax in axes.flat:
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.grid(alpha=0.3)
    axes[1, 0].axhline(1.0, color="0.3", lw=0.8, ls=":")
    axes[0, 0].set_ylabel("post-activation mean")
    axes[1, 0].set_ylabel("post-activation variance (log)")
    axes[0, 0].legend(fontsize=7, frameon=False)
    return fig


def main(argv: list[str] | None = None) -> dict:
    args = _common.parse(_common.parser(__doc__, seeds=4), argv)
    results, summary, sections = {}, {}, []
    for bn in (False, True):
        grid = make_grid(quick=args.quick, seeds=args.seeds, batchnorm=bn)
        res, seconds = _common.run(grid, args.out, "sweep-batchnorm" if bn else "sweep")
        results[bn] = res
        tag = "batchnorm" if bn else "plain"
        for init, act in PAIRS:
            m = _common.per_layer(res, ("post_mean", "post_var"), init=init, activation=act)
            at = {1: 0, 10: 9, m["post_mean"].size: -1}
            summary[f"{act} + {init} | {tag}"] = {
                f"{f}_layer{layer}": float(v[i]) for f, v in m.items() for layer, i in at.items()
            }
        sections.append(ji.report.Section(
            title=f"{'With' if bn else 'Without'} batch norm ({len(grid)} networks, {seconds:.1f} s)",
            tables=[(f"{act} + {init}", ji.report.layer_table(
                res, fmt="html", init=init, activation=act)) for init, act in PAIRS],
        ))  # fmt: skip
    (png,) = ji.report.save(plot(results), args.out / "moments")
    sections.insert(0, ji.report.Section(title="Mean and variance through depth",
                                         figures=[("Seed means by layer.", png)]))  # fmt: skip
    summary = _common.write_summary(args.out, summary)
    ji.report.write_report(args.out, title="SELU self-normalizes", sections=sections,
                           attrs=results[False].attrs)  # fmt: skip
    for label, s in summary.items():
        last = max(int(k.rsplit("layer", 1)[1]) for k in s)
        print(f"{label:32s} layer {last}: mean {s[f'post_mean_layer{last}']:+.3f}, "
              f"variance {s[f'post_var_layer{last}']:.3g}")  # fmt: skip
    return summary


if __name__ == "__main__":
    main()
