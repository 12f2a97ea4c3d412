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
variance by layer: seed mean, and a band from the seeds' minimum to maximum) and
``report.html``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

import jaxinit as ji
from sweeps import _common

PAIRS = [("lecun_normal", "selu"), ("he_normal", "elu"), ("he_normal", "relu")]


def make_grid(*, quick: bool, seeds: int, batchnorm: bool) -> ji.Grid:
    depth, width, batch_size = (12, 32, 128) if quick else (50, 100, 1000)
    return ji.Grid(
        inits=sorted({i for i, _ in PAIRS}),
        activations=[a for _, a in PAIRS],
        depth=depth,
        width=width,
        seeds=seeds,
        batch_size=batch_size,
        batchnorm=batchnorm,
        gradients=False,
    )


BAND = "min–max over seeds"  # what the shaded band around each seed-mean line is


def seed_curves(res: ji.SweepResult, init: str, act: str, field: str) -> tuple[np.ndarray, ...]:
    """``(mean, lo, hi)`` by layer of one pair's ``field``: the seed mean and the seed
    minimum and maximum (the band)."""
    y = np.asarray(res.sel(init=init, activation=act).fields[field], np.float64)  # (seed, layer)
    return np.nanmean(y, 0), np.nanmin(y, 0), np.nanmax(y, 0)


def plot(results: dict[bool, ji.SweepResult]) -> Figure:
    fig = Figure(figsize=(7.0, 4.4), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True, sharey="row")
    for col, (bn, res) in enumerate(results.items()):
        for k, (init, act) in enumerate(PAIRS):
            color = ji.report.PALETTE[k]
            for row, field in enumerate(("post_mean", "post_var")):
                mean, lo, hi = seed_curves(res, init, act, field)
                layers = np.arange(1, mean.size + 1)
                axes[row, col].fill_between(layers, lo, hi, color=color, alpha=0.2, linewidth=0)
                axes[row, col].plot(layers, mean, color=color, label=f"{act} + {init}")
        axes[0, col].set_title("with batch norm" if bn else "no batch norm", fontsize=9)
        axes[1, col].set_xlabel("layer")
        axes[1, col].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1, col].set_yscale("log")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    for ax in axes[0]:
        ax.axhline(0.0, color="0.3", lw=0.8, ls=":")
    for ax in axes[1]:
        ax.axhline(1.0, color="0.3", lw=0.8, ls=":")
    # decimal ticks at 1, 2 and 5 per decade: a log axis over less than a decade had
    # crowded "3×10⁻¹", "4×10⁻¹" labels
    axes[1, 0].yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axes[1, 0].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes[1, 0].yaxis.set_minor_formatter(NullFormatter())
    axes[0, 0].set_ylabel(r"mean of $h_\ell$")
    axes[1, 0].set_ylabel(r"variance of $h_\ell$ (log)")
    handles = axes[0, 0].get_legend_handles_labels()[0]
    handles.append(Patch(facecolor="0.5", alpha=0.3, label=f"band: {BAND}; line: seed mean"))
    handles.append(Line2D([], [], color="0.3", lw=0.8, ls=":", label="target: mean 0, variance 1"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=7, frameon=False)
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
        sections.append(
            ji.report.Section(
                title=f"{'With' if bn else 'Without'} batch norm ({len(grid)} networks, {seconds:.1f} s)",
                tables=[
                    (
                        f"{act} + {init}",
                        ji.report.layer_table(res, fmt="html", init=init, activation=act),
                    )
                    for init, act in PAIRS
                ],
            )
        )
    (png,) = ji.report.save(plot(results), args.out / "moments")
    sections.insert(
        0,
        ji.report.Section(
            title="Mean and variance through depth",
            figures=[(f"Seed means by layer; band: {BAND}.", png)],
        ),
    )
    summary = _common.write_summary(args.out, summary)
    ji.report.write_report(
        args.out, title="SELU self-normalizes", sections=sections, attrs=results[False].attrs
    )
    for label, s in summary.items():
        last = max(int(k.rsplit("layer", 1)[1]) for k in s)
        print(
            f"{label:32s} layer {last}: mean {s[f'post_mean_layer{last}']:+.3f}, "
            f"variance {s[f'post_var_layer{last}']:.3g}"
        )
    return summary


if __name__ == "__main__":
    main()
