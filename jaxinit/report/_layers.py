r"""A per-layer statistic against the layer's path: figures of :class:`jaxinit.ModelGrid` sweeps.

A model sweep's layers are module paths in call order (``"inp"``,
``"blocks/3/fc_in"``, ``"blocks/3"``, ``"(model)"``), recorded with their module
types in ``res.attrs["layers"]`` and ``res.attrs["layer_types"]``.
:func:`layer_profile` draws one field against them: one line per init (and per
result, given a mapping of named results), a seed statistic as the line and a
band of seed quantiles around it::

    fig = layer_profile(res, field="pre_var", layers="ResidualBlock")
    fig = layer_profile({"α = 1": a, "α = 1/√L": b}, layers=["inp", "ResidualBlock"])

``layers`` picks what is drawn: a module type name (``"Linear"``, ``"Conv"``,
``"ResidualBlock"``), ``"kernels"`` (the outputs of the kernel modules the grid
initialized), or a regex searched in the paths; a list is their union. Paths
that share a block (``blocks/3/...``) are grouped under one tick label with
alternate spans shaded, and labels are thinned to fit the axis, so a 40-layer
ResNet reads ``inp, blocks/0, ..., blocks/9, (model)``.

An MLP sweep (:func:`jaxinit.sweep` of a :class:`jaxinit.Grid`) has no paths: its
layers are labelled ``1`` to ``L`` and select by a regex on those numbers; its
activations are one line each.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from jaxinit._checks import check_choice
from jaxinit._results import SweepResult
from jaxinit.report import tables
from jaxinit.report.figures import (
    COLUMN_WIDTH,
    FULL_WIDTH,
    figure_legend,
    line_style,
    marker_layers,
    panel_figure,
    series_color,
    styled,
)

__all__ = [
    "CENTERS",
    "KERNELS",
    "MODEL_OUTPUT",
    "LayerSeries",
    "block_of",
    "layer_labels",
    "layer_profile",
    "layer_series",
    "layer_ticks",
    "select_layers",
]

CENTERS = ("mean", "median", "geomean")  # the seed statistic a line shows
KERNELS = "kernels"  # layers=KERNELS: the outputs of the kernel modules the grid initialized
MODEL_OUTPUT = "(model)"  # the model's own output (its module path is empty)
YSCALES = ("auto", "log", "linear")
DECADES_FOR_LOG = 1.0  # "auto" draws log y once the values span more than this many decades
TICK_INCHES = 0.2  # room each tick label takes along x (45° text at 6 pt, with air)
CLOSEST_LABELS = 0.6  # of the thinning step: nearer labels than this (the first, the last) drop
MINOR_TICKS_UP_TO = 100  # every layer gets a minor tick up to this many (past it, a ruler)
MODEL_FIELD_LABELS = {  # a model sweep's pre_* and post_* are both the captured output's
    "pre_var": r"$\mathrm{Var}$(layer output)",
    "post_var": r"$\mathrm{Var}$(layer output)",
    "pre_mean": "mean of the layer output",
    "post_mean": "mean of the layer output",
    "grad_var": r"$\mathrm{Var}(\partial L / \partial\,\mathrm{output})$",
    "weight_grad_norm": r"$\|\partial L / \partial W\|_F$",
    "saturated": "saturated fraction",
    "dead": "dead fraction",
    "cosine": "mean cosine between samples",
}
MLP_FIELD_LABELS = {
    "pre_var": r"$\mathrm{Var}(z_\ell)$",
    "post_var": r"$\mathrm{Var}(h_\ell)$",
    "grad_var": r"$\mathrm{Var}(\partial L / \partial z_\ell)$",
}


def layer_labels(res: SweepResult | tables.View, n_layers: int) -> tuple[list[str], list | None]:
    """``(labels, types)`` of a result's ``n_layers`` layers: a model sweep's paths
    (``""`` read as ``"(model)"``) and module types; ``"1"`` to ``"L"`` and None for a
    result without recorded paths (an MLP sweep)."""
    attrs = res.attrs
    paths = attrs.get("layers")
    if paths is None:
        return [str(l) for l in range(1, n_layers + 1)], None
    paths = [str(p) or MODEL_OUTPUT for p in paths]
    types = attrs.get("layer_types")
    if len(paths) != n_layers or (types is not None and len(types) != n_layers):
        raise ValueError(
            f"the result's attrs['layers'] names {len(paths)} layers and attrs['layer_types'] "
            f"{None if types is None else len(types)}, but its fields have {n_layers}"
        )
    return paths, None if types is None else [str(t) for t in types]


def select_layers(
    labels: Sequence[str],
    types: Sequence[str] | None,
    kernels: Sequence[str] | None,
    layers: str | Sequence[str] | None,
) -> np.ndarray:
    """Indices (call order) of the layers ``layers`` picks: each item a module type name,
    ``"kernels"`` or a regex searched in the labels; None: all."""
    if layers is None:
        return np.arange(len(labels))
    items = [layers] if isinstance(layers, str) else list(layers)
    if not items or not all(isinstance(i, str) for i in items):
        raise TypeError(
            "layers must be None, a string (a module type, 'kernels' or a regex) or a list "
            f"of them; got {layers!r}"
        )
    keep = np.zeros(len(labels), bool)
    for item in items:
        keep |= _matches(item, labels, types, kernels)
    if not keep.any():
        raise ValueError(f"layers={layers!r} selects no layer; {_valid_layers(labels, types)}")
    return np.flatnonzero(keep)


def _matches(item: str, labels, types, kernels) -> np.ndarray:
    if types is not None and item in types:
        return np.array([t == item for t in types])
    if item == KERNELS:
        if kernels is None:
            raise ValueError(
                "layers='kernels' needs a ModelGrid result (attrs['kernels'] lists its kernel "
                "modules); this result records none"
            )
        base = {str(k) for k in kernels}
        return np.array([label.split("#")[0] in base for label in labels])
    try:
        pattern = re.compile(item)
    except re.error as e:
        raise ValueError(
            f"layers: {item!r} is no module type of the result and no valid regex ({e}); "
            f"{_valid_layers(labels, types)}"
        ) from None
    return np.array([pattern.search(label) is not None for label in labels])


def _valid_layers(labels: Sequence[str], types: Sequence[str] | None) -> str:
    shown = ", ".join(labels[:6]) + (f", ... ({len(labels)} in all)" if len(labels) > 6 else "")
    if types is None:
        return (
            f"this result has no module paths (an MLP sweep): its layers are {shown}; a regex "
            "on those selects them (module types and 'kernels' need a ModelGrid result)"
        )
    return (
        f"choose a module type of {sorted(set(types))}, 'kernels', or a regex searched in "
        f"the layer paths ({shown})"
    )


class LayerSeries(NamedTuple):
    """One line of :func:`layer_profile`: its legend label and ``(seed, layer)`` values."""

    label: str
    values: np.ndarray  # (seed, selected layer), float64


def layer_series(
    res: SweepResult | Mapping[str, SweepResult],
    *,
    field: str = "pre_var",
    layers: str | Sequence[str] | None = None,
    names: Mapping[str, str] | None = None,
    **selection: Any,
) -> tuple[list[str], list[LayerSeries], bool]:
    """What :func:`layer_profile` draws: the selected layers' labels, one
    :class:`LayerSeries` per (result, init, activation), and whether the results are
    model sweeps (labelled by path). ``names`` renames inits, activations and results in
    the labels."""
    names = dict(names or {})
    runs = _runs(res)
    chosen, series, model = None, [], None
    for name, r in runs.items():
        v = tables.view(r, selection)
        tables.require_layer_field(v.field_dims, field)
        labels, types = layer_labels(v, v.n_layers)
        idx = select_layers(labels, types, v.attrs.get("kernels"), layers)
        picked = [labels[i] for i in idx]
        if chosen is None:
            chosen, model = picked, types is not None
        elif picked != chosen:
            raise ValueError(
                f"the results' layers differ: {name!r} has {_short(picked)} where the first "
                f"has {_short(chosen)}; compare results of one model structure"
            )
        arr = np.asarray(v.fields[field], np.float64)[..., idx]  # (I, A, S, n)
        for i, init in enumerate(v.inits):
            for a, act in enumerate(v.activations):
                parts = [
                    name,
                    None if name is not None and len(v.inits) == 1 else init,
                    act if len(v.activations) > 1 else None,
                ]
                label = " · ".join(names.get(str(p), str(p)) for p in parts if p is not None)
                series.append(LayerSeries(label, arr[i, a]))
    return chosen, series, model


def _runs(res) -> dict[str | None, SweepResult]:
    if isinstance(res, SweepResult):
        return {None: res}
    if isinstance(res, Mapping):
        if not res:
            raise ValueError("layer_profile: the mapping of results is empty")
        for name, r in res.items():
            if not isinstance(r, SweepResult):
                raise TypeError(
                    f"layer_profile: {name!r} maps to a {type(r).__name__}, not a SweepResult"
                )
        return {str(k): v for k, v in res.items()}
    raise TypeError(
        f"layer_profile takes a SweepResult or a mapping of names to them; got {type(res).__name__}"
    )


def _short(labels: Sequence[str]) -> str:
    return str(list(labels[:4]))[:-1] + (f", ... ({len(labels)})]" if len(labels) > 4 else "]")


def block_of(label: str) -> str:
    """The block a layer path belongs to: its first two components when the second is an
    index (``"blocks/3/fc_in"`` and ``"blocks/3"`` -> ``"blocks/3"``), else the path."""
    parts = label.split("/")
    return "/".join(parts[:2]) if len(parts) >= 2 and parts[1].split("#")[0].isdigit() else label


class Ticks(NamedTuple):
    major: np.ndarray  # positions that carry a label
    texts: list[str]
    minor: np.ndarray  # every layer's position (none past MINOR_TICKS_UP_TO layers)
    spans: list[tuple[int, int]]  # (first, last) layer of each block of several layers


def layer_ticks(labels: Sequence[str], axis_inches: float) -> Ticks:
    """Tick positions and labels for ``labels`` along an axis ``axis_inches`` long.

    Layers of one block (:func:`block_of`) share a tick at the block's centre, named by
    the block; then at most one label every ``TICK_INCHES`` survives: the first, the
    last, and the blocks whose index is a multiple of k = 1, 2, 5, 10, 20, 25, 50, ...
    (:func:`_thinned`), so the labels never overlap; every layer keeps a minor tick
    (up to ``MINOR_TICKS_UP_TO`` layers).
    """
    n = len(labels)
    groups: list[tuple[str, int, int]] = []
    for i, label in enumerate(labels):
        b = block_of(label)
        if groups and groups[-1][0] == b:
            groups[-1] = (b, groups[-1][1], i)
        else:
            groups.append((b, i, i))
    if len(groups) < n:  # something grouped: one tick per block
        pos = np.array([(f + l) / 2 for _, f, l in groups])
        texts = [g for g, _, _ in groups]
        spans = [(f, l) for _, f, l in groups if l > f]
    else:
        pos, texts, spans = np.arange(n, dtype=float), list(labels), []
    fit = max(2, int(axis_inches / TICK_INCHES))
    if len(pos) > fit:
        keep = _thinned(texts, _nice_step(math.ceil(len(pos) / fit)))
        pos, texts = pos[keep], [texts[k] for k in keep]
    minor = np.arange(n, dtype=float) if n <= MINOR_TICKS_UP_TO else np.array([])
    return Ticks(pos, texts, minor, spans)


def _thinned(texts: Sequence[str], step: int) -> list[int]:
    """Which of ``texts`` keep their label: the first, the last, and between them those whose
    block index is a multiple of ``step`` (``blocks/0``, ``blocks/5``, ... after ``inp``),
    or every ``step``-th where the paths hold no index; none nearer its neighbour than
    ``CLOSEST_LABELS * step``."""
    index = [_block_index(t) for t in texts]
    if sum(i is not None for i in index) * 2 >= len(texts):
        middle = [k for k, i in enumerate(index) if i is not None and i % step == 0]
    else:
        middle = list(range(0, len(texts), step))
    last, gap = len(texts) - 1, CLOSEST_LABELS * step
    keep = [0]
    for k in middle:
        if k - keep[-1] >= gap and last - k >= gap:
            keep.append(k)
    return [*keep, last]


def _block_index(label: str) -> int | None:
    """The index in a path (``blocks/12`` -> 12) or a layer number (``"12"``), else None."""
    if label.isdigit():
        return int(label)
    parts = label.split("/")
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def _nice_step(at_least: int) -> int:
    """The least of 1, 2, 5, 10, 20, 25, 50, 100, ... that is ``>= at_least``: labels
    every 10th block read as convs/0, convs/10, ..., not convs/7, convs/14."""
    scale = 1
    while True:
        for m in (1, 2, 2.5, 5):
            if float(m * scale).is_integer() and m * scale >= at_least:
                return int(m * scale)
        scale *= 10


def _center(y: np.ndarray, center: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN layers stay NaN
        if center == "mean":
            return np.nanmean(y, axis=0)
        if center == "median":
            return np.nanmedian(y, axis=0)
        return tables.geomean(np.where(y > 0, y, np.nan), axis=0)


def _quantiles(y: np.ndarray, band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(y, band, axis=0)
    return lo, hi


def _check_band(band) -> tuple[float, float] | None:
    if band is None:
        return None
    try:
        lo, hi = (float(b) for b in band)
    except (TypeError, ValueError):
        raise ValueError(f"band must be (lo, hi) quantiles or None; got {band!r}") from None
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"band must be quantiles 0 <= lo < hi <= 1; got {band!r}")
    return lo, hi


def _log_scale(values: list[np.ndarray], yscale: str) -> bool:
    if yscale != "auto":
        return yscale == "log"
    v = np.concatenate([np.ravel(a) for a in values])
    v = v[np.isfinite(v)]
    if not v.size or (v <= 0).any():
        return False
    return math.log10(v.max() / v.min()) > DECADES_FOR_LOG


def band_label(center: str, band: tuple[float, float] | None) -> str:
    """What the lines and bands of :func:`layer_profile` are, for a legend."""
    line = {"mean": "seed mean", "median": "seed median", "geomean": "seed geometric mean"}
    if band is None:
        return f"line: {line[center]}"
    return f"line: {line[center]}; band: {band[0]:.0%}–{band[1]:.0%} of seeds"


@styled
def layer_profile(
    res: SweepResult | Mapping[str, SweepResult],
    *,
    field: str = "pre_var",
    layers: str | Sequence[str] | None = None,
    center: str = "mean",
    band: tuple[float, float] | None = (0.1, 0.9),
    yscale: str = "auto",
    ax=None,
    title: str | None = None,
    names: Mapping[str, str] | None = None,
    legend: bool = True,
    **selection: Any,
) -> Figure:
    r"""A per-layer ``field`` against the layer (call order): one line per init.

    Args:
      res: a :class:`~jaxinit.SweepResult` of a :class:`~jaxinit.ModelGrid` sweep, or a
        mapping ``{name: result}`` of sweeps of one structure (a ResNet at α = 1 and at
        α = 1/√L), drawn together and named in the legend. An MLP sweep's layers are
        ``1`` to ``L`` (one line per init and activation).
      field: a per-layer field (``pre_var``, ``pre_mean``, ``grad_var``, ...).
      layers: None (all); a module type name (``"Conv"``, ``"ResidualBlock"``),
        ``"kernels"`` (the kernel modules' outputs), or a regex searched in the layer
        paths; a list of them selects their union, in call order.
      center: the line's seed statistic, one of ``CENTERS``.
      band: ``(lo, hi)`` seed quantiles shaded around each line (None: no band;
        drawn only over several seeds).
      yscale: ``"auto"`` (log when every value is positive and they span more than a
        decade), ``"log"`` or ``"linear"``.
      ax: an axes to draw into (the legend goes in it); None: a new figure, legend under.
      title: the axes' title.
      names: display names for inits, activations or results in the legend
        (``{"delta_orthogonal(scale=1.4142135623730951)": "delta-orthogonal"}``).
      legend: draw the legend (with the band's meaning); False leaves it to the caller,
        who composes panels (the lines carry their labels: ``ax.get_legend_handles_labels``).
      selection: goes to ``res.sel`` (e.g. ``init="he_normal"``).

    Ticks name the layers by path; layers of one block share a tick (the block's path)
    and alternate blocks are shaded; labels are thinned to fit (:func:`layer_ticks`).
    """
    check_choice("center", center, CENTERS)
    check_choice("yscale", yscale, YSCALES)
    band = _check_band(band)
    labels, series, model = layer_series(res, field=field, layers=layers, names=names, **selection)
    x = np.arange(len(labels))
    lines = [(s.label, _center(s.values, center), s.values) for s in series]
    bands = [
        _quantiles(y, band) if band is not None and y.shape[0] > 1 else None for *_, y in lines
    ]
    log = _log_scale([c for _, c, _ in lines] + [b for bb in bands if bb for b in bb], yscale)
    own = ax is None
    if own:
        width = FULL_WIDTH if len(labels) > 12 else COLUMN_WIDTH + 0.6
        fig, axes = panel_figure(1, 1, width=width, height=2.9 + 0.15 * len(series) // 3)
        ax = axes[0, 0]
    else:
        fig = ax.figure
    for k, ((label, c, _), b) in enumerate(zip(lines, bands, strict=True)):
        style = line_style(k) | {"markevery": marker_layers(len(x), k).tolist()}
        ax.plot(x, c, label=label, **style)
        if b is not None:
            ax.fill_between(x, *b, color=series_color(k), alpha=0.2, linewidth=0)
    if log:
        ax.set_yscale("log", nonpositive="mask")
    _label_layers(ax, labels, fig)
    ax.set_ylabel((MODEL_FIELD_LABELS if model else MLP_FIELD_LABELS).get(field, field))
    ax.grid(True, axis="y", linewidth=0.3, alpha=0.5)
    if title is not None:
        ax.set_title(title)
    handles = [Line2D([], [], **line_style(k), label=label) for k, (label, *_) in enumerate(lines)]
    handles.append(Patch(facecolor="0.5", alpha=0.3, linewidth=0, label=band_label(center, band)))
    if legend and own:
        figure_legend(fig, handles)
    elif legend:
        ax.legend(handles=handles, fontsize=6)
    return fig


def _label_layers(ax, labels: Sequence[str], fig: Figure) -> None:
    """Path ticks (:func:`layer_ticks`) for the axes' width, alternate blocks shaded."""
    bbox = ax.get_position()
    ticks = layer_ticks(labels, max(1.0, bbox.width * fig.get_figwidth() - 0.2))
    for j, (first, last) in enumerate(ticks.spans):
        if j % 2 == 0:
            ax.axvspan(first - 0.5, last + 0.5, color="0.5", alpha=0.08, linewidth=0, zorder=0)
    if ticks.minor.size:
        ax.set_xticks(ticks.minor, minor=True)
    ax.set_xticks(ticks.major, labels=ticks.texts, rotation=45, ha="right", fontsize=6)
    ax.tick_params(axis="x", which="major", pad=1)
    for text in ax.get_xticklabels():
        text.set_rotation_mode("anchor")
    ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_xlabel("layer (call order)")
