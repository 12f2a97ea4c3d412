r"""Tables of a sweep: per-layer statistics and a per-activation verdict, as text.

Both tables read a :class:`~jaxinit.Result` (of any kind) and nothing else::

    print(layer_table(res, init="he_normal", activation="relu"))          # markdown
    print(summary_table(res, band=(0.5, 2.0), limits=(1e-3, 1e3), fmt="text"))
    open("summary.csv", "w").write(summary_table(res, fmt="csv"))

**Layers** are numbered from 1 (nearest the input) to :math:`L` in tables and
figures; layer :math:`\ell` is index :math:`\ell - 1` of the arrays. "Depth
:math:`d`" means after :math:`d` layers.

**The variance ratio** of layer :math:`\ell` is
:math:`r_\ell = \mathrm{Var}(z_\ell) / v_\mathrm{ref}` per seed, averaged over
seeds geometrically, :math:`\exp \overline{\log r_\ell}` (variances multiply
from layer to layer, so the log is the scale on which seeds average). The
reference :math:`v_\mathrm{ref}` is chosen by ``reference``:

- ``"layer0"`` (default): the same field at layer 1 of the same network and
  seed, so :math:`r_1 = 1`. This measures *propagation* through depth and
  leaves out the first layer's own scale, which sets the network's operating
  point (He/ReLU keeps :math:`\mathrm{Var}(z_\ell) \approx 2\,\mathbb{E}[x^2]`
  at every layer: a ratio of 1 here, 2 against the input).
- ``"input"``: the input's per-feature second moment :math:`\mathbb{E}[x^2]`,
  which is what enters layer 1 (:math:`\mathrm{Var}(z_1) = \sigma_w^2
  \mathbb{E}[x^2] + \sigma_b^2`). Taken from ``attrs["input_second_moment"]``
  when recorded, else from the grid's generated inputs (gaussian 1, uniform
  :math:`U[0, 1)` 1/3); an array input without the record raises.

Results with more dims than (init, activation, seed) are reduced first: a
``depth`` dim takes the deepest network unless told (a depth-:math:`L`
network is the first :math:`L` layers of the deepest; only the gradients
differ), and any other dim with several labels must be selected by keyword.
See Schoenholz et al. 2017, *Deep Information Propagation*,
https://arxiv.org/abs/1611.01232, for why these ratios drift geometrically
away from criticality.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxinit._checks import check_choice, closest_hint
from jaxinit._results import Result
from jaxinit.sweeping import INPUT_MOMENTS

__all__ = [
    "FORMATS",
    "OUTCOME_RULE",
    "REFERENCES",
    "View",
    "classify",
    "input_second_moment",
    "layer_table",
    "reference_ratio",
    "render",
    "require_layer_field",
    "summary_table",
    "variance_ratio",
    "view",
]

FORMATS = ("markdown", "text", "csv", "html")
REFERENCES = ("layer0", "input")
COMBO_DIMS = ("init", "activation", "seed")
MISSING = "—"


class View(NamedTuple):
    """A result reduced to the dims (init, activation, seed), each present.

    A dim the result lacks (a theory without seeds, a training run without an
    activation dim) or that was selected away has one label.
    """

    inits: tuple  # (I,) labels
    activations: tuple  # (A,) labels; (None,) when the result has no such dim
    seeds: tuple  # (S,) labels; (None,) when the result has no such dim
    fields: dict[str, np.ndarray]  # name -> (I, A, S, *own dims), layer axes cut to n_layers
    field_dims: dict[str, tuple[str, ...]]  # name -> own dims, e.g. ("layer",)
    attrs: dict[str, Any]  # the result's attrs
    fixed: dict[str, Any]  # dims selected away -> their label, e.g. {"width": 16}
    n_layers: int | None  # L, or None when no field has a layer dim


def view(
    res: Result, selection: Mapping[str, Any] | None = None, *, depth: int | None = None
) -> View:
    """Selects, picks a depth, and lays every field out as ``(init, activation, seed, ...)``.

    ``depth`` (an int) selects that label of a ``depth`` dim, else cuts the
    layers to the first ``depth``; None takes the deepest network.
    """
    if not isinstance(res, Result):
        raise TypeError(f"expected a jaxinit Result; got {type(res).__name__}")
    for name, arr in res.fields.items():
        if arr.dtype.kind == "c":
            raise ValueError(
                f"field {name!r} is complex ({arr.dtype}); reports tabulate and plot real "
                "numbers. Store its real part, magnitude or phase as a field of its own "
                "(Result(..., fields={..., name: np.abs(z)}))"
            )
    selection = dict(selection or {})
    if "depth" in res.dims and "depth" not in selection:
        labels = res.coords["depth"]
        selection["depth"] = depth if depth in labels else max(labels)
    out = res.sel(**selection)
    fixed = {}
    for d, label in selection.items():
        if not isinstance(label, (list, tuple, np.ndarray)):  # canonical label of an alias
            fixed[d] = res.sel(**{d: [label]}).coords[d][0]
    for d in [d for d in out.dims if d not in COMBO_DIMS]:
        labels = out.coords[d]
        if len(labels) > 1:
            raise ValueError(
                f"the result has {len(labels)} {d} labels {list(labels)}; select one, "
                f"e.g. {d}={labels[0]!r}"
            )
        fixed[d] = labels[0]
        out = out.sel(**{d: labels[0]})
    layers = {
        a.shape[len(out.dims) + own.index("layer")]
        for own, a in ((out.field_dims[k], a) for k, a in out.fields.items())
        if "layer" in own
    }
    available = max(layers) if layers else None
    n_layers = fixed.get("depth", available)
    if depth is not None:
        if available is None or not 1 <= depth <= available:
            raise ValueError(f"depth={depth!r} is not within the result's 1..{available} layers")
        n_layers = depth
    k = len(out.dims)
    order = [*out.dims, *(d for d in COMBO_DIMS if d not in out.dims)]
    perm = [order.index(d) for d in COMBO_DIMS]
    fields = {}
    for name, arr in out.fields.items():
        a = arr.reshape(arr.shape[:k] + (1,) * (3 - k) + arr.shape[k:])
        a = np.transpose(a, [*perm, *range(3, a.ndim)])
        own = out.field_dims[name]
        if "layer" in own and n_layers is not None:
            a = np.take(a, np.arange(n_layers), axis=3 + own.index("layer"))
        fields[name] = a
    labels = {d: out.coords.get(d, (fixed.get(d),)) for d in COMBO_DIMS}
    return View(
        labels["init"],
        labels["activation"],
        labels["seed"],
        fields,
        dict(out.field_dims),
        dict(out.attrs),
        fixed,
        n_layers,
    )


def input_second_moment(attrs: Mapping[str, Any]) -> float:
    """The inputs' per-feature :math:`\\mathbb{E}[x^2]`, from a result's attrs."""
    if "input_second_moment" in attrs:
        return float(attrs["input_second_moment"])
    inputs = (attrs.get("grid") or {}).get("inputs")
    if inputs in INPUT_MOMENTS:
        return INPUT_MOMENTS[inputs][1]
    raise ValueError(
        f"reference='input' needs the inputs' second moment: attrs record inputs={inputs!r} "
        "and no 'input_second_moment'; use reference='layer0' or record it in attrs"
    )


def require_layer_field(field_dims: Mapping[str, tuple[str, ...]], field: str) -> None:
    """A ValueError unless ``field`` is a per-layer field (own dims ending in "layer")."""
    layered = [k for k, own in field_dims.items() if own[-1:] == ("layer",)]
    if field not in layered:
        hint = closest_hint(field, layered)
        raise ValueError(
            f"field={field!r} is not a per-layer field of the result; choose {layered}.{hint}"
        )


def reference_ratio(arr: np.ndarray, reference: str, attrs: Mapping[str, Any]) -> np.ndarray:
    """``arr (..., layer)`` over its reference, per network."""
    check_choice("reference", reference, REFERENCES)
    ref = arr[..., :1] if reference == "layer0" else input_second_moment(attrs)
    with np.errstate(divide="ignore", invalid="ignore"):
        return arr / ref


def variance_ratio(res: Result, *, field: str = "pre_var", reference: str = "layer0"):
    """``res.<field>`` divided by its reference variance (see the module doc), same shape."""
    require_layer_field(res.field_dims, field)
    return reference_ratio(np.asarray(res.fields[field], np.float64), reference, res.attrs)


def geomean(x: np.ndarray, axis: int) -> np.ndarray:
    """Geometric mean of non-negative values; 0 where any is 0, NaN where any is NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp(np.mean(np.log(x), axis=axis))


class PlusMinus(NamedTuple):
    """A table cell ``mean ± std``; CSV writes it as two columns."""

    mean: float
    std: float


def _number(x: float, fmt: str) -> str:
    if x is None:
        return "" if fmt == "csv" else MISSING
    return f"{x:.9g}" if fmt == "csv" else f"{x:.4g}"


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """Renders cells (str, number, None, :class:`PlusMinus`) as markdown, text, csv or html."""
    check_choice("fmt", fmt, FORMATS)
    pm = [any(isinstance(r[j], PlusMinus) for r in rows) for j in range(len(columns))]
    if fmt == "csv":
        header = [h for j, c in enumerate(columns) for h in ((c, f"{c}_std") if pm[j] else (c,))]
        body = []
        for r in rows:
            line = []
            for j, cell in enumerate(r):
                if pm[j]:
                    cell = cell if isinstance(cell, PlusMinus) else PlusMinus(cell, None)
                    line += [_number(cell.mean, fmt), _number(cell.std, fmt)]
                else:
                    line.append(cell if isinstance(cell, str) else _number(cell, fmt))
            body.append(line)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *body])
        return buffer.getvalue()

    def text(cell):
        if isinstance(cell, PlusMinus):
            return _number(cell.mean, fmt) + ("" if cell.std is None else f" ± {cell.std:.2g}")
        return cell if isinstance(cell, str) else _number(cell, fmt)

    cells = [[text(c) for c in r] for r in rows]
    numeric = [all(not isinstance(r[j], str) for r in rows) for j in range(len(columns))]
    if fmt == "html":
        esc = html.escape
        head = "".join(f"<th>{esc(c)}</th>" for c in columns)
        trs = "".join(
            "<tr>"
            + "".join(
                f'<td class="{"num" if numeric[j] else "txt"}">{esc(c)}</td>'
                for j, c in enumerate(r)
            )
            + "</tr>\n"
            for r in cells
        )
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{trs}</tbody>\n</table>\n"
    widths = [
        max(len(c) for c in [columns[j], *(r[j] for r in cells)]) for j in range(len(columns))
    ]
    just = [str.rjust if n else str.ljust for n in numeric]
    line = lambda r: [just[j](c, widths[j]) for j, c in enumerate(r)]  # noqa: E731
    if fmt == "text":
        rule = ["-" * w for w in widths]
        return "\n".join("  ".join(line(r)).rstrip() for r in [columns, rule, *cells]) + "\n"
    rule = [
        ("-" * max(w - 1, 2) + ":") if n else "-" * max(w, 3)
        for w, n in zip(widths, numeric, strict=True)
    ]
    return (
        "\n".join(
            "| " + " | ".join(line(r) if r is not rule else r) + " |"
            for r in [columns, rule, *cells]
        )
        + "\n"
    )


def _seed_stat(a: np.ndarray) -> PlusMinus | float:
    """Mean over seeds (axis 0) and, with several seeds, their std."""
    with np.errstate(invalid="ignore"):
        return PlusMinus(float(a.mean()), float(a.std(ddof=1))) if a.size > 1 else float(a.mean())


def align(theory: Result, v: View, *, what: str = "theory") -> View:
    """The theory's view at the measured view's labels (inits, activations, fixed dims, layers)."""
    if not isinstance(theory, Result):
        raise TypeError(f"{what} must be a jaxinit Result; got {type(theory).__name__}")
    selection = {d: v.fixed[d] for d in v.fixed if d in theory.dims}
    for d, labels in (("init", v.inits), ("activation", v.activations)):
        if d in theory.dims and labels != (None,):
            selection[d] = list(labels)
    tv = view(theory, selection, depth=v.n_layers)
    if (len(tv.inits), len(tv.activations)) != (len(v.inits), len(v.activations)):
        raise ValueError(
            f"{what} has inits {list(tv.inits)} and activations {list(tv.activations)}; "
            f"the measured result has {list(v.inits)} and {list(v.activations)}"
        )
    return tv


THEORY_FIELDS = ("pre_var", "post_var", "grad_var")


def layer_table(
    res: Result,
    *,
    theory: Result | None = None,
    reference: str = "layer0",
    depth: int | None = None,
    fmt: str = "markdown",
    columns: Sequence[str] | None = None,
    **selection: Any,
) -> str:
    r"""Per layer of the selected networks: moments, ratio, saturation, gradients, theory.

    Columns: ``pre_mean``, ``pre_var``, ``post_mean``, ``post_var``, ``ratio``,
    ``saturated_pct``, ``dead_pct``, ``grad_var``. **ratio** is how far the
    pre-activation variance has moved from where it started:
    :math:`\mathrm{Var}(z_\ell)/\mathrm{Var}(z_1)` per seed (with
    ``reference="input"``, over the input's :math:`\mathbb{E}[x^2]` instead),
    averaged over seeds geometrically; 1 at every layer means the variance is
    kept, :math:`10^{-3}` that it vanished a thousandfold (the module doc has
    the details). The variances
    carry their seed std (``mean ± std``; a ``_std`` column in CSV). Fields the
    result lacks are left out. With ``theory`` (a Result with the same
    dims and field names, e.g. ``theory.predict(grid)``; a seed dim there is
    averaged), each of pre_var, post_var and grad_var that it holds adds
    ``<field>_theory`` and the signed ``<field>_rel_err`` right after the field
    :math:`= (\bar m - t)/t`. ``init`` and ``activation`` columns appear when
    the selection keeps several.

    Args:
      res: a sweep result; ``selection`` (e.g. ``init="he_normal"``) goes to ``sel``.
      theory: predictions to set beside the measurements, or None.
      reference: "layer0" or "input", the ratio's denominator.
      depth: which network of a ``depth`` dim, or how many layers; None: all.
      fmt: "markdown", "text", "csv" or "html".
      columns: the columns to keep, in the table's order (``layer`` and the
        init/activation labels always stay), e.g. ``["pre_var", "pre_var_theory",
        "ratio"]`` for a table that fits a terminal; None: all.

    Example:
      >>> print(layer_table(res, theory=theory, init="he_normal", activation="relu",
      ...                   columns=["pre_var", "pre_var_theory", "ratio"]))  # doctest: +SKIP
      | layer |     pre_var | pre_var_theory | ratio |
      ...
    """
    check_choice("fmt", fmt, FORMATS)
    v = view(res, selection, depth=depth)
    tv = None if theory is None else align(theory, v)
    f = v.fields
    if "pre_var" not in f:
        raise ValueError(f"layer_table needs the field 'pre_var'; the result has {list(f)}")
    ratio = geomean(reference_ratio(f["pre_var"], reference, v.attrs), axis=2)  # (I, A, L)
    stats = [k for k in ("pre_mean", "pre_var", "post_mean", "post_var") if k in f]
    tail = [k for k in ("saturated", "dead", "grad_var") if k in f]
    names = {"saturated": "saturated_pct", "dead": "dead_pct"}
    tcols = [k for k in THEORY_FIELDS if tv is not None and k in tv.fields and k in f]
    show = [
        d for d, labels in (("init", v.inits), ("activation", v.activations)) if len(labels) > 1
    ]
    header = [*show, "layer", *stats, "ratio", *(names.get(k, k) for k in tail)]
    header += [c for k in tcols for c in (f"{k}_theory", f"{k}_rel_err")]
    rows = []
    for i, init in enumerate(v.inits):
        for a, act in enumerate(v.activations):
            for l in range(v.n_layers):
                row = [{"init": init, "activation": act}[d] for d in show] + [l + 1]
                row += [_seed_stat(f[k][i, a, :, l]) for k in stats]
                row.append(float(ratio[i, a, l]))
                for k in tail:
                    cell = _seed_stat(f[k][i, a, :, l] * (100.0 if k in names else 1.0))
                    row.append(cell.mean if k in names and isinstance(cell, PlusMinus) else cell)
                for k in tcols:
                    t = float(np.mean(tv.fields[k][i, a, :, l]))
                    m = float(np.mean(f[k][i, a, :, l]))
                    with np.errstate(divide="ignore", invalid="ignore"):
                        row += [t, float(np.float64(m - t) / t)]
                rows.append(row)
    # theory and its relative error right after the field they predict, in view in a wide
    # table (they came last, past a dozen columns, off-screen in report.html)
    paired = {f"{k}_theory" for k in tcols} | {f"{k}_rel_err" for k in tcols}
    order = [
        header.index(c)
        for h in header
        if h not in paired
        for c in (h, *((f"{h}_theory", f"{h}_rel_err") if h in tcols else ()))
    ]
    header, rows = [header[j] for j in order], [[r[j] for j in order] for r in rows]
    if columns is not None:
        kept = set(show) | {"layer"}
        for c in [columns] if isinstance(columns, str) else columns:
            kept.add(check_choice("columns", c, header))
        keep = [j for j, c in enumerate(header) if c in kept]
        header, rows = [header[j] for j in keep], [[r[j] for j in keep] for r in rows]
    return render(header, rows, fmt)


SATURATED_LIMIT = 0.5  # a layer with this fraction of saturated units or more "saturates"
DEAD_LIMIT = 0.9  # one with this fraction of units exactly 0 or more "dies" (relu's is ~0.5)
GROWTH = 10.0  # beyond the band but within the limits: "grows" past ×10, "shrinks" below ÷10
OUTCOME_RULE = (
    "outcome, by the first layer where it happens: diverges (a non-finite value), vanishes "
    "(variance ratio < 1e-3), explodes (> 1e3), saturates (≥ 50% of units saturated), dies "
    "(≥ 90% exactly 0); else, at any layer, grows (ratio > 10) or shrinks (< 0.1); else drifts "
    "up or down (outside the band); else stable"
)


def classify(
    ratio: np.ndarray,
    *,
    band=(0.5, 2.0),
    limits=(1e-3, 1e3),
    saturated: np.ndarray | None = None,
    dead: np.ndarray | None = None,
) -> tuple[str, int | None]:
    """``(outcome, depth)`` of one network's per-layer ratios ``(layer,)`` (``OUTCOME_RULE``).

    The first layer with an event decides: a non-finite ratio "diverges", one
    below ``limits[0]`` "vanishes", above ``limits[1]`` "explodes", a
    ``saturated`` fraction ≥ ``SATURATED_LIMIT`` "saturates" (tanh under
    N(0, 1) weights keeps its variance but 78% of its units are pinned at ±1),
    a ``dead`` fraction ≥ ``DEAD_LIMIT`` "dies". Without any, a ratio beyond
    ``GROWTH``× "grows" or "shrinks", one outside ``band`` "drifts up" or
    "drifts down" (from its first such layer), and otherwise the network is
    "stable" (depth None).
    """
    n = len(ratio)
    sat = np.zeros(n) if saturated is None else np.asarray(saturated, np.float64)
    dead = np.zeros(n) if dead is None else np.asarray(dead, np.float64)
    for l, r in enumerate(ratio):
        if not np.isfinite(r):
            return "diverges", l + 1
        if r < limits[0]:
            return "vanishes", l + 1
        if r > limits[1]:
            return "explodes", l + 1
        if sat[l] >= SATURATED_LIMIT:
            return "saturates", l + 1
        if dead[l] >= DEAD_LIMIT:
            return "dies", l + 1
    for name, mask in (
        ("grows", ratio > GROWTH),
        ("shrinks", ratio < 1 / GROWTH),
        ("drifts up", ratio > band[1]),
        ("drifts down", ratio < band[0]),
    ):
        if mask.any():
            return name, int(np.flatnonzero(mask)[0]) + 1
    return "stable", None


def _interval(name: str, value: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (lo, hi); got {value!r}") from None
    if not 0 < lo < hi:
        raise ValueError(f"{name} must satisfy 0 < lo < hi; got {value!r}")
    return lo, hi


def summary_table(
    res: Result,
    *,
    depth: int | None = None,
    band=(0.5, 2.0),
    limits=(1e-3, 1e3),
    field: str = "pre_var",
    reference: str = "layer0",
    fmt: str = "markdown",
    **selection: Any,
) -> str:
    r"""Per activation and init: does the variance stay within ``band`` through depth L?

    One row per (activation, init), with the geometric seed mean of the
    ratio :math:`r_L` of ``field`` (see the module doc), ``in_band`` ("yes" when
    :math:`r_\ell \in` band for every :math:`\ell \le L`), the ``outcome`` of
    :func:`classify` (``OUTCOME_RULE``: the variance ratio, and the saturated and dead
    fractions per layer, seed means)
    and ``outcome_layer``, the first layer where it happened (— when stable; not the grid's
    depth, which is the number of layers), and the saturated
    and dead percentages at layer L (seed means) when recorded. A seed with a
    non-finite value at a layer makes that layer's ratio NaN: "diverges".
    """
    check_choice("fmt", fmt, FORMATS)
    band, limits = _interval("band", band), _interval("limits", limits)
    v = view(res, selection, depth=depth)
    require_layer_field(v.field_dims, field)
    per_seed = reference_ratio(v.fields[field], reference, v.attrs)  # (I, A, S, L)
    if "nonfinite" in v.fields:
        per_seed = np.where(v.fields["nonfinite"] > 0, np.nan, per_seed)
    ratio = geomean(per_seed, axis=2)
    extra = [(k, f"{k}_pct_at_L") for k in ("saturated", "dead") if k in v.fields]
    columns = ["activation", "init", "ratio_at_L", "in_band", "outcome", "outcome_layer"]
    columns += [c for _, c in extra]
    rows = []
    for a, act in enumerate(v.activations):
        for i, init in enumerate(v.inits):
            r = ratio[i, a]
            fractions = {
                k: v.fields[k][i, a].mean(0) for k in ("saturated", "dead") if k in v.fields
            }
            outcome, at = classify(r, band=band, limits=limits, **fractions)
            in_band = bool(np.all((r >= band[0]) & (r <= band[1])))
            row = [str(act), str(init), float(r[-1]), "yes" if in_band else "no", outcome]
            row.append(at)
            row += [float(100.0 * np.mean(v.fields[k][i, a, :, -1])) for k, _ in extra]
            rows.append(row)
    return render(columns, rows, fmt)
