r"""Figures of training runs: loss and accuracy curves, decision boundaries.

As in :mod:`jaxinit.report.figures` (whose style, palette and :func:`save`
these share), every function returns a matplotlib ``Figure`` built with the
object API, never pyplot. A training result has dims (init, seed[, activation])
and fields laid out ``(…, step)``; a curve is the seed mean
:math:`\bar y_t = \frac{1}{S}\sum_s y_{s,t}` with its min–max band over seeds,
and a held-out metric is dashed::

    fig = loss_curves(train)              # one panel per activation, one line per init
    save(fig, "out/loss", formats=("png", "svg"))
    points = decision_grid(extent, resolution=100)
    fig = decision_boundary(model_probs(points).reshape(100, 100), x, y, extent=extent)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.colors import LinearSegmentedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from jaxinit._checks import check_int, closest_hint
from jaxinit._results import Result
from jaxinit.report import tables
from jaxinit.report.figures import (
    COLUMN_WIDTH,
    FULL_WIDTH,
    PALETTE,
    figure_legend,
    panel_figure,
    series_color,
    styled,
)

__all__ = [
    "EVAL_ACCURACY",
    "EVAL_LOSS",
    "accuracy",
    "decision_boundary",
    "decision_grid",
    "layer_stats_over_training",
    "loss_curves",
]


def _steps(attrs: Mapping[str, Any], key: str, n: int) -> np.ndarray:
    given = attrs.get(key)
    if given is not None and len(given) == n:
        return np.asarray(given, np.float64)
    return np.arange(n, dtype=np.float64)


def _seed_curves(ax, x, y, i, **kw):
    """Seed mean of ``y (seed, n)``, with its min–max band when solid."""
    ax.plot(x, y.mean(axis=0), color=series_color(i), **kw)
    if y.shape[0] > 1 and "linestyle" not in kw:
        ax.fill_between(x, y.min(0), y.max(0), color=series_color(i), alpha=0.2, linewidth=0)


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over the last axis (the first points average what exists)."""
    if window <= 1:
        return y
    c = np.cumsum(np.concatenate([np.zeros((*y.shape[:-1], 1)), y], axis=-1), axis=-1)
    n = np.arange(1, y.shape[-1] + 1)
    lo = np.maximum(n - window, 0)
    return (c[..., n] - c[..., lo]) / (n - lo)


def _curves(train, field, steps_key, selection, *, log_y=False, dashed=None, smooth=1) -> Figure:
    """One panel per activation, one line per init: ``field (…, n)`` against its steps."""
    v = tables.view(train, selection)
    if field not in v.fields:
        hint = closest_hint(field, list(v.fields))
        raise ValueError(
            f"the training result has no field {field!r}; fields: {list(v.fields)}.{hint}"
        )
    n_act = len(v.activations)
    fig, axes = panel_figure(
        1,
        n_act,
        width=min(FULL_WIDTH, max(COLUMN_WIDTH, 0.6 + 2.2 * n_act)),
        height=2.3,
        sharex=True,
        sharey=True,
    )
    for a, act in enumerate(v.activations):
        ax = axes[0, a]
        for i in range(len(v.inits)):
            # evaluations are sparse: their points are marked, not only joined by lines
            held_out = {"linestyle": "--", "marker": "o", "markersize": 2.5}
            for name, key, kw in ((field, steps_key, {}), (dashed, "eval_steps", held_out)):
                if name is not None:
                    y = v.fields[name][i, a].astype(np.float64)
                    y = _smooth(y, smooth) if name == field else y
                    _seed_curves(ax, _steps(v.attrs, key, y.shape[-1]), y, i, **kw)
        if log_y:
            ax.set_yscale("log", nonpositive="mask")
        ax.set_title("" if act is None else str(act))
        ax.set_xlabel("step")
    axes[0, 0].set_ylabel(field.replace("_", " "))
    handles = [
        Line2D([], [], color=series_color(i), label=str(init)) for i, init in enumerate(v.inits)
    ]
    if dashed:
        handles.append(
            Line2D(
                [],
                [],
                color="0.3",
                linestyle="--",
                marker="o",
                markersize=2.5,
                label=f"{dashed.replace('_', ' ')} (at each evaluation)",
            )
        )
    figure_legend(fig, handles)
    return fig


EVAL_LOSS = ("test_loss", "eval_loss")  # names a training result may give its held-out loss
EVAL_ACCURACY = ("test_accuracy", "eval_accuracy")


@styled
def loss_curves(
    train: Result,
    *,
    field: str = "loss",
    log_y: bool = True,
    smooth: int = 1,
    **selection: Any,
) -> Figure:
    """Training loss against step, one line per init (seed mean, min–max band).

    ``train`` has dims (init, seed[, activation]) (one panel per activation)
    and ``field`` of shape ``(…, step)``; steps come from
    ``attrs["loss_steps"]`` when recorded, else 0, 1, …. ``smooth`` > 1 draws
    each seed's trailing moving average over that many steps (mini-batch
    losses are noisy), and says so on the y axis. A held-out loss
    (``test_loss`` or ``eval_loss``, ``(…, eval)``) is drawn dashed at
    ``attrs["eval_steps"]``.
    """
    check_int("smooth (a window of steps)", smooth)
    dashed = next((k for k in EVAL_LOSS if k in train.fields), None)
    fig = _curves(train, field, "loss_steps", selection, log_y=log_y, dashed=dashed, smooth=smooth)
    if smooth > 1:
        fig.axes[0].set_ylabel(f"{field.replace('_', ' ')} ({smooth}-step mean)")
    return fig


@styled
def accuracy(train: Result, *, field: str | None = None, **selection: Any) -> Figure:
    """Held-out accuracy against step (``attrs["eval_steps"]``), seed mean and min–max band,
    with chance (1/classes, from ``attrs["d_out"]``) dotted.

    ``field`` None takes ``test_accuracy`` or ``eval_accuracy``, whichever the result holds.
    """
    if field is None:
        field = next((k for k in EVAL_ACCURACY if k in train.fields), EVAL_ACCURACY[0])
    fig = _curves(train, field, "eval_steps", selection)
    classes = train.attrs.get("d_out")
    chance = None if classes is None else 1.0 / max(2, int(classes))  # one sigmoid: 2 classes
    for ax in fig.axes:
        ax.set_ylim(0.0, 1.0)
        if chance is not None:
            ax.axhline(chance, color="0.5", linestyle=":", linewidth=1.0, zorder=0)
    if chance is not None:
        fig.axes[0].annotate(
            f"chance ({chance:.0%})",
            (0.98, chance),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize=7,
            color="0.4",
        )
    return fig


def decision_grid(extent: Sequence[float], *, resolution: int = 100) -> np.ndarray:
    """Points ``(resolution², 2)`` to evaluate a classifier on, for :func:`decision_boundary`.

    Row-major: point ``r * resolution + c`` is ``(x_c, y_r)``, so
    ``probs = predict(points).reshape(resolution, resolution)``.
    """
    x0, x1, y0, y1 = (float(e) for e in extent)
    if not (x0 < x1 and y0 < y1) or resolution < 2:
        raise ValueError(
            f"extent must be (x0 < x1, y0 < y1) and resolution >= 2; got {extent}, {resolution}"
        )
    xx, yy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


@styled
def decision_boundary(
    probs,
    points,
    labels,
    *,
    extent: Sequence[float],
    titles: Sequence[str] | None = None,
    threshold: float = 0.5,
) -> Figure:
    """Predicted P(y = 1) over the plane with the data on top; one panel per model.

    Args:
      probs: ``(H, W)`` or ``(K, H, W)`` probabilities on the :func:`decision_grid`
        of ``extent`` (row 0 at the bottom).
      points: ``(n, 2)`` inputs; labels: ``(n,)`` classes 0 and 1 (circles, triangles).
      extent: ``(x0, x1, y0, y1)``; titles: one per panel (e.g. the inits).
      threshold: the probability drawn as the boundary line.
    """
    probs = np.asarray(probs, np.float64)
    probs = probs[None] if probs.ndim == 2 else probs
    points, labels = np.asarray(points, np.float64), np.asarray(labels).reshape(-1)
    if probs.ndim != 3 or points.ndim != 2 or points.shape[1] != 2 or len(labels) != len(points):
        raise ValueError(
            f"expected probs (H, W) or (K, H, W), points (n, 2) and labels (n,); got "
            f"{probs.shape}, {points.shape}, {labels.shape}"
        )
    titles = [None] * len(probs) if titles is None else list(titles)
    if len(titles) != len(probs):
        raise ValueError(f"{len(titles)} titles for {len(probs)} panels")
    light = [0.5 * np.asarray(to_rgb(PALETTE[c])) + 0.5 for c in (0, 1)]  # halfway to white
    cmap = LinearSegmentedColormap.from_list("two_class", [light[0], (1.0, 1.0, 1.0), light[1]])
    k = len(probs)
    fig, axes = panel_figure(
        1, k, width=min(FULL_WIDTH, 0.9 + 1.9 * k), height=2.2, sharex=True, sharey=True
    )
    x0, x1, y0, y1 = extent
    for p, ax in enumerate(axes[0]):
        image = ax.imshow(
            probs[p],
            origin="lower",
            extent=(x0, x1, y0, y1),
            cmap=cmap,
            vmin=0.0,
            vmax=1.0,
            aspect="equal",
            interpolation="nearest",
        )
        if np.nanmin(probs[p]) < threshold < np.nanmax(probs[p]):
            xs, ys = np.linspace(x0, x1, probs.shape[2]), np.linspace(y0, y1, probs.shape[1])
            ax.contour(xs, ys, probs[p], levels=[threshold], colors="black", linewidths=1.0)
        for cls, marker in ((0, "o"), (1, "^")):
            pts = points[labels == cls]
            ax.scatter(
                pts[:, 0],
                pts[:, 1],
                s=6,
                marker=marker,
                color=PALETTE[cls],
                edgecolors="black",
                linewidths=0.3,
                label=f"class {cls}",
            )
        ax.set_title("" if titles[p] is None else str(titles[p]))
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel("$x_1$")
    axes[0, 0].set_ylabel("$x_2$")
    fig.colorbar(image, ax=axes[0, -1], label="P(y = 1)")
    return fig


@styled
def layer_stats_over_training(train: Result, *, field: str = "pre_var", **selection: Any) -> Figure:
    """A per-layer statistic (``record_stats_at``) against layer (1 first), one panel per
    init and one line per recorded step (seed mean), lighter for earlier steps."""
    v = tables.view(train, selection)
    if field not in v.fields:
        hint = closest_hint(field, list(v.fields))
        raise ValueError(
            f"the training result has no per-layer field {field!r} (train with "
            f"record_stats_at=...); fields: {list(v.fields)}.{hint}"
        )
    data = v.fields[field].astype(np.float64)  # (init, activation, seed, stat_step, layer)
    steps = _steps(v.attrs, "stats_steps", data.shape[-2])
    n_init = len(v.inits)
    fig, axes = panel_figure(
        1,
        n_init,
        width=min(FULL_WIDTH, max(COLUMN_WIDTH, 0.6 + 2.0 * n_init)),
        height=2.3,
        sharex=True,
        sharey=True,
    )
    layers = np.arange(1, data.shape[-1] + 1)
    for i, init in enumerate(v.inits):
        ax = axes[0, i]
        for t, step in enumerate(steps):
            shade = 0.25 + 0.75 * (t + 1) / len(steps)
            rgb = tuple(1 - shade * (1 - c) for c in to_rgb(series_color(0)))
            y = data[i, 0, :, t].mean(axis=0)
            ax.plot(layers, y, marker="o", markersize=3, color=rgb, label=f"step {int(step)}")
        ax.set_yscale("log", nonpositive="mask")
        ax.set_title(str(init))
        ax.set_xlabel("layer")
        ax.set_xticks(layers)
    axes[0, 0].set_ylabel(field.replace("_", " "))
    figure_legend(fig, axes[0, 0].get_legend_handles_labels()[0])
    return fig
