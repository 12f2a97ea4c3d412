r"""Figures of width scaling: the coord check and learning-rate transfer (Yang et al. 2022).

Each takes one training result per parametrization, ``{"standard": res, "mup": res}``
(results with a ``width`` dim, and for transfer a ``learning_rate`` dim), and draws
them side by side on shared axes, as microsoft's ``mup`` package draws them::

    fig = size_vs_width({"standard": std, "mup": mup})      # rows: parametrization
    fig = loss_vs_learning_rate({"standard": std, "mup": mup})

References:
  - Yang et al. (2022), Tensor Programs V. https://arxiv.org/abs/2203.03466
    (Fig. 1: transfer; Fig. 5: the coord check).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from jaxinit.report.figures import FULL_WIDTH, figure_legend, line_style, panel_figure, styled
from jaxinit.training._coord import OUTPUT, coord_sizes, final_losses

__all__ = ["loss_vs_learning_rate", "size_vs_width"]

# how each parametrization is titled in a figure; the keys are TrainGrid's values
TITLES = {"standard": "standard", "mup": "μP"}


def _check(results: Mapping[str, Any], dims: tuple[str, ...]) -> None:
    if not isinstance(results, Mapping) or not results:
        raise TypeError(
            f"give the results as a mapping {{parametrization: TrainResult}}; got {results!r}"
        )
    for name, res in results.items():
        missing = [d for d in dims if d not in getattr(res, "dims", ())]
        if missing:
            raise ValueError(
                f"results[{name!r}] has no {missing} dim; dims: {list(getattr(res, 'dims', ()))}"
            )


@styled
def size_vs_width(
    results: Mapping[str, Any],
    *,
    steps: tuple[int, ...] | None = None,
    layers: Sequence[str] | None = None,
) -> Figure:
    """The coord check: mean |h| against width, log–log, one line per layer (hidden layers
    and the output logits), one panel per step of ``steps`` (step numbers; None: the first,
    the last and up to two recorded between), one row per parametrization. Sizes are averaged over seeds and
    inits (:func:`jaxinit.training.coord_sizes`); a flat line is width-independent.
    ``layers``: the lines to draw, by their :func:`~jaxinit.training.coord_sizes` names (a
    model's layer paths and ``"output"``); None: all."""
    _check(results, ("width",))
    first = next(iter(results.values()))
    recorded = [int(s) for s in first.attrs["stats_steps"]]
    if steps is None:
        picks = np.unique(
            np.linspace(0, len(recorded) - 1, min(4, len(recorded))).round().astype(int)
        )
        steps = tuple(recorded[i] for i in picks)
    steps = tuple(steps)
    bad = [s for s in steps if s not in recorded]
    if bad:
        raise ValueError(f"size_vs_width: steps {bad} were not recorded; recorded: {recorded}")
    n_rows, n_cols = len(results), len(steps)
    fig, axes = panel_figure(
        n_rows,
        n_cols,
        width=min(FULL_WIDTH, 0.8 + 1.9 * n_cols),
        height=0.6 + 1.9 * n_rows,
        sharex=True,
        sharey=True,
    )
    names = []
    for r, (param, res) in enumerate(results.items()):
        sizes, widths = coord_sizes(res), np.asarray(res.coords["width"], np.float64)
        if layers is not None:
            unknown = [name for name in layers if name not in sizes]
            if unknown or not layers:
                raise ValueError(
                    f"size_vs_width: layers {unknown or list(layers)} are not among the "
                    f"recorded ones; valid: {list(sizes)}"
                )
            sizes = {name: sizes[name] for name in layers}
        names = list(sizes)
        for c, step in enumerate(steps):
            ax = axes[r, c]
            t = [int(s) for s in res.attrs["stats_steps"]].index(step)
            for i, (_layer, size) in enumerate(sizes.items()):
                ax.plot(widths, size[:, t], markersize=3, **line_style(i))
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{TITLES.get(param, param)}, step {step}")
            if r == n_rows - 1:
                ax.set_xlabel("width")
        axes[r, 0].set_ylabel("mean |h|")
    handles = [
        Line2D(
            [],
            [],
            markersize=3,
            label=n.replace("_", " ") if n != OUTPUT else "output logits",
            **line_style(i),
        )
        for i, n in enumerate(names)
    ]
    figure_legend(fig, handles)
    return fig


@styled
def loss_vs_learning_rate(results: Mapping[str, Any], *, last: int = 10) -> Figure:
    """Learning-rate transfer: training loss after the run (each model's mean over its
    ``last`` mini-batches, averaged over seeds and inits) against learning rate, log x,
    one line per width, one panel per parametrization; each width's best rate is ringed.
    A rate at which any model diverged is drawn as × at the panel's top."""
    _check(results, ("width", "learning_rate"))
    fig, axes = panel_figure(
        1, len(results), width=min(FULL_WIDTH, 0.8 + 2.8 * len(results)), height=2.8, sharey=True
    )
    widths, diverged = [], False
    finite_max = max(
        float(np.max(v[np.isfinite(v)], initial=0.0))
        for v in (final_losses(r, last=last) for r in results.values())
    )
    for c, (param, res) in enumerate(results.items()):
        ax, loss = axes[0, c], final_losses(res, last=last)
        lrs, widths = np.asarray(res.coords["learning_rate"], np.float64), res.coords["width"]
        order = np.argsort(lrs)
        for i, row in enumerate(loss):
            style = line_style(i)
            ok = np.isfinite(row[order])
            diverged |= not ok.all()
            ax.plot(lrs[order][ok], row[order][ok], markersize=3, **style)
            ax.plot(
                lrs[order][~ok], np.full((~ok).sum(), finite_max * 1.05), "x", color=style["color"]
            )
            best = int(np.argmin(row))
            if np.isfinite(row[best]):
                ax.plot(
                    lrs[best],
                    row[best],
                    "o",
                    markersize=8,
                    markerfacecolor="none",
                    markeredgecolor=style["color"],
                )
        ax.set_xscale("log")
        ax.set_title(TITLES.get(param, param))
        ax.set_xlabel("learning rate")
    axes[0, 0].set_ylabel(f"training loss (mean of last {last} steps)")
    handles = [
        Line2D([], [], markersize=3, label=f"width {w}", **line_style(i))
        for i, w in enumerate(widths)
    ]
    handles.append(
        Line2D(
            [],
            [],
            marker="o",
            markersize=8,
            markerfacecolor="none",
            linestyle="",
            markeredgecolor="0.3",
            label="best rate",
        )
    )
    if diverged:
        handles.append(Line2D([], [], marker="x", linestyle="", color="0.3", label="diverged"))
    figure_legend(fig, handles)
    return fig
