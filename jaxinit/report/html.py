"""One self-contained ``report.html``: figures inlined, tables, and the run's provenance.

::

    paths = report_sweep(res, "out/report", theory=ji.theory.predict(grid))
    paths.html        # out/report/report.html: open it anywhere, offline
    paths.figures     # out/report/figures/*.png, each also inlined in the page
    paths.tables      # out/report/tables/*.csv and *.md

The page references nothing outside itself: figures are PNG ``data:`` URIs,
styles are inline, and there are no scripts. Provenance comes from the
result's ``attrs`` (the grid as described by the sweep, the PRNG
implementation) and from the installed versions of jax, jaxlib, flax, numpy,
matplotlib and jaxinit, with the time the report was written (UTC). Files are
written atomically (a temporary name, then ``os.replace``).
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxinit._checks import check_path
from jaxinit._host import source_revision, versions
from jaxinit._io import atomic_write, make_dirs
from jaxinit._results import Result, SweepResult
from jaxinit.report import figures, scaling, tables, training
from jaxinit.report._layers import layer_profile
from jaxinit.training._coord import FINAL_LOSS, final_loss

__all__ = ["ReportPaths", "Section", "provenance", "report_sweep", "report_train", "write_report"]

CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.15rem 0.45rem; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: #555; }
pre { background: #f7f7f7; padding: 0.5rem; overflow-x: auto; font-size: 0.8rem;
      white-space: pre-wrap; }
.table-box { overflow-x: auto; max-width: 100%; }  /* a wide table scrolls in its box */
td { white-space: nowrap; }  /* "1.23 ± 0.04" stays on one line */
nav.toc { font-size: 0.9rem; } nav.toc ol { margin: 0.2rem 0 1rem; }
@media print {  /* on paper nothing scrolls: landscape, and wide tables wrap and shrink */
  @page { size: A4 landscape; margin: 1cm; }
  body { max-width: none; margin: 0; }
  .table-box { overflow-x: visible; } table { font-size: 0.55rem; max-width: 100%; }
  th, td { white-space: normal; padding: 0.1rem 0.2rem; }
  th { overflow-wrap: anywhere; }  /* long column names break; numbers break only at spaces */
  figure { break-inside: avoid; }
}
"""


LAYER_TEXT = (
    "Seed means (± seed std) per layer, layer 1 nearest the input; ratio: Var(z) over layer 1's, "
    "geometric mean over seeds; saturated and dead: percent of units and samples."
)
RULE_TEXT = f"The summary's {tables.OUTCOME_RULE}."
THEORY_TEXT = " *_theory: the prediction; *_rel_err: (measured − theory) / theory."


class Section(NamedTuple):
    """A part of the page: a heading, a paragraph, tables and figures, in that order."""

    title: str
    text: str = ""  # plain text, escaped; blank lines separate paragraphs
    tables: Sequence[tuple[str, str]] = ()  # (caption, HTML from tables.*(fmt="html")), as is
    figures: Sequence[tuple[str, str | os.PathLike]] = ()  # (caption, path of a PNG)


class ReportPaths(NamedTuple):
    """What :func:`report_sweep` wrote."""

    html: Path  # out_dir/report.html
    figures: tuple[Path, ...]  # every figure file (PNG, plus any other formats asked for)
    tables: tuple[Path, ...]  # CSV and markdown tables


def provenance(attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Where a result came from: its grid and PRNG (from ``attrs``), versions, time, and the
    git commit (and whether the tree was dirty) when jaxinit runs from a checkout."""
    attrs = dict(attrs or {})
    out = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "prng_impl": attrs.get("prng_impl", "not recorded"),
        "source": source_revision(),
    }
    if "grid" in attrs:
        out["grid"] = attrs["grid"]
    if "dataset" in attrs:
        out["dataset"] = attrs["dataset"]
    return out


def dataset_line(attrs: Mapping[str, Any]) -> str:
    """One sentence naming a training result's data (``attrs["dataset"]``): the user's
    description, the sizes and the digests' first 12 hex digits; "" for a result without
    the record (saved before it existed)."""
    record = attrs.get("dataset")
    if not record:
        return ""

    def sizes(entry):
        return (
            f"{entry['examples']:,} examples of {entry['features']} features "
            f"(sha256 {entry['sha256'][:12]}…)"
        )

    name = record.get("description") or "not described (give train(..., dataset=...))"
    evals = record.get("eval_data")
    where = "evaluated on the training data" if evals is None else f"evaluated on {sizes(evals)}"
    return f"Data: {name}. Trained on {sizes(record['data'])}, {where}."


def _img(path: Path) -> str:
    if path.suffix.lower() != ".png":
        raise ValueError(f"figures are embedded as PNG; {path} is not a .png file")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _paragraphs(text: str) -> str:
    parts = [p.strip() for p in text.split("\n\n") if p.strip()]
    return "".join(f"<p>{html.escape(p)}</p>\n" for p in parts)


def write_report(
    out_dir: str | os.PathLike,
    *,
    title: str,
    sections: Sequence[Section],
    attrs: Mapping[str, Any] | None = None,
    runs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Writes ``out_dir/report.html`` from ``sections`` and returns its path.

    Figures (PNG files) are read and inlined as base64 ``data:`` URIs; table
    fragments are inserted as given (make them with ``fmt="html"``, which
    escapes every cell); titles, captions and text are escaped. ``attrs`` (a
    result's) supplies the provenance section; a page built from several
    results passes ``runs`` instead, name → each result's attrs, and the
    provenance lists every one's grid and PRNG under its name.
    """
    if attrs is not None and runs is not None:
        raise ValueError("pass attrs (one result) or runs (several, by name), not both")
    if runs is not None and not runs:
        raise ValueError("runs is empty: pass each result's attrs by name, or attrs=None")
    out_dir = check_path("write_report: out_dir", out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>\n"]
    for n, section in enumerate(sections):
        if not isinstance(section, Section):
            raise TypeError(f"sections[{n}] is a {type(section).__name__}; expected a Section")
    toc = [(f"s{n + 1}", s.title) for n, s in enumerate(sections)] + [("provenance", "Provenance")]
    body.append(
        '<nav class="toc"><strong>Contents</strong><ol>'
        + "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t in toc)
        + "</ol></nav>\n"
    )
    for n, section in enumerate(sections):
        body.append(
            f'<section id="s{n + 1}">\n<h2>{esc(section.title)}</h2>\n{_paragraphs(section.text)}'
        )
        for caption, fragment in section.tables:
            body.append(f'<h3>{esc(caption)}</h3>\n<div class="table-box">{fragment}</div>')
        for caption, path in section.figures:
            body.append(
                f"<figure>{_img(Path(path))}<figcaption>{esc(caption)}</figcaption></figure>\n"
            )
        body.append("</section>\n")
    named = {name: dict(a or {}) for name, a in (runs or {"": attrs}).items()}
    prov = provenance(next(iter(named.values())))  # versions and source: one per page
    rev = prov.get("source")
    source = (
        ""
        if rev is None
        else (
            f" jaxinit from git commit <code>{esc(rev['commit'][:12])}</code>"
            + (" with uncommitted changes" if rev["dirty"] else " (clean tree)")
            + "."
        )
    )
    prngs = {str(a.get("prng_impl", "not recorded")) for a in named.values()}
    body.append(
        '<section id="provenance">\n<h2>Provenance</h2>\n'
        f"<p>Written {esc(prov['created'])}; PRNG implementation "
        f"<code>{esc(', '.join(sorted(prngs)))}</code>.{source}</p>\n"
        + tables.render(["package", "version"], list(prov["versions"].items()), "html")
    )
    for name, a in named.items():
        if "grid" in a:
            # one line per setting, each value on its line (lists do not run one item a line)
            grid = (
                "{\n"
                + ",\n".join(
                    f"  {json.dumps(k)}: {json.dumps(v, default=str)}" for k, v in a["grid"].items()
                )
                + "\n}"
            )
            heading = f"Grid: {name}" if name else "Grid"
            body.append(f"<h3>{esc(heading)}</h3>\n<pre>{esc(grid)}</pre>\n")
    body.append("</section>\n")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "".join(body)
        + "</body>\n</html>\n"
    )
    path = out_dir / "report.html"
    atomic_write(path, page.encode("utf-8"))
    return path


def _slug(labels: Mapping[str, Any]) -> str:
    text = "-".join(f"{d}{v}" for d, v in labels.items())
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def report_sweep(
    res: SweepResult,
    out_dir: str | os.PathLike,
    *,
    theory: SweepResult | None = None,
    train: SweepResult | None = None,
    title: str = "jaxinit sweep",
    formats: Sequence[str] = ("png",),
    dpi: float = 150,
) -> ReportPaths:
    """The standard figures, tables and ``report.html`` of a sweep, under ``out_dir``.

    Per value of any dims beyond (init, activation, seed, depth), e.g. several
    widths: the summary table, variance and gradient-variance curves (theory
    drawn over them when given), the depth-L heatmap, histograms, and one layer table
    per (init, activation); the deepest network of a ``depth`` dim. A training
    result adds its loss curves, and accuracy when it holds ``test_accuracy``
    (or ``eval_accuracy``).
    Returns the paths written.
    """
    if not isinstance(res, SweepResult):
        raise TypeError(f"report_sweep takes a SweepResult; got {type(res).__name__}")
    files = _ReportFiles("report_sweep", out_dir, formats, dpi)
    if "layers" in res.attrs:  # a ModelGrid's sweep: layers by path
        sections = [_model_section(res, files)]
    else:
        extra = [d for d in res.dims if d not in (*tables.COMBO_DIMS, "depth")]
        sections = []
        for values in itertools.product(*(res.coords[d] for d in extra)):
            sections += _sweep_sections(res, dict(zip(extra, values, strict=True)), theory, files)
    if train is not None:
        sections.append(_training_section(train, files))
    path = write_report(files.out_dir, title=title, sections=sections, attrs=res.attrs)
    return ReportPaths(path, tuple(files.figures), tuple(files.tables))


class _ReportFiles:
    """The folder of ``fn``'s report (``out_dir``, checked and made), its figure and table
    files under ``figures/`` and ``tables/``, and the paths written so far; PNG is always
    among the ``formats``."""

    def __init__(self, fn: str, out_dir, formats: str | Sequence[str], dpi: float) -> None:
        formats = (formats,) if isinstance(formats, str) else formats
        self.formats, self.dpi = tuple(dict.fromkeys(("png", *formats))), dpi
        self.out_dir = check_path(f"{fn}: out_dir", out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.fig_dir = make_dirs(self.out_dir, "figures")  # make_dirs: no links
        self.table_dir = make_dirs(self.out_dir, "tables")
        self.figures: list[Path] = []
        self.tables: list[Path] = []

    def figure(self, fig, name: str, caption: str, into: list) -> None:
        """Saves ``fig`` as ``figures/name.<format>``; ``(caption, PNG path)`` goes ``into``."""
        written = figures.save(fig, self.fig_dir / name, formats=self.formats, dpi=self.dpi)
        self.figures.extend(written)
        into.append((caption, written[0]))

    def table(self, text: str, name: str) -> None:
        """Writes ``text`` as ``tables/name``."""
        path = self.table_dir / name
        atomic_write(path, text.encode("utf-8"))
        self.tables.append(path)


PRE_VAR_CAPTION = (
    "Pre-activation variance by layer: seed geometric mean (markers where theory is "
    "drawn, else a line), min–max band over seeds; line over the markers: mean-field "
    "theory. Over more than 10 layers each init's markers sit at every few layers, "
    "staggered, so curves that coincide (e.g. glorot_normal, glorot_uniform and "
    "lecun_normal at fan_in = fan_out) each show theirs."
)


_MODEL_FIELDS = {
    "pre_var": "Variance of each captured output (seed mean; band: 10-90% of seeds).",
    "grad_var": "Gradient variance at each captured output, for a random readout.",
    "dead": "Fraction of each captured output exactly zero.",
}


def _model_section(res: SweepResult, files: _ReportFiles) -> Section:
    """A model sweep's section: the profiles of its main fields by layer path, and a table of
    each (init, layer)'s seed medians."""
    figs: list = []
    for field, caption in _MODEL_FIELDS.items():
        if field in res.fields:
            files.figure(layer_profile(res, field=field), f"model_{field}", caption, figs)
    shown = [
        f
        for f in ("pre_mean", "pre_var", "grad_var", "weight_grad_norm", "dead")
        if f in res.fields
    ]
    rows = [
        (init, path, kind, *(float(np.median(res.fields[f][i, :, l])) for f in shown))
        for i, init in enumerate(res.coords["init"])
        for l, (path, kind) in enumerate(
            zip(res.attrs["layers"], res.attrs["layer_types"], strict=True)
        )
    ]
    columns = ("init", "layer", "type", *(f"{f} (median)" for f in shown))
    files.table(tables.render(columns, rows, "csv"), "layers.csv")
    model = res.attrs.get("grid", {}).get("model", "the model")
    return Section(
        title=f"Sweep of {model}",
        tables=[("Per layer, median over seeds", tables.render(columns, rows, "html"))],
        figures=figs,
        text="Every captured output of the model, in call order (module paths; (model) is "
        "the model's own output). Each is reduced over everything but the batch.",
    )


def _sweep_sections(
    res: SweepResult, fixed: dict[str, Any], theory: SweepResult | None, files: _ReportFiles
) -> list[Section]:
    """The sweep's section and its per-layer statistics at ``fixed`` values of the dims
    beyond (init, activation, seed, depth), with their files. Only dims with several labels
    name the files and the heading: a grid of one width writes ``figures/pre_var.png``, as
    the scripts do, not ``pre_var-width100-bias_initzeros.png``."""
    varying = {d: v for d, v in fixed.items() if len(res.coords[d]) > 1}
    tag = _slug(varying)
    suffix = f"-{tag}" if tag else ""
    heading = ", ".join(f"{d} = {v}" for d, v in varying.items())
    label = f": {heading}" if heading else ""
    v = tables.view(res, fixed)
    summary = tables.summary_table(res, fmt="html", **fixed)
    tabs = [(f"Summary at depth {v.n_layers} (ratio to layer 1; band 0.5–2)", summary)]
    files.table(tables.summary_table(res, fmt="csv", **fixed), f"summary{suffix}.csv")
    markdown = tables.summary_table(res, fmt="markdown", **fixed)
    files.table(f"{markdown}\n\n{RULE_TEXT}\n", f"summary{suffix}.md")  # README: "and the rule"
    figs = _sweep_figures(res, v, fixed, theory, suffix, files)
    layer_tabs = [
        (
            f"{init}, {act}",
            tables.layer_table(
                res,
                theory=theory,
                fmt="html",
                **fixed,
                **{d: x for d, x in (("init", init), ("activation", act)) if d in res.dims},
            ),
        )
        for init in v.inits
        for act in v.activations
    ]
    files.table(tables.layer_table(res, theory=theory, fmt="csv", **fixed), f"layers{suffix}.csv")
    return [
        Section(title=f"Sweep{label}", tables=tabs, figures=figs, text=RULE_TEXT),
        Section(
            title=f"Per-layer statistics{label}",
            tables=layer_tabs,
            text=LAYER_TEXT + ("" if theory is None else THEORY_TEXT),
        ),
    ]


def _sweep_figures(res, v, fixed, theory, suffix: str, files: _ReportFiles) -> list:
    """The variance curves (theory over them), the heatmap and the histograms at ``fixed``:
    ``(caption, PNG path)`` each."""
    figs: list = []
    files.figure(
        figures.variance_vs_depth(res, theory=theory, **fixed),
        f"pre_var{suffix}",
        PRE_VAR_CAPTION,
        figs,
    )
    if "post_var" in v.fields:
        files.figure(
            figures.variance_vs_depth(res, field="post_var", theory=theory, **fixed),
            f"post_var{suffix}",
            "Post-activation variance by layer.",
            figs,
        )
    if "grad_var" in v.fields:
        files.figure(
            figures.grad_variance_vs_depth(res, theory=theory, **fixed),
            f"grad_var{suffix}",
            "Gradient variance by layer, back-propagated from layer L.",
            figs,
        )
    files.figure(
        figures.heatmap(res, **fixed),
        f"heatmap{suffix}",
        f"log10 of the variance ratio at layer {v.n_layers} over layer 1, seed mean; the "
        f"colour is clipped at ±{figures.HEATMAP_CLIP:g} (1000×), the key under the map "
        "names the cells without a number.",
        figs,
    )
    if "hist" in v.fields:
        files.figure(
            figures.histogram_grid(res, **fixed),
            f"histograms{suffix}",
            "Post-activation histograms (fraction of all units and samples).",
            figs,
        )
    return figs


def _training_section(train: SweepResult, files: _ReportFiles) -> Section:
    """A sweep report's training section: loss curves, and accuracy when recorded."""
    figs: list = []
    files.figure(
        training.loss_curves(train), "loss", "Training loss (seed mean, min–max band).", figs
    )
    if any(k in train.fields for k in training.EVAL_ACCURACY):
        files.figure(training.accuracy(train), "accuracy", "Held-out accuracy.", figs)
    return Section(title="Training", figures=figs)


def _final_table(res: SweepResult, fmt: str) -> str:
    """Per combination of every dim but seed (init[, activation][, width][, learning_rate]):
    the loss over the last tenth of the steps and the last test metrics, mean ± standard
    deviation over seeds."""
    dims = [d for d in res.dims if d != "seed"]
    rows = []
    for labels in itertools.product(*(res.coords[d] for d in dims)):
        s = res.sel(**dict(zip(dims, labels, strict=True)))
        loss = final_loss(s.loss)
        row = [str(v) for v in labels]
        row.append(f"{loss.mean():.4g} ± {loss.std():.2g}")
        if "test_loss" in s.fields:
            last = s.test_loss[..., -1]
            row.append(f"{last.mean():.4g} ± {last.std():.2g}")
        if "test_accuracy" in s.fields:
            last = 100 * s.test_accuracy[..., -1]
            row.append(f"{last.mean():.1f}% ± {last.std():.1f}")
        rows.append(row)
    head = [*dims, FINAL_LOSS]
    head += [
        f"{k.replace('_', ' ')} (end)" for k in ("test_loss", "test_accuracy") if k in res.fields
    ]
    return tables.render(head, rows, fmt)


def _curve_views(res: SweepResult):
    """``(name suffix, caption note, result)`` with dims (init, [activation,] seed) for the
    curves: one per width; with a learning_rate dim, each width's best rate (lowest mean
    loss over the last tenth of the steps, a diverged model counting as inf)."""
    for w in res.coords.get("width", [None]):
        sub, suffix, note = (
            (res, "", "") if w is None else (res.sel(width=w), f"_width_{w}", f" Width {w}.")
        )
        if "learning_rate" in sub.dims:
            loss = final_loss(sub.loss)
            loss = np.moveaxis(
                np.where(np.isfinite(loss), loss, np.inf), sub.dims.index("learning_rate"), 0
            )
            lr = sub.coords["learning_rate"][int(np.argmin(loss.reshape(len(loss), -1).mean(1)))]
            sub, suffix = sub.sel(learning_rate=lr), f"{suffix}_best_rate"
            note += f" Learning rate {lr:g}, the best of {list(res.coords['learning_rate'])} by final loss."
        yield suffix, note, sub


def report_train(
    res: SweepResult,
    out_dir: str | os.PathLike,
    *,
    title: str = "jaxinit training",
    formats: Sequence[str] = ("png",),
    dpi: float = 150,
) -> ReportPaths:
    """The figures, the final table and ``report.html`` of a training result, under ``out_dir``.

    Loss curves (seed mean, min–max band; test loss dashed), test accuracy,
    the per-layer statistics at each ``record_stats_at`` step when recorded, a
    final table (mean ± standard deviation over seeds) and provenance.
    """
    if not isinstance(res, Result) or "loss" not in res.fields:
        raise TypeError(f"report_train takes a training result (a loss field); got {res!r:.100}")
    files = _ReportFiles("report_train", out_dir, formats, dpi)
    views = list(_curve_views(res))
    sections = [
        Section(
            title="Training",
            text=dataset_line(res.attrs),
            figures=_training_curves(res, views, files),
        )
    ]
    for heading, figs in (
        ("Width scaling", _width_scaling_figures(res, files)),
        ("Per-layer statistics during training", _layer_stats_figures(res, views, files)),
    ):
        if figs:
            sections.append(Section(title=heading, figures=figs))
    for fmt, ext in (("csv", "csv"), ("markdown", "md")):
        files.table(_final_table(res, fmt), f"final.{ext}")
    sections.insert(
        1,
        Section(
            title="Final numbers",
            tables=[("Mean ± standard deviation over seeds", _final_table(res, "html"))],
        ),
    )
    path = write_report(files.out_dir, title=title, sections=sections, attrs=res.attrs)
    return ReportPaths(path, tuple(files.figures), tuple(files.tables))


def _training_curves(res: SweepResult, views, files: _ReportFiles) -> list:
    """Loss curves, smoothed over about a hundredth of the steps, and test accuracy when
    recorded: one of each per view (:func:`_curve_views`)."""
    smooth = max(1, res.fields["loss"].shape[-1] // 100)
    figs: list = []
    for suffix, note, sub in views:
        files.figure(
            training.loss_curves(sub, smooth=smooth),
            f"loss{suffix}",
            f"Training loss ({smooth}-step mean of each seed; line: seed mean, band: min–max "
            f"over seeds); dashed: test loss at each evaluation.{note}",
            figs,
        )
        if any(k in sub.fields for k in training.EVAL_ACCURACY):
            files.figure(
                training.accuracy(sub),
                f"accuracy{suffix}",
                f"Test accuracy at each evaluation (seed mean, min–max band).{note}",
                figs,
            )
    return figs


def _width_scaling_figures(res: SweepResult, files: _ReportFiles) -> list:
    """Over widths: the final loss against learning rate, and the coord check."""
    param = res.attrs.get("grid", {}).get("parametrization", "standard")
    figs: list = []
    if "width" in res.dims and "learning_rate" in res.dims:
        last = min(10, res.fields["loss"].shape[-1])
        files.figure(
            scaling.loss_vs_learning_rate({param: res}, last=last),
            "loss_vs_learning_rate",
            f"Training loss at the end (mean of the last {last} steps and of the seeds) against "
            "learning rate, one line per width; rings: each width's best rate.",
            figs,
        )
    if "width" in res.dims and "post_abs_mean" in res.fields and len(res.coords["width"]) > 1:
        files.figure(
            scaling.size_vs_width({param: res}),
            "size_vs_width",
            "The coord check: mean |h| of each layer against width at each recorded step.",
            figs,
        )
    return figs


def _layer_stats_figures(res: SweepResult, views, files: _ReportFiles) -> list:
    """The pre-activation and gradient variance by layer at each recorded step, per view."""
    figs: list = []
    for field in ("pre_var", "grad_var"):
        for suffix, note, sub in views if field in res.fields else ():
            files.figure(
                training.layer_stats_over_training(sub, field=field),
                f"{field}_by_step{suffix}",
                f"{field.replace('_', ' ')} by layer at each recorded step (seed mean).{note}",
                figs,
            )
    return figs
