r"""Figures of sweeps and theory, and the house style: matplotlib ``Figure`` objects, never pyplot.

Every function returns a :class:`matplotlib.figure.Figure` built with the
object API (no pyplot, no global state: the house style is applied with
``rc_context`` while the figure is built) at column width, with labelled axes,
shared axes across small multiples and the Okabe–Ito palette :data:`PALETTE`
(Okabe & Ito 2008, *Color Universal Design*; safe for the common colour-vision
deficiencies, and lines also differ by marker)::

    fig = variance_vs_depth(res, theory=ji.theory.predict(grid))
    save(fig, "out/variance", formats=("png", "svg"))   # same figure, same bytes

:func:`save` strips dates and versions from the files and fixes the SVG hash
salt, so a figure's files are byte-for-byte reproducible. Curves over seeds
show the geometric seed mean (a line) and the min–max range (a band); theory
is dashed in the same colour. The variance plots follow Glorot & Bengio 2010
(http://proceedings.mlr.press/v9/glorot10a) and He et al. 2015
(https://arxiv.org/abs/1502.01852); the phase diagram follows Poole et al.
2016 (https://arxiv.org/abs/1606.05340) and Schoenholz et al. 2017
(https://arxiv.org/abs/1611.01232). Training figures, in the same style, are in
:mod:`jaxinit.report.training`.
"""

from __future__ import annotations

import functools
import io
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib as mpl
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import LogLocator, MaxNLocator

from jaxinit._checks import check_choice
from jaxinit._io import atomic_write
from jaxinit._results import SweepResult
from jaxinit.report import tables

__all__ = [
    "CELL_KEY",
    "EDGE_ERRORS",
    "HEATMAP_CLIP",
    "NOTEBOOK_DPI",
    "PALETTE",
    "SAVE_FORMATS",
    "HeatmapCells",
    "NotebookFigure",
    "depth_ticks",
    "edge_classes",
    "figure_legend",
    "grad_variance_vs_depth",
    "heatmap",
    "heatmap_cells",
    "histogram_grid",
    "label_spot",
    "line_style",
    "marker_layers",
    "off_range_shares",
    "padded_edges",
    "panel_figure",
    "phase_diagram",
    "save",
    "series_color",
    "styled",
    "variance_vs_depth",
    "wrap_label",
]

# Okabe–Ito, most distinct first; yellow last (weak on white).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "p", "h")  # 10: pairs with 8 colours differ
LINESTYLES = ("-", "--", ":", "-.")
COLUMN_WIDTH, FULL_WIDTH = 3.4, 7.0  # inches: one and two columns of a paper
SAVE_FORMATS = ("png", "svg", "pdf")
SVG_SALT = "jaxinit"
METADATA = {  # None removes matplotlib's default entries (version strings and dates)
    "png": {"Software": None},
    "svg": {"Creator": None, "Date": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
}
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "lines.linewidth": 1.2,
    "lines.markersize": 3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "image.cmap": "viridis",
    "svg.hashsalt": SVG_SALT,
}
PANELS_PER_ROW = 5  # small multiples wrap onto a new row past this many
SHORT_LABELS = {  # the y label of a variance figure, whose title is FIELD_LABELS' long form
    "pre_var": r"$\mathrm{Var}(z_\ell)$",
    "post_var": r"$\mathrm{Var}(h_\ell)$",
    "grad_var": r"$\mathrm{Var}(\partial L / \partial z_\ell)$",
}
FIELD_LABELS = {
    "pre_var": r"pre-activation variance $\mathrm{Var}(z_\ell)$",
    "post_var": r"post-activation variance $\mathrm{Var}(h_\ell)$",
    "grad_var": r"gradient variance $\mathrm{Var}(\partial L / \partial z_\ell)$",
    "pre_mean": r"pre-activation mean",
    "post_mean": r"post-activation mean",
    "weight_grad_norm": r"$\|\partial L / \partial W_\ell\|_F$",
}


def styled(fn):
    """``fn`` drawn in the house style (``STYLE``); every figure function is wrapped in it."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


NOTEBOOK_DPI = 150  # a column-width figure (4.4 in) shows 660 px wide in a notebook


class NotebookFigure(Figure):
    """A plain matplotlib :class:`~matplotlib.figure.Figure` that also shows itself in a
    notebook: the last expression of a cell displays it as a PNG at :data:`NOTEBOOK_DPI`,
    with no ``%matplotlib inline`` and no pyplot (jaxinit's figures are never registered
    with pyplot, so Jupyter would otherwise print ``<Figure size ...>``). Where the user has
    turned on an inline backend, IPython's own renderer for figures takes precedence."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=NOTEBOOK_DPI, metadata={"Software": None})
        return buf.getvalue()


def panel_figure(
    nrows: int, ncols: int, *, width: float, height: float, margins=None, **kw
) -> tuple[Figure, Any]:
    """A figure of panels: constrained layout, or fixed ``margins`` (left, right, top, bottom,
    wspace, hspace; inches) for large grids, where the layout solver costs seconds."""
    if margins is None:
        fig = NotebookFigure(figsize=(width, height), layout="constrained")
        return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)
    left, right, top, bottom, wspace, hspace = margins
    fig = NotebookFigure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    panel_w = (width - left - right - wspace * (ncols - 1)) / ncols
    panel_h = (height - top - bottom - hspace * (nrows - 1)) / nrows
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        wspace=wspace / panel_w,
        hspace=hspace / panel_h,
    )
    return fig, axes


def series_color(i: int) -> str:
    """The ``i``-th series' colour: ``PALETTE``, repeating after its last."""
    return PALETTE[i % len(PALETTE)]


def save(
    fig: Figure, path: str | os.PathLike, *, formats: Sequence[str] = ("png",), dpi: float = 200
) -> tuple[Path, ...]:
    """Writes ``fig`` as ``path.<fmt>`` for each format, atomically; returns the paths.

    A suffix of ``path`` that is a format is replaced. The files carry no dates
    or version strings and SVG ids use a fixed salt: the same figure gives the
    same bytes, run after run.
    """
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    for fmt in formats:
        check_choice("format", fmt, SAVE_FORMATS)
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lstrip(".") in SAVE_FORMATS else path
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        buffer = io.BytesIO()
        with mpl.rc_context({"svg.hashsalt": SVG_SALT}):
            fig.savefig(buffer, format=fmt, dpi=dpi, metadata=METADATA[fmt])
        out = stem.parent / f"{stem.name}.{fmt}"
        atomic_write(out, buffer.getvalue())
        written.append(out)
    return tuple(written)


def _positive(y: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(y) & (y > 0), y, np.nan)


def _legend_columns(width: float, labels: Sequence[str]) -> int:
    """How many legend columns a figure ``width`` inches wide holds: the longest label sets a
    column's width (at a fixed 1.7 in, two columns cut a long label off)."""
    longest = max((len(label) for label in labels), default=0)
    column = max(1.7, 0.35 + 0.055 * longest)  # inches: the handle, then ~0.055 a character
    return max(1, min(len(labels), int(width // column)))


def figure_legend(fig: Figure, handles) -> None:
    """One legend for all panels, under them, in as many columns as the width holds."""
    ncols = _legend_columns(fig.get_figwidth(), [h.get_label() for h in handles])
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols)


def line_style(i: int) -> dict[str, Any]:
    """The colour, marker and line style of the i-th curve of a figure: colours cycle every
    8 and markers every 10, so the first 40 curves differ in one or the other, and the line
    style changes with each pass through the colours (curves 9 to 16 are dashed)."""
    return {
        "color": PALETTE[i % len(PALETTE)],
        "marker": MARKERS[i % len(MARKERS)],
        "linestyle": LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)],
    }


MARKS_PER_CURVE = 10  # a curve over more layers carries a marker every few layers, staggered


def marker_layers(n_layers: int, i: int) -> np.ndarray:
    """0-based layers that carry curve i's markers: every layer up to ``MARKS_PER_CURVE``
    layers, else every k-th with k = ceil(n_layers / MARKS_PER_CURVE), starting at i mod k,
    so that curves which coincide (glorot_normal, glorot_uniform and lecun_normal when
    fan_in = fan_out) show their markers at different layers instead of one on another."""
    step = -(-n_layers // MARKS_PER_CURVE)
    return np.arange(i % step, n_layers, step)


TICK_STEPS = (1, 2, 5, 10, 20, 25, 50)  # then these times 10, 100, ...: 100, 200, 250, 500


def depth_ticks(n_layers: int, panel_inches: float) -> np.ndarray:
    """Layer ticks (1-based) that fit a panel, about one a third of an inch: every layer when
    they fit, else the multiples of the smallest step of :data:`TICK_STEPS` that fits (10
    layers in 2 inches: 2, 4, 6, 8, 10), with layer 1 where the step is 5 or more."""
    fit = max(2, int(panel_inches / 0.33))
    if n_layers <= fit:
        return np.arange(1, n_layers + 1)
    scale = 1
    while True:
        for base in TICK_STEPS:
            step = base * scale
            ticks = np.arange(step, n_layers + 1, step)
            if step >= 5:
                ticks = np.concatenate([[1], ticks])
            if len(ticks) < 2 or step >= n_layers:
                return np.array([1, n_layers])
            if len(ticks) <= fit:
                return ticks
        scale *= 10


@styled
def variance_vs_depth(
    res: SweepResult, *, field: str = "pre_var", theory: SweepResult | None = None, **selection: Any
) -> Figure:
    """A per-layer variance against depth: one panel per activation, one line per init.

    Log y; the geometric seed mean with its min–max band. With ``theory`` (same
    dims and fields, e.g. ``theory.predict(grid)``) the measurements are
    markers alone and theory a line drawn over them, so that agreement shows
    as markers sitting on the line (a dashed line under a solid one hid it).
    Curves differ in colour, marker and (past 8) line style (:func:`line_style`);
    over more than 10 layers each carries markers at every k-th layer, staggered
    from curve to curve (:func:`marker_layers`), so that curves which coincide
    still show each of theirs. Panels share both axes. ``selection`` goes to
    ``res.sel``.
    """
    v = tables.view(res, selection)
    tables.require_layer_field(v.field_dims, field)
    tv = None if theory is None else tables.align(theory, v)
    markers = tv is not None  # the measurements are markers alone, theory the line
    predicted = tv.fields[field] if markers and field in tv.fields else None
    arr, n_act = _positive(v.fields[field].astype(np.float64)), len(v.activations)
    x = np.arange(1, v.n_layers + 1)
    ncols = min(n_act, PANELS_PER_ROW)
    width = min(FULL_WIDTH, max(COLUMN_WIDTH, 0.6 + 1.9 * ncols))
    fig, grid = _variance_figure(v, ncols, width, markers)
    ticks = depth_ticks(v.n_layers, (width - 0.6) / ncols)
    for a, (ax, act) in enumerate(zip(grid.flat, v.activations, strict=False)):
        for i in range(len(v.inits)):
            _seed_curve(ax, x, arr[i, a], i, markers)
            if predicted is not None:
                _theory_curve(ax, x, predicted[i, a], i)
        _label_depth_panel(ax, act, ticks, bottom=a + ncols >= n_act)
    for row in grid:  # the axis says Var(z_ℓ); the title above says it in words
        row[0].set_ylabel(SHORT_LABELS.get(field, field))
    fig.suptitle(FIELD_LABELS.get(field, field), fontsize=8)
    figure_legend(fig, _variance_handles(v.inits, markers))
    return fig


MEASURED_LABEL = "measured (seed geometric mean)"


def _variance_figure(v: tables.View, ncols: int, width: float, markers: bool):
    """The panels of :func:`variance_vs_depth`, ``ncols`` a row, with room under them for
    the legend; panels past the last activation are hidden."""
    n_act = len(v.activations)
    nrows = -(-n_act // ncols)
    labels = [str(i) for i in v.inits] + [MEASURED_LABEL, "theory"] * markers
    legend_rows = -(-len(labels) // _legend_columns(width, labels))
    fig, grid = panel_figure(
        nrows,
        ncols,
        width=width,
        height=0.7 + 1.8 * nrows + 0.15 * legend_rows,
        sharex=True,
        sharey=True,
    )
    for ax in grid.reshape(-1)[n_act:]:
        ax.set_visible(False)
    return fig, grid


def _seed_curve(ax, x: np.ndarray, y: np.ndarray, i: int, markers: bool) -> None:
    """Curve i of ``y (seed, layer)``: the geometric seed mean (markers alone when theory
    draws the line) and, over several seeds, the min–max band."""
    kw = line_style(i) | {"markevery": marker_layers(len(x), i).tolist()}
    if markers:
        kw |= {"linestyle": "none", "markersize": 4.5, "markerfacecolor": "white"}
    ax.plot(x, tables.geomean(y, axis=0), **kw)
    if y.shape[0] > 1:
        with np.errstate(invalid="ignore"):
            lo, hi = np.nanmin(y, 0, initial=np.inf), np.nanmax(y, 0, initial=-np.inf)
        ok = np.isfinite(lo) & np.isfinite(hi)
        ax.fill_between(
            x,
            np.where(ok, lo, np.nan),
            np.where(ok, hi, np.nan),
            color=series_color(i),
            alpha=0.2,
            linewidth=0,
        )


def _theory_curve(ax, x: np.ndarray, t: np.ndarray, i: int) -> None:
    """Theory's curve i, ``t (seed, layer)`` averaged over seeds, drawn over the markers."""
    mean = _positive(t.astype(np.float64)).mean(0)
    ax.plot(
        x,
        mean,
        color=series_color(i),
        linewidth=1.2,
        zorder=3,
        linestyle=line_style(i)["linestyle"],
    )


def _label_depth_panel(ax, act, ticks: np.ndarray, *, bottom: bool) -> None:
    """Log y, the activation as title, layer ticks and a light grid; the layer label only on
    the ``bottom`` panel of a column."""
    ax.set_yscale("log", nonpositive="mask")
    ax.set_title(str(act) if act is not None else "")
    if bottom:
        ax.set_xlabel(r"layer $\ell$")
        ax.tick_params(labelbottom=True)
    ax.set_xticks(ticks)
    ax.grid(True, which="major", linewidth=0.3, alpha=0.5)


def _variance_handles(inits, markers: bool) -> list[Line2D]:
    """The legend of :func:`variance_vs_depth`: each init's style, then with theory the
    key to markers (measured) and lines (theory)."""
    measured = {"markerfacecolor": "white"} if markers else {}
    handles = [
        Line2D([], [], **line_style(i) | measured, label=str(init)) for i, init in enumerate(inits)
    ]
    if markers:
        handles.append(
            Line2D(
                [],
                [],
                color="0.3",
                marker="o",
                markerfacecolor="white",
                linestyle="none",
                label=MEASURED_LABEL,
            )
        )
        handles.append(Line2D([], [], color="0.3", label="theory (mean field)"))
    return handles


def grad_variance_vs_depth(
    res: SweepResult, *, theory: SweepResult | None = None, **selection: Any
) -> Figure:
    r"""Variance of :math:`\partial \langle G, h_L \rangle / \partial z_\ell` against depth.

    The kernel back-propagates a standard-normal cotangent :math:`G` from the
    last layer, so layer :math:`L` is where the gradient starts; vanishing
    gradients fall towards layer 1. As :func:`variance_vs_depth` otherwise.
    """
    return variance_vs_depth(res, field="grad_var", theory=theory, **selection)


HEATMAP_CLIP = 3.0  # the colour scale's ±log10 limit: the summary's vanish/explode limits 1e-3, 1e3
CELL_KEY = {  # what a heatmap cell that holds no number says, and why
    "overflow": "overflow: Var(z) passed float32's largest value (3.4e38) by layer L: explodes",
    "underflow": "−∞: Var(z) fell to exactly 0 in float32 by layer L: vanishes",
    "n/a": "n/a: no ratio (layer 1's variance is 0, or a value is missing)",
}


class HeatmapCells(NamedTuple):
    """What each (init, activation) cell of :func:`heatmap` shows."""

    kinds: np.ndarray  # (I, A) str: "value", or a key of CELL_KEY
    values: np.ndarray  # (I, A) seed mean of log10 r_L where kinds == "value", else NaN
    colour: np.ndarray  # (I, A) values clipped to ±clip; +clip overflow, −clip underflow; NaN n/a
    text: np.ndarray  # (I, A) str: the value ("+1.26"), "overflow", "overflow 2/4", "−∞" or "n/a"


def heatmap_cells(
    field: np.ndarray,
    *,
    reference: str = "layer0",
    attrs: Mapping[str, Any] | None = None,
    nonfinite: np.ndarray | None = None,
    clip: float = HEATMAP_CLIP,
) -> HeatmapCells:
    r"""Classifies the cells of :func:`heatmap` from ``field (I, A, S, L)`` (e.g. ``pre_var``).

    A seed *overflows* when its variance is non-finite at any layer up to L
    (float32 overflow: inf, then inf − inf = NaN), or it has a ``nonfinite``
    count ``(I, A, S, L)`` there; a cell with any such seed reads "overflow"
    ("overflow k/S" when only k of S seeds did) and takes the top colour. Else a
    seed whose ratio at L is exactly 0 makes "−∞" (the variance underflowed to
    0: it vanished; the bottom colour), one without a ratio (layer 1's variance
    was 0: x/0 or 0/0) makes "n/a" (grey). Otherwise the cell is the seed mean of
    :math:`\log_{10} r_L`, written to two decimals, coloured on a scale clipped
    at ``±clip`` so that a 1000× cell (+3.00) is as dark as any beyond it.
    """
    if clip <= 0:
        raise ValueError(f"clip must be positive; got {clip!r}")
    field = np.asarray(field, np.float64)
    if field.ndim != 4:
        raise ValueError(f"field must be (init, activation, seed, layer); got shape {field.shape}")
    per_seed = tables.reference_ratio(field, reference, attrs or {})[..., -1]  # (I, A, S)
    over = ~np.isfinite(field).all(axis=-1)
    if nonfinite is not None:
        over |= (np.asarray(nonfinite) > 0).any(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(per_seed)
    n_over, n_seeds = over.sum(-1), field.shape[2]
    kinds = np.where(
        n_over > 0,
        "overflow",
        np.where(
            (np.isnan(logs) | np.isposinf(logs)).any(-1),
            "n/a",
            np.where(np.isneginf(logs).any(-1), "underflow", "value"),
        ),
    )
    kinds = kinds.astype(object)
    values = np.where(kinds == "value", logs.mean(-1), np.nan)
    colour = np.select(
        [kinds == "value", kinds == "overflow", kinds == "underflow"],
        [np.clip(values, -clip, clip), clip, -clip],
        np.nan,
    )
    text = np.empty(kinds.shape, object)
    for idx, kind in np.ndenumerate(kinds):
        if kind == "value":
            text[idx] = f"{values[idx]:+.2f}".replace("-", "−")
        elif kind == "overflow":
            text[idx] = (
                "overflow" if n_over[idx] == n_seeds else f"overflow {n_over[idx]}/{n_seeds}"
            )
        else:
            text[idx] = "−∞" if kind == "underflow" else "n/a"
    return HeatmapCells(kinds, values, colour, text)


@styled
def heatmap(
    res: SweepResult,
    *,
    depth: int | None = None,
    field: str = "pre_var",
    reference: str = "layer0",
    clip: float = HEATMAP_CLIP,
    **selection: Any,
) -> Figure:
    r"""init × activation, coloured by :math:`\log_{10}` of the variance ratio at depth L.

    The cell is the seed mean of :math:`\log_{10} r_L` (see
    :mod:`jaxinit.report.tables` for the ratio and ``reference``), written to
    two decimals, on a diverging colour map centred at 0 (blue: vanishing,
    red: exploding) clipped at ``±clip`` decades (default ±3, the summary
    table's vanish and explode limits), so that a 1000× cell is full red
    whatever the largest value. Cells without a number (:func:`heatmap_cells`)
    are hatched and named in a key under the map: "overflow" (red: the variance
    passed float32's range, the network explodes), "−∞" (blue: it fell to 0)
    and "n/a" (grey: no ratio).
    """
    v = tables.view(res, selection, depth=depth)
    tables.require_layer_field(v.field_dims, field)
    cells = heatmap_cells(
        v.fields[field],
        reference=reference,
        attrs=v.attrs,
        clip=clip,
        nonfinite=v.fields.get("nonfinite"),
    )
    kinds = [k for k in CELL_KEY if (cells.kinds == k).any()]
    fig, ax = _heatmap_figure(*cells.kinds.shape, len(kinds))
    cmap = mpl.colormaps["RdBu_r"].with_extremes(bad=NO_RATIO_GREY)
    image = ax.imshow(
        np.ma.masked_invalid(cells.colour), cmap=cmap, vmin=-clip, vmax=clip, aspect="auto"
    )
    _write_cells(ax, cells, clip)
    _label_heatmap(ax, v, field, reference)
    bar = fig.colorbar(
        image,
        ax=ax,
        extend="both",
        label=f"$\\log_{{10}}$ ratio\n(colour clipped at $\\pm${clip:g})",
    )
    bar.set_ticks(np.arange(-np.floor(clip), np.floor(clip) + 1))
    if kinds:
        _cell_key(fig, kinds, cmap)
    return fig


NO_RATIO_GREY = "#BBBBBB"  # a heatmap cell without a ratio ("n/a")
CELL_HATCH = {"overflow": "///", "underflow": "\\\\\\", "n/a": "..."}
HATCH_EDGE = {True: (1.0, 1.0, 1.0, 0.3), False: (0.0, 0.0, 0.0, 0.25)}  # faint: the text reads


def _heatmap_figure(n_init: int, n_act: int, n_keys: int):
    """The heatmap's one axes, sized to its cells and to the ``n_keys`` lines of the key."""
    width = min(FULL_WIDTH, max(COLUMN_WIDTH + 0.8, 2.4 + 0.8 * n_act))
    height = max(2.2, 1.0 + 0.32 * n_init) + 0.16 * n_keys
    fig, axes = panel_figure(1, 1, width=width, height=height)
    return fig, axes[0, 0]


def _write_cells(ax, cells: HeatmapCells, clip: float) -> None:
    """Each cell's text, white on dark cells, and a hatch over the cells without a number."""
    for (i, a), text in np.ndenumerate(cells.text):
        kind = cells.kinds[i, a]
        dark = kind in ("overflow", "underflow") or abs(cells.colour[i, a]) > 0.6 * clip
        ax.text(
            a,
            i,
            text,
            ha="center",
            va="center",
            fontsize=6 if len(text) > 6 else 7,
            color="white" if dark else "black",
        )
        if kind != "value":
            ax.add_patch(
                Rectangle(
                    (a - 0.5, i - 0.5),
                    1,
                    1,
                    facecolor="none",
                    hatch=CELL_HATCH[kind],
                    edgecolor=HATCH_EDGE[dark],
                    linewidth=0,
                )
            )


def _label_heatmap(ax, v: tables.View, field: str, reference: str) -> None:
    """Activations along x, inits along y, a frame, and a title naming the ratio."""
    ax.set_xticks(
        range(len(v.activations)), labels=[str(a) for a in v.activations], rotation=30, ha="right"
    )
    ax.set_yticks(range(len(v.inits)), labels=[str(i) for i in v.inits])
    ax.set_xlabel("activation")
    ax.set_ylabel("init")
    ax.spines[["top", "right"]].set_visible(True)
    ref = "layer 1" if reference == "layer0" else r"$\mathbb{E}[x^2]$"
    ax.set_title(f"{field} at layer {v.n_layers} over {ref}\nseed mean of log10")


def _cell_key(fig: Figure, kinds: Sequence[str], cmap) -> None:
    """The key under the map to the ``kinds`` of cell without a number that it shows."""
    colour = {"overflow": cmap(1.0), "underflow": cmap(0.0), "n/a": NO_RATIO_GREY}
    handles = [
        Patch(
            facecolor=colour[k],
            hatch=CELL_HATCH[k],
            edgecolor=HATCH_EDGE[k != "n/a"],
            linewidth=0,
            label=CELL_KEY[k],
        )
        for k in kinds
    ]
    fig.legend(handles=handles, loc="outside lower left", ncols=1, fontsize=6.5)


def off_range_shares(res: SweepResult, **selection: Any) -> tuple[np.ndarray, np.ndarray]:
    """The fractions of post-activations below and above the histogram's range, seeds
    pooled: ``(below, above)``, each ``(init, activation, layer)`` over the view's inits and
    activations (NaN without the ``hist_below``/``hist_above`` counts)."""
    v = tables.view(res, selection)
    if not {"hist", "hist_below", "hist_above"} <= set(v.fields):
        shape = (len(v.inits), len(v.activations), v.n_layers)
        return np.full(shape, np.nan), np.full(shape, np.nan)
    inside = v.fields["hist"].sum(axis=(2, -1)).astype(np.float64)  # (init, act, layer)
    below = np.maximum(v.fields["hist_below"], 0).sum(axis=2).astype(np.float64)
    above = np.maximum(v.fields["hist_above"], 0).sum(axis=2).astype(np.float64)
    total = np.maximum(inside + below + above, 1.0)
    return below / total, above / total


OFF_RANGE_SHOWN = 0.005  # a panel names the share of its values off the range from 0.5%


@styled
def histogram_grid(
    res: SweepResult,
    *,
    inits: Sequence[str] | None = None,
    activations: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    yscale: str = "auto",
    **selection: Any,
) -> Figure:
    """Post-activation histograms of every (activation, init) pair, layer by layer.

    One row per (activation, init) pair and one column per layer, as in the
    classic blog posts; a single layer is drawn as a row per activation and a column per
    init (titles wrapped by :func:`wrap_label`, every panel with its own y ticks, one y
    scale a row).
    Bars are the fraction of all post-activations (seeds pooled) in each bin
    of ``attrs["hist_edges"]``; values outside the edges cannot be drawn, so
    each panel names the share of them below and above its range (from the
    result's ``hist_below``/``hist_above``) when it is 0.5% or more, in red:
    ReLU under N(0, 1) weights has half its values past the right edge. (Without the grid's batch and a
    single width in attrs, bars are fractions of the in-range values.) Panels
    of one activation share x; one network's layers share y. ``layers``
    (1-based) defaults to at most six evenly spaced layers, first and last
    included. ``yscale`` is "linear", "log" or "auto": log for a network whose
    fullest bin holds over 45% of the values (a spike, such as ReLU's zeros,
    that would flatten the rest), else linear.
    """
    check_choice("yscale", yscale, ("auto", "linear", "log"))
    selection = _selection_with(selection, init=inits, activation=activations)
    v = tables.view(res, selection)
    if "hist" not in v.fields:
        raise ValueError(f"the result has no field 'hist'; fields: {list(v.fields)}")
    layers = _histogram_layers(layers, v.n_layers)
    fracs, floor = _bin_fractions(v)  # (init, activation, layer, bin)
    below, above = off_range_shares(res, **selection)  # (init, activation, layer)
    pairs = [(a, i) for a in range(len(v.activations)) for i in range(len(v.inits))]
    rows_are_pairs = len(layers) > 1
    scales = _histogram_scales(fracs, yscale, one_per_row=not rows_are_pairs)
    fig, axes = _histogram_figure(v, len(layers), rows_are_pairs)

    def at(p: int, r: int):  # the panel of pair p at layer index r
        return axes[p, r] if rows_are_pairs else axes[pairs[p]]

    for p, (a, i) in enumerate(pairs):
        edges = _bin_edges(v, a, fracs.shape[-1])
        first = at(pairs.index((a, 0)), 0)
        for r, layer in enumerate(layers):
            ax = at(p, r)
            if ax is not first:  # an activation's panels share x, a network's share y
                ax.sharex(first)
            if r:
                ax.sharey(at(p, 0))
            _draw_bins(ax, fracs[i, a, layer - 1], edges, scales[i, a], floor, series_color(i))
            _note_off_range(ax, below[i, a, layer - 1], above[i, a, layer - 1], edges)
    if rows_are_pairs:
        _label_pair_rows(fig, axes, v, pairs, layers, scales)
    else:
        _label_one_layer(fig, axes, v, layers[0], scales)
    return fig


def _selection_with(selection: Mapping[str, Any], **wanted: Any) -> dict[str, Any]:
    """``selection`` with each dim of ``wanted`` that is not None, as a list."""
    selection = dict(selection)
    for dim, values in wanted.items():
        if values is not None:
            selection[dim] = [values] if isinstance(values, str) else list(values)
    return selection


def _histogram_layers(layers: Sequence[int] | None, n: int) -> list[int]:
    """The 1-based layers to draw: those asked for, checked, else at most six evenly spaced."""
    if layers is None:
        layers = np.unique(np.linspace(1, n, min(n, 6)).round().astype(int)).tolist()
    layers = [int(l) for l in layers]
    if not layers or any(not 1 <= l <= n for l in layers):
        raise ValueError(f"layers={layers!r} must be within 1..{n}")
    return layers


def _bin_fractions(v: tables.View) -> tuple[np.ndarray, float]:
    """Each bin's fraction of all post-activations (of the in-range ones without the batch
    and a single width in attrs), seeds pooled; and a log axis's baseline, below one count."""
    grid = v.attrs.get("grid") or {}
    widths = grid.get("width") or []  # the width when fixed, else normalize by the counts
    width_label = v.fixed.get("width", widths[0] if len(widths) == 1 else None)
    total = (
        len(v.seeds) * grid["batch_size"] * width_label
        if width_label and "batch_size" in grid
        else None
    )
    counts = v.fields["hist"].sum(axis=2).astype(np.float64)  # (init, activation, layer, bin)
    fracs = counts / (total if total else np.maximum(counts.sum(-1, keepdims=True), 1.0))
    return fracs, 0.5 / total if total else 1e-4


def _histogram_scales(fracs: np.ndarray, yscale: str, *, one_per_row: bool) -> np.ndarray:
    """Each network's y scale, ``(init, activation)``: ``yscale``, or for "auto" log where
    the fullest bin holds over 45%; with ``one_per_row``, log for a whole activation's row
    when any of its networks is."""
    n_init, n_act = fracs.shape[:2]
    scales = np.array(
        [
            [
                yscale if yscale != "auto" else "log" if fracs[i, a].max() > 0.45 else "linear"
                for a in range(n_act)
            ]
            for i in range(n_init)
        ]
    )
    if one_per_row:
        scales[:] = np.where((scales == "log").any(axis=0), "log", "linear")
    return scales


def _histogram_figure(v: tables.View, n_layers: int, rows_are_pairs: bool):
    """A row per (activation, init) and a column per layer; or, for one layer, a row per
    activation and a column per init, with room for every tick label."""
    n_init, n_act = len(v.inits), len(v.activations)
    if rows_are_pairs:
        shape, margins = (n_act * n_init, n_layers), (1.5, 0.1, 0.45, 0.35, 0.12, 0.22)
        width, height = min(FULL_WIDTH, 1.6 + 1.0 * shape[1]), 0.55 + 0.72 * shape[0]
    else:
        shape, margins = (n_act, n_init), (0.8, 0.1, 0.6, 0.4, 0.45, 0.45)
        width, height = min(FULL_WIDTH, 0.9 + 2.0 * shape[1]), 0.55 + 1.35 * shape[0]
    return panel_figure(*shape, width=width, height=height, margins=margins)


def _bin_edges(v: tables.View, a: int, bins: int) -> np.ndarray:
    """Activation a's histogram edges (``attrs["hist_edges"]``; the bin numbers without)."""
    edges = v.attrs.get("hist_edges", {}).get(str(v.activations[a]), np.arange(bins + 1))
    return np.asarray(edges, np.float64)


def _draw_bins(ax, frac: np.ndarray, edges: np.ndarray, scale: str, floor: float, color) -> None:
    """One histogram, filled, on a ``scale`` y axis with about three ticks a side."""
    ax.stairs(
        np.where(frac > 0, frac, np.nan) if scale == "log" else frac,
        edges,
        baseline=floor if scale == "log" else 0.0,
        fill=True,
        color=color,
        alpha=0.85,
        linewidth=0,
    )
    ax.set_yscale(scale)
    ax.xaxis.set_major_locator(MaxNLocator(3, steps=[1, 2, 5, 10]))
    ax.yaxis.set_major_locator(LogLocator(numticks=3) if scale == "log" else MaxNLocator(3))
    ax.minorticks_off()
    ax.tick_params(labelsize=6)


def _note_off_range(ax, below: float, above: float, edges: np.ndarray) -> None:
    """In red, top right: the shares of values below and above the edges, from 0.5%."""
    off = [
        f"{share:.0%} {side}"
        for share, side in ((below, f"< {edges[0]:g}"), (above, f"> {edges[-1]:g}"))
        if share >= OFF_RANGE_SHOWN
    ]
    if off:
        ax.text(
            0.97,
            0.95,
            "\n".join(off),
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=5.5,
            color="#b2182b",
        )


def _label_pair_rows(fig: Figure, axes, v: tables.View, pairs, layers, scales) -> None:
    """A row per (activation, init): layers on top, each row named at its left with its y
    scale, x tick labels under each activation's last row and x's name under the last."""
    last_of_act = {a: max(p for p, (b, _) in enumerate(pairs) if b == a) for a, _ in pairs}
    for (p, r), ax in np.ndenumerate(axes):
        a, i = pairs[p]
        if r:
            ax.tick_params(labelleft=False)
        if p == 0:
            ax.set_title(f"layer {layers[r]}", fontsize=8)
        if r == 0:
            ax.set_ylabel(
                f"{v.activations[a]}\n{wrap_label(str(v.inits[i]), 20)}\n({scales[i, a]} y)",
                fontsize=6.5,
                rotation=0,
                ha="right",
                va="center",
            )
        if p == len(pairs) - 1:
            _label_h(ax)
        if p != last_of_act[a]:
            ax.tick_params(labelbottom=False)
    fig.text(0.005, 0.5, "fraction of post-activations", rotation=90, va="center", fontsize=7)


def _label_one_layer(fig: Figure, axes, v: tables.View, layer: int, scales) -> None:
    """A row per activation, a column per init: inits on top, each row's y scale at its
    left, x's name under the last row, the layer in the title."""
    for (a, i), ax in np.ndenumerate(axes):
        if a == 0:
            ax.set_title(wrap_label(str(v.inits[i])), fontsize=6.5)
        if i == 0:
            ax.set_ylabel(f"{v.activations[a]}\nfraction ({scales[i, a]} y)", fontsize=7)
        if a == len(v.activations) - 1:
            _label_h(ax)
    fig.suptitle(f"layer {layer}: fraction of post-activations per bin, seeds pooled", fontsize=7.5)


def _label_h(ax) -> None:
    ax.set_xlabel(r"$h_\ell$", fontsize=7, labelpad=1)


def wrap_label(label: str, width: int = 24) -> str:
    """A spec label on lines of about ``width`` characters for a panel title: the name, then
    its arguments, broken after commas (``glorot_normal(convention='keras')`` takes two)."""
    if len(label) <= width or "(" not in label:
        return label
    name, args = label.split("(", 1)
    return name + "\n" + textwrap.fill("(" + args, width, break_long_words=False)


@styled
def phase_diagram(
    sigma_w2, sigma_b2, chi1, *, xi_c=None, empirical=None, critical=None, beyond: str = "chaotic"
) -> Figure:
    r"""The order-to-chaos diagram in :math:`(\sigma_w^2, \sigma_b^2)`.

    The critical line :math:`\chi_1 = 1` is solid black, between the ordered
    (:math:`\chi_1 < 1`, correlations go to 1, gradients vanish) and chaotic
    (:math:`\chi_1 > 1`) phases, shaded blue and orange; with ``xi_c`` the
    background is instead :math:`\log_{10} \xi_c`, the correlation depth
    scale (infinite at criticality; drawn at the top of its colour bar).

    Args:
      sigma_w2: ``(W,)`` increasing; sigma_b2: ``(B,)`` increasing.
      chi1: ``(W, B)``, ``chi1[i, j]`` at ``(sigma_w2[i], sigma_b2[j])``
        (``np.meshgrid(..., indexing="ij")``).
      xi_c: ``(W, B)`` or None.
      empirical: None or ``(sigma_w2, sigma_b2, chi1)``: 1-D arrays of measured
        points, drawn as circles (measured χ₁ < 1) and triangles (χ₁ ≥ 1), whole
        inside the axes (:func:`padded_edges`); region labels avoid them
        (:func:`label_spot`) and the legend sits under the axes;
        a fourth array, theory's χ₁ at the same points, rings in red the points
        whose measured side disagrees with theory's; a fifth, the standard error of
        each measured log χ₁ (over seeds), rings in grey instead the points whose
        measured χ₁ is within :data:`EDGE_ERRORS` standard errors of 1: on the edge
        within Monte-Carlo error, neither agreeing nor disagreeing.
      critical: None, or ``(sigma_b2, sigma_w2)`` 1-D arrays of the critical line
        itself (``theory.critical_sigma_w2`` over a fine σ_b² grid), drawn
        instead of the contour of ``chi1`` (which a coarse mesh misplaces).
      beyond: what the χ₁ > 1 side is called: "chaotic", or for the relu family,
        where q* → ∞ there, e.g. "q* → ∞ (no chaotic phase)".
    """
    w, b, chi1 = _check_mesh(sigma_w2, sigma_b2, chi1, xi_c)
    measured = None if empirical is None else _measured_points(empirical)
    points = None if measured is None else measured[:2]  # (sigma_w2, sigma_b2)
    we, be = padded_edges(w, points and points[0]), padded_edges(b, points and points[1])
    fig, axes = panel_figure(1, 1, width=COLUMN_WIDTH, height=3.0)
    ax = axes[0, 0]
    if xi_c is not None:
        _draw_depth_scale(fig, ax, we, be, xi_c)
    else:
        _draw_phases(ax, we, be, chi1)
    line = _draw_critical_line(ax, w, b, chi1, critical)
    limits = ((we[0], we[-1]), (be[0], be[-1]))
    obstacles = [p for p in (points, line) if p is not None]
    _name_phases(ax, w, b, chi1, beyond, obstacles, limits)
    if measured is not None:
        _draw_measured(ax, *measured)
    if ax.get_legend_handles_labels()[0]:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2)
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel(r"$\sigma_b^2$")
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    return fig


def _check_mesh(sigma_w2, sigma_b2, chi1, xi_c) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sigma_w2, sigma_b2, chi1)`` as float arrays, once their shapes and order hold."""
    w, b = np.asarray(sigma_w2, np.float64), np.asarray(sigma_b2, np.float64)
    chi1 = np.asarray(chi1, np.float64)
    if w.ndim != 1 or b.ndim != 1 or w.size < 2 or b.size < 2:
        raise ValueError(
            f"sigma_w2 and sigma_b2 must be 1-D with >= 2 values; got {w.shape}, {b.shape}"
        )
    if np.any(np.diff(w) <= 0) or np.any(np.diff(b) <= 0):
        raise ValueError("sigma_w2 and sigma_b2 must be strictly increasing")
    for name, arr in (("chi1", chi1), ("xi_c", xi_c)):
        if arr is not None and np.shape(arr) != (w.size, b.size):
            hint = "; pass its transpose (.T)" if np.shape(arr) == (b.size, w.size) else ""
            raise ValueError(
                f"{name} has shape {np.shape(arr)}; expected (len(sigma_w2), len(sigma_b2)) = {(w.size, b.size)}{hint}"
            )
    return w, b, chi1


EDGE_ERRORS = 2.0  # a measured χ₁ within this many standard errors of 1 is on the edge


def edge_classes(measured, theory, log_se=None) -> np.ndarray:
    """Each measured χ₁ against theory's: ``"same"`` side, ``"other"`` side, or ``"edge"``,
    where ``|log χ̂₁| <= EDGE_ERRORS · log_se`` (the measurement cannot tell the side:
    ReLU at σ_w² = 2 has χ₁ = 1 exactly, and its measured 1.009 is not a miss). Sides as
    the figure draws them: measured χ₁ ≥ 1 against theory's χ₁ > 1."""
    measured, theory = np.asarray(measured, np.float64), np.asarray(theory, np.float64)
    out = np.where((measured >= 1) == (theory > 1), "same", "other").astype(object)
    if log_se is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            edge = np.abs(np.log(measured)) <= EDGE_ERRORS * np.asarray(log_se, np.float64)
        out[edge] = "edge"
    return out


def _measured_points(empirical) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """``(sigma_w2, sigma_b2, chi1, [theory's chi1[, log se]])`` of the measured points, 1-D,
    checked."""
    ew, eb, ec, *th = (np.asarray(e, np.float64).reshape(-1) for e in empirical)
    if not ew.shape == eb.shape == ec.shape or any(t.shape != ec.shape for t in th):
        raise ValueError(
            f"empirical arrays differ in length: {[a.shape for a in (ew, eb, ec, *th)]}"
        )
    return ew, eb, ec, th


def _draw_depth_scale(fig: Figure, ax, we: np.ndarray, be: np.ndarray, xi_c) -> None:
    """The background: log10 of the depth scale ξ_c, infinite drawn as its largest finite
    value and undefined grey, with its colour bar."""
    xi = np.asarray(xi_c, np.float64)
    finite = np.isfinite(xi) & (xi > 0)
    top = np.log10(xi[finite].max()) if finite.any() else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        shown = np.where(np.isposinf(xi), top, np.log10(np.where(finite, xi, np.nan)))
    cmap = mpl.colormaps["viridis"].with_extremes(bad="#E4E4E4")  # ξ_c undefined: q* = ∞
    mesh = ax.pcolormesh(we, be, np.ma.masked_invalid(shown.T), shading="flat", cmap=cmap)
    fig.colorbar(mesh, ax=ax, label=r"$\log_{10} \xi_c$ (layers)")


def _draw_phases(ax, we: np.ndarray, be: np.ndarray, chi1: np.ndarray) -> None:
    """The background: the ordered phase shaded blue, the chaotic orange."""
    ax.pcolormesh(
        we,
        be,
        (chi1 > 1).T.astype(float),
        shading="flat",
        cmap=ListedColormap([PALETTE[5], PALETTE[4]]),
        vmin=0,
        vmax=1,
        alpha=0.35,
        linewidth=0,
    )


def _draw_critical_line(ax, w, b, chi1, critical) -> tuple[np.ndarray, np.ndarray] | None:
    """χ₁ = 1: the ``critical`` line when given (returned, ``(sigma_w2, sigma_b2)``), else
    the contour of ``chi1`` where the mesh crosses 1 (None)."""
    finite = chi1[np.isfinite(chi1)]
    if critical is not None:
        cb, cw = (np.asarray(c, np.float64).reshape(-1) for c in critical)
        if cb.shape != cw.shape:
            raise ValueError(
                f"critical: sigma_b2 and sigma_w2 differ in length: {cb.shape}, {cw.shape}"
            )
        ax.plot(cw, cb, color="black", linewidth=1.2, label=r"$\chi_1 = 1$")
        return cw, cb
    if finite.size and finite.min() < 1.0 < finite.max():
        ax.contour(w, b, chi1.T, levels=[1.0], colors="black", linewidths=1.2)
    return None


def _name_phases(ax, w, b, chi1, beyond: str, obstacles, limits) -> None:
    """ "ordered" and ``beyond`` (χ₁ > 1), each boxed where it keeps clearest of the
    ``obstacles`` (:func:`label_spot`)."""
    for mask, text in (
        (chi1 < 1, "ordered\n$\\chi_1 < 1$"),
        (chi1 > 1, f"{beyond}\n$\\chi_1 > 1$"),
    ):
        if mask.any():
            x, y = label_spot(w, b, mask, obstacles, limits, _label_half_size(text))
            ax.text(
                x,
                y,
                text,
                ha="center",
                va="center",
                fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0},
            )


def _label_half_size(text: str) -> tuple[float, float]:
    """About half the width and height of a 7-point label, in fractions of the axes (the
    mathtext χ₁ counted as its plain "x1")."""
    lines = text.replace("$\\chi_1 < 1$", "x1 < 1").replace("$\\chi_1 > 1$", "x1 > 1")
    chars = max(len(t) for t in lines.split("\n"))
    return (
        0.5 * 0.6 * 7 / 72 * chars / AXES_INCHES[0] + 0.02,
        0.5 * 1.3 * 7 / 72 * len(lines.split("\n")) / AXES_INCHES[1] + 0.02,
    )


def _draw_measured(ax, ew, eb, ec, th) -> None:
    """The measured points: circles where χ₁ < 1, triangles else; with theory's χ₁ (``th``,
    one array or none), red rings round those on the other side from theory's."""
    for mask, marker, color, label in (
        (ec < 1, "o", PALETTE[0], r"measured $\chi_1 < 1$"),
        (ec >= 1, "^", PALETTE[1], r"measured $\chi_1 \geq 1$"),
    ):
        ax.scatter(
            ew[mask],
            eb[mask],
            marker=marker,
            s=14,
            color=color,
            edgecolors="black",
            linewidths=0.4,
            label=label,
            zorder=3,
        )
    if th:
        classes = edge_classes(ec, th[0], th[1] if len(th) > 1 else None)
        for cls, color, text in (
            ("other", "#b2182b", "off theory's side"),
            ("edge", "#777777", "on the edge within error"),
        ):
            ring = classes == cls
            if cls == "edge" and not ring.any():
                continue
            ax.scatter(
                ew[ring],
                eb[ring],
                marker="o",
                s=60,
                facecolors="none",
                edgecolors=color,
                linewidths=1.0,
                zorder=4,
                label=f"{text} ({int(ring.sum())}/{ring.size})",
            )


AXES_INCHES = (2.2, 1.8)  # about a phase diagram's axes, for sizing its labels
PAD = 0.04  # a phase diagram's margin beyond its outermost cells and points, of each range


def padded_edges(centres: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
    """Cell edges around increasing ``centres`` (midpoints between them), the outer two
    moved out to cover ``points`` too and a margin of ``PAD`` of the range, so that markers
    on the outermost values sit whole inside the axes (on the edge, the axes cut them in
    half or they overlap the title) and the background reaches the axes' edge."""
    c = np.asarray(centres, np.float64)
    lo, hi = c[0], c[-1]
    if points is not None and np.size(points):
        lo, hi = min(lo, float(np.min(points))), max(hi, float(np.max(points)))
    pad = PAD * (hi - lo)
    mid = (c[:-1] + c[1:]) / 2
    return np.concatenate(
        [[min(lo - pad, c[0] - (mid[0] - c[0]))], mid, [max(hi + pad, c[-1] + (c[-1] - mid[-1]))]]
    )


def label_spot(
    sigma_w2, sigma_b2, mask, obstacles, limits, half_size=(0.15, 0.08)
) -> tuple[float, float]:
    """Where a region's label goes: the mesh point in ``mask`` (``(W, B)``) whose box of
    ``half_size`` (half width and height, in axes fractions) stays farthest from every
    obstacle (``(x, y)`` arrays: the measured points, the critical line), inside the axes
    when it can. Distances are in units of the box, so a wide label keeps clear sideways.
    The region's centroid put the "ordered" box over measured points."""
    (x0, x1), (y0, y1) = limits
    hw, hh = half_size
    ww, bb = np.meshgrid(
        np.asarray(sigma_w2, np.float64), np.asarray(sigma_b2, np.float64), indexing="ij"
    )
    u, v = (ww[mask] - x0) / (x1 - x0), (bb[mask] - y0) / (y1 - y0)
    clearance = np.minimum.reduce([u / hw, (1 - u) / hw, v / hh, (1 - v) / hh])
    for ox, oy in obstacles:
        ou = (np.asarray(ox, np.float64).reshape(-1) - x0) / (x1 - x0)
        ov = (np.asarray(oy, np.float64).reshape(-1) - y0) / (y1 - y0)
        d = np.maximum(np.abs(u[:, None] - ou[None]) / hw, np.abs(v[:, None] - ov[None]) / hh)
        clearance = np.minimum(clearance, d.min(axis=1))
    k = int(np.argmax(clearance))
    return float(ww[mask][k]), float(bb[mask][k])


def trainability(
    sigma_w2,
    depths,
    accuracy,
    *,
    xi_c=None,
    critical: float | None = None,
    factor: float = 6.0,
    chance: float | None = None,
) -> Figure:
    r"""Accuracy after training over :math:`(\sigma_w^2, L)`, with theory's depth bound.

    Schoenholz et al. 2017 (*Deep Information Propagation*, §5, Fig. 5–6): a network
    trains only where its depth is within a few correlation depth scales,
    :math:`L \lesssim 6\,\xi_c(\sigma_w^2)`, a band around the edge of chaos that widens
    as :math:`\xi_c \to \infty` there.

    Args:
      sigma_w2: ``(W,)`` increasing weight variances (times the fan-in).
      depths: ``(D,)`` increasing depths.
      accuracy: ``(W, D)`` accuracies in [0, 1], ``accuracy[i, j]`` at
        ``(sigma_w2[i], depths[j])`` (a seed mean).
      xi_c: None, or ``(s, xi)``: 1-D arrays of σ_w² (a fine grid) and theory's ξ_c
        there; ``factor · xi`` is drawn as a white-edged black curve, clipped to the axes.
      critical: None, or the critical σ_w² (χ₁ = 1), drawn as a dashed vertical line.
      factor: the bound's multiple of ξ_c (the paper's 6).
      chance: None, or the accuracy of a guess (0.1 for 10 classes), the colour scale's
        bottom.
    """
    w = np.asarray(sigma_w2, np.float64)
    d = np.asarray(depths, np.float64)
    acc = np.asarray(accuracy, np.float64)
    if w.ndim != 1 or d.ndim != 1 or acc.shape != (w.size, d.size):
        raise ValueError(
            f"trainability: accuracy must be (len(sigma_w2), len(depths)) = ({w.size}, "
            f"{d.size}); got {acc.shape}"
        )
    if w.size < 2 or d.size < 2 or np.any(np.diff(w) <= 0) or np.any(np.diff(d) <= 0):
        raise ValueError("trainability: sigma_w2 and depths must each be 2+ increasing values")
    fig, axes = panel_figure(1, 1, width=COLUMN_WIDTH + 0.6, height=3.0)
    ax = axes[0, 0]
    we, de = padded_edges(w), padded_edges(d)
    mesh = ax.pcolormesh(
        we,
        de,
        acc.T,
        cmap="viridis",
        vmin=0.0 if chance is None else chance,
        vmax=1.0,
        shading="flat",
    )
    fig.colorbar(mesh, ax=ax, label="accuracy")
    if xi_c is not None:
        s, xi = (np.asarray(a, np.float64) for a in xi_c)
        bound = np.where(np.isfinite(xi), factor * xi, de[-1] * 10)
        for colour, lw in (("white", 2.6), ("black", 1.2)):
            ax.plot(
                s,
                bound,
                color=colour,
                linewidth=lw,
                label=None if colour == "white" else f"{factor:g} ξ_c (theory)",
            )
    if critical is not None:
        ax.axvline(
            critical,
            color="white",
            linestyle="--",
            linewidth=1.0,
            label=f"critical σ_w² = {critical:.3g}",
        )
    ax.set_xlim(we[0], we[-1])
    ax.set_ylim(de[0], de[-1])
    ax.set_xlabel("σ_w²")
    ax.set_ylabel("depth L (hidden layers)")
    if xi_c is not None or critical is not None:
        fig.legend(loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    return fig
