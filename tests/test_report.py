"""Report: tables, figures and report.html, checked against the arrays they are drawn from.

One tiny real sweep (width 16, two seeds) feeds every test; a "theory" is the
measured result with known perturbations, and a training result is synthetic.
"""

import base64
import csv
import dataclasses
import io
import itertools
import re
from html.parser import HTMLParser

import jax
import numpy as np
import pytest

import jaxinit as ji
from jaxinit import SweepResult, report
from jaxinit.report import figures, tables

REPORT_DPI = 40  # low: the tests check data and bytes, not looks
INITS = ["normal(stddev=1.0)", "he_normal", "normal(stddev=0.01)"]
LAYERS = 5
THEORY_FIELDS = ("pre_var", "post_var", "grad_var")


@pytest.fixture(scope="module")
def res():
    grid = ji.Grid(inits=INITS, activations=["tanh", "relu"], depth=LAYERS, width=16, seeds=2,
                   batch_size=32)  # fmt: skip
    return ji.sweep(grid)


@pytest.fixture(scope="module")
def theory(res):
    """1.1 × seed 0's values, without a seed dim (as a deterministic prediction would be)."""
    sel = res.sel(seed=0)
    return SweepResult(
        dims=sel.dims,
        coords=sel.coords,
        fields={k: sel.fields[k] * 1.1 for k in THEORY_FIELDS},
        field_dims={k: ("layer",) for k in THEORY_FIELDS},
    )


def _csv(text):
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows, text
    return rows


def _col(rows, name):
    return np.array([float(r[name]) for r in rows])


def _with_dim(res, dim, labels, scale):
    """``res`` stacked along a new last dim ``dim``: label k holds the fields times scale[k]."""
    fields = {
        k: np.stack([a * s for s in scale], axis=len(res.dims)) for k, a in res.fields.items()
    }
    return dataclasses.replace(
        res, dims=(*res.dims, dim), coords={**res.coords, dim: tuple(labels)}, fields=fields
    )


def _geomean_ratio(pre_var):
    """(..., seed, layer) -> geometric seed mean of the ratio to layer 1."""
    pre_var = np.asarray(pre_var, np.float64)
    return np.exp(np.log(pre_var / pre_var[..., :1]).mean(axis=-2))


# -- tables ----------------------------------------------------------------------------------------


def test_layer_table_numbers_are_the_seed_statistics(res):
    rows = _csv(report.layer_table(res, init="he_normal", activation="relu", fmt="csv"))
    one = res.sel(init="he_normal", activation="relu")  # (seed, layer)
    assert [int(r["layer"]) for r in rows] == list(range(1, LAYERS + 1))
    np.testing.assert_allclose(_col(rows, "pre_var"), one.pre_var.mean(0), rtol=1e-6)
    np.testing.assert_allclose(_col(rows, "pre_var_std"), one.pre_var.std(0, ddof=1), rtol=1e-6)
    np.testing.assert_allclose(_col(rows, "post_mean"), one.post_mean.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(_col(rows, "grad_var"), one.grad_var.mean(0), rtol=1e-6)
    np.testing.assert_allclose(_col(rows, "dead_pct"), 100 * one.dead.mean(0), rtol=1e-6)
    np.testing.assert_allclose(_col(rows, "ratio"), _geomean_ratio(one.pre_var), rtol=1e-6)
    assert _col(rows, "ratio")[0] == 1.0
    assert 30 < _col(rows, "dead_pct").mean() < 70  # ReLU of a symmetric input: about half dead


def test_layer_table_theory_columns(res, theory):
    rows = _csv(
        report.layer_table(res, theory=theory, init="he_normal", activation="tanh", fmt="csv")
    )
    one, t = (
        res.sel(init="he_normal", activation="tanh"),
        theory.sel(init="he_normal", activation="tanh"),
    )
    for k in THEORY_FIELDS:
        np.testing.assert_allclose(_col(rows, f"{k}_theory"), t.fields[k], rtol=1e-6)
        m = one.fields[k].mean(0)
        np.testing.assert_allclose(_col(rows, f"{k}_rel_err"), (m - t.fields[k]) / t.fields[k],
                                   rtol=1e-5, atol=1e-7)  # fmt: skip
    # theory and relative error sit right after the field they predict (in view in a wide
    # table; they came last, off-screen in report.html)
    head = list(rows[0])
    for k in THEORY_FIELDS:
        i = head.index(k) + (2 if f"{k}_std" in head else 1)  # CSV: the std beside the mean
        assert head[i : i + 2] == [f"{k}_theory", f"{k}_rel_err"], head
    # a theory with a seed dim is averaged over it; fields it lacks add no columns
    seeded = SweepResult(dims=res.dims, coords=res.coords, fields={"pre_var": res.pre_var * 0.5},
                         field_dims={"pre_var": ("layer",)})  # fmt: skip
    rows = _csv(
        report.layer_table(res, theory=seeded, init="he_normal", activation="tanh", fmt="csv")
    )
    np.testing.assert_allclose(_col(rows, "pre_var_rel_err"), 1.0, rtol=1e-6)
    assert "post_var_theory" not in rows[0]
    other = SweepResult(dims=("init",), coords={"init": ("glorot_normal",)},
                        fields={"pre_var": np.ones((1, LAYERS))}, field_dims={"pre_var": ("layer",)})  # fmt: skip
    with pytest.raises(ValueError, match="he_normal"):
        report.layer_table(res, theory=other, init="he_normal")


def test_layer_table_label_columns_and_formats(res):
    rows = _csv(report.layer_table(res, activation="relu", fmt="csv"))
    assert len(rows) == len(INITS) * LAYERS
    assert "init" in rows[0]
    assert "activation" not in rows[0]
    md = report.layer_table(res, activation="relu").splitlines()
    assert re.fullmatch(r"\|( -+:? \|)+", md[1])
    assert len(md) == 2 + len(INITS) * LAYERS
    assert len({len(line) for line in md}) == 1  # columns padded to one width
    text = report.layer_table(res, activation="relu", fmt="text").splitlines()
    assert text[0].split()[:3] == ["init", "layer", "pre_mean"]
    assert set(text[1]) <= {"-", " "}
    assert "± " in text[2]
    html = report.layer_table(res, activation="relu", fmt="html")
    assert html.count("<tr>") == 1 + len(INITS) * LAYERS
    assert "normal(stddev=1.0)" in html
    with pytest.raises(
        ValueError, match=r"'markdwn'.*'markdown', 'text', 'csv'.*Did you mean 'markdown'"
    ):
        report.layer_table(res, fmt="markdwn")


def test_reference_input_and_its_record(res):
    rows = _csv(
        report.layer_table(res, init="he_normal", activation="relu", reference="input", fmt="csv")
    )
    one = res.sel(init="he_normal", activation="relu")
    np.testing.assert_allclose(_col(rows, "ratio"), np.exp(np.log(one.pre_var).mean(0)), rtol=1e-6)
    np.testing.assert_allclose(
        report.variance_ratio(res, reference="input"), res.pre_var, rtol=1e-6
    )
    uniform = dataclasses.replace(res, attrs={"grid": {"inputs": "uniform"}})
    np.testing.assert_allclose(
        report.variance_ratio(uniform, reference="input"), 3 * res.pre_var, rtol=1e-6
    )
    array = dataclasses.replace(res, attrs={"grid": {"inputs": "array"}})
    with pytest.raises(ValueError, match="second moment"):
        report.variance_ratio(array, reference="input")
    recorded = dataclasses.replace(res, attrs={"input_second_moment": 4.0})
    np.testing.assert_allclose(
        report.variance_ratio(recorded, reference="input"), res.pre_var / 4, rtol=1e-6
    )
    with pytest.raises(ValueError, match=r"'layer0', 'input'"):
        report.variance_ratio(res, reference="layer1")


def test_summary_outcomes(res):
    rows = _csv(report.summary_table(res, fmt="csv"))
    assert [(r["activation"], r["init"]) for r in rows] == [
        (a, i) for a in ("tanh", "relu") for i in INITS
    ]
    ratio = _geomean_ratio(res.pre_var)  # (init, activation, layer)
    for r in rows:
        rr = ratio[INITS.index(r["init"]), ("tanh", "relu").index(r["activation"])]
        assert float(r["ratio_at_L"]) == pytest.approx(rr[-1], rel=1e-6)
        assert (r["in_band"] == "yes") == bool(np.all((rr >= 0.5) & (rr <= 2.0)))
        low, high = np.flatnonzero(rr < 1e-3), np.flatnonzero(rr > 1e3)
        first = min([*low, *high], default=None)
        if first is not None:
            assert r["outcome"] == ("vanishes" if first in low else "explodes")
            assert int(r["outcome_layer"]) == first + 1
        else:
            assert r["outcome"] in ("stable", "drifts up", "drifts down", "grows", "shrinks",
                                    "saturates", "dies")  # fmt: skip
            assert (r["outcome_layer"] == "") == (r["outcome"] == "stable")
    by = {(r["activation"], r["init"]): r["outcome"] for r in rows}
    assert by["relu", "normal(stddev=1.0)"] == "explodes"  # σ_w² = 16: ×8 per layer
    assert by["relu", "normal(stddev=0.01)"] == by["tanh", "normal(stddev=0.01)"] == "vanishes"
    assert by["relu", "he_normal"] in ("stable", "drifts up", "drifts down")
    text = report.summary_table(res, fmt="text")
    (line,) = [l for l in text.splitlines() if l.startswith("relu") and "he_normal" in l]
    assert ("—" in line) == (by["relu", "he_normal"] == "stable")
    short = _csv(report.summary_table(res, depth=2, fmt="csv"))
    assert float(short[0]["ratio_at_L"]) == pytest.approx(ratio[0, 0, 1], rel=1e-6)
    with pytest.raises(ValueError, match="band"):
        report.summary_table(res, band=(2.0, 0.5))
    with pytest.raises(ValueError, match="depth=9"):
        report.summary_table(res, depth=9)


def test_summary_marks_divergence():
    pre_var = np.ones((1, 1, 2, 4), np.float32)
    nonfinite = np.zeros((1, 1, 2, 4), np.int64)
    pre_var[0, 0, 1, 2:], nonfinite[0, 0, 1, 2:] = np.inf, 7  # seed 1 overflows at layer 3
    res = SweepResult(dims=("init", "activation", "seed"),
                      coords={"init": ("a",), "activation": ("relu",), "seed": (0, 1)},
                      fields={"pre_var": pre_var, "nonfinite": nonfinite},
                      field_dims={"pre_var": ("layer",), "nonfinite": ("layer",)})  # fmt: skip
    (row,) = _csv(report.summary_table(res, fmt="csv"))
    assert (row["outcome"], row["outcome_layer"]) == ("diverges", "3")


def test_extra_dims_need_a_selection_and_depth_picks_the_deepest(res):
    wide = _with_dim(res, "width", (16, 32), (1.0, 2.0))
    with pytest.raises(ValueError, match=r"2 width labels \[16, 32\]; select one, e.g. width=16"):
        report.layer_table(wide, init="he_normal", activation="relu")
    a = _csv(report.layer_table(wide, init="he_normal", activation="relu", width=32, fmt="csv"))
    b = _csv(report.layer_table(res, init="he_normal", activation="relu", fmt="csv"))
    np.testing.assert_allclose(_col(a, "pre_var"), 2 * _col(b, "pre_var"), rtol=1e-6)
    with pytest.raises(ValueError, match="Did you mean 'he_normal'"):
        report.layer_table(res, init="he_nrmal")
    deep = _with_dim(res, "depth", (3, LAYERS), (3.0, 1.0))
    rows = _csv(report.layer_table(deep, init="he_normal", activation="relu", fmt="csv"))
    assert len(rows) == LAYERS
    assert np.allclose(_col(rows, "pre_var"), _col(b, "pre_var"))
    rows = _csv(report.layer_table(deep, init="he_normal", activation="relu", depth=3, fmt="csv"))
    assert len(rows) == 3
    assert np.allclose(_col(rows, "pre_var"), 3 * _col(b, "pre_var")[:3])


# -- figures ----------------------------------------------------------------------------------------


def test_variance_vs_depth_draws_the_seed_geomean_and_theory(res, theory):
    fig = report.variance_vs_depth(res, theory=theory)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["tanh", "relu"]
    assert all(ax.get_yscale() == "log" for ax in axes)
    assert axes[0].get_ylabel()
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    for a, ax in enumerate(axes):
        # with theory: measurements are markers alone, theory the lines drawn over them
        marks = [l for l in ax.get_lines() if l.get_linestyle() == "None"]
        lines = [l for l in ax.get_lines() if l.get_linestyle() == "-"]
        assert len(marks) == len(lines) == len(INITS)
        assert all(t.get_zorder() > m.get_zorder() for m, t in zip(marks, lines, strict=True))
        assert len(ax.collections) == len(INITS)
        for i, (mark, tline) in enumerate(zip(marks, lines, strict=True)):
            y = res.pre_var[i, a].astype(np.float64)
            np.testing.assert_allclose(mark.get_ydata(), np.exp(np.log(y).mean(0)), rtol=1e-6)
            np.testing.assert_allclose(tline.get_ydata(), 1.1 * y[0], rtol=1e-6)
        assert marks[0].get_color() != marks[1].get_color()
    without = report.variance_vs_depth(res)  # no theory: the measurements are lines
    assert all(l.get_linestyle() == "-" for l in without.axes[0].get_lines())
    grad = report.grad_variance_vs_depth(res)
    assert "gradient" in grad.get_suptitle()
    assert r"\partial L" in grad.axes[0].get_ylabel()  # the derivative has its numerator
    y = grad.axes[1].get_lines()[0].get_ydata()
    np.testing.assert_allclose(
        y, np.exp(np.log(res.grad_var[0, 1].astype(np.float64)).mean(0)), rtol=1e-6
    )
    with pytest.raises(ValueError, match="'hist' is not a per-layer field"):
        report.variance_vs_depth(res, field="hist")


def test_heatmap_clips_its_colour_and_writes_every_value(res):
    fig = report.heatmap(res)
    image = fig.axes[0].images[0]
    pre_var = res.pre_var.astype(np.float64)
    expected = np.log10(pre_var[..., -1] / pre_var[..., 0]).mean(-1)
    assert np.abs(expected).max() > figures.HEATMAP_CLIP  # std 0.01 vanishes past the clip
    clipped = np.clip(expected, -figures.HEATMAP_CLIP, figures.HEATMAP_CLIP)
    np.testing.assert_allclose(image.get_array(), clipped, rtol=1e-5)
    assert image.get_clim() == (-figures.HEATMAP_CLIP, figures.HEATMAP_CLIP)
    texts = np.array([t.get_text() for t in fig.axes[0].texts]).reshape(expected.shape)
    # the numbers are the unclipped seed means
    assert texts[2, 0] == f"{expected[2, 0]:+.2f}".replace("-", "−")
    assert not fig.legends  # no cell without a number: no key
    assert "clipped" in fig.axes[1].get_ylabel()


def test_heatmap_cells_name_overflow_underflow_and_missing():
    """The classification behind the heatmap's cells: 1000× is full colour, a 30-decade value
    is no darker, and overflow, −∞ and n/a each mean one thing."""
    layers = np.array([1.0, 10.0, 1000.0])  # (layer,): 1000× at layer L
    field = np.broadcast_to(layers, (2, 3, 2, 3)).copy()  # (init, activation, seed, layer)
    field[0, 1] = [1.0, 1e10, 1e30]  # far past the clip
    field[1, 0, 0] = [1.0, np.inf, np.nan]  # one seed of two overflowed float32
    field[1, 1, :, -1] = 0.0  # both seeds underflowed to 0
    field[1, 2, 1, 0] = 0.0  # a seed whose layer 1 is 0: 0/0, no ratio
    cells = figures.heatmap_cells(field)
    assert cells.kinds.tolist() == [["value", "value", "value"],
                                    ["overflow", "underflow", "n/a"]]  # fmt: skip
    assert cells.text[0].tolist() == ["+3.00", "+30.00", "+3.00"]
    assert cells.colour[0, 0] == cells.colour[0, 1] == figures.HEATMAP_CLIP  # 1000× is full red
    assert cells.text[1].tolist() == ["overflow 1/2", "−∞", "n/a"]
    assert cells.colour[1, 0] == figures.HEATMAP_CLIP  # an overflow explodes: the red end
    assert cells.colour[1, 1] == -figures.HEATMAP_CLIP  # an underflow vanishes: the blue end
    assert np.isnan(cells.colour[1, 2])
    assert np.isnan(cells.values[1]).all()
    # a nonfinite count marks an overflow even where the variance stayed finite
    counts = np.zeros(field.shape, int)
    counts[0, 2, :, 1] = 3
    assert figures.heatmap_cells(field, nonfinite=counts).text[0, 2] == "overflow"
    assert figures.heatmap_cells(field, clip=30.0).colour[0, 0] == pytest.approx(3.0)
    with pytest.raises(ValueError, match=r"clip must be positive; got -1"):
        figures.heatmap_cells(field, clip=-1)
    with pytest.raises(ValueError, match=r"\(init, activation, seed, layer\); got shape \(3,\)"):
        figures.heatmap_cells(layers)


def test_histogram_grid_layout_and_fractions(res):
    fig = report.histogram_grid(res, layers=[1, LAYERS], yscale="linear")
    n_pairs = 2 * len(INITS)  # one row per (activation, init), one column per layer
    axes = np.array(fig.axes).reshape(n_pairs, 2)
    assert axes[0, 0].get_shared_x_axes().joined(axes[0, 0], axes[2, 1])  # tanh rows
    assert not axes[0, 0].get_shared_x_axes().joined(axes[0, 0], axes[len(INITS), 0])
    assert axes[1, 0].get_shared_y_axes().joined(axes[1, 0], axes[1, 1])  # one network's layers
    # row len(INITS) + 1 is (relu, he_normal); column 2 is the last layer
    heights = axes[len(INITS) + 1, 1].patches[0].get_data().values
    expected = res.hist[1, 1, :, -1].sum(0) / (2 * 32 * 16)
    np.testing.assert_allclose(heights, expected, rtol=1e-6)
    assert 0.3 < heights[0] < 0.8  # the dead ReLU units sit in the first bin
    auto = report.histogram_grid(res, inits=["he_normal"], activations="relu")
    assert len(auto.axes) == LAYERS
    assert auto.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match=r"within 1\.\.5"):
        report.histogram_grid(res, layers=[0])


def _fig(res):
    return report.variance_vs_depth(res, init=["he_normal", "normal(stddev=1.0)"])


def test_save_is_byte_for_byte_reproducible(res, tmp_path):
    first = report.save(
        _fig(res), tmp_path / "a.png", formats=("png", "svg", "pdf"), dpi=REPORT_DPI
    )
    again = report.save(_fig(res), tmp_path / "b", formats=("png", "svg", "pdf"), dpi=REPORT_DPI)
    assert [p.name for p in first] == ["a.png", "a.svg", "a.pdf"]
    for p, q in zip(first, again, strict=True):
        data = p.read_bytes()
        assert data == q.read_bytes(), p.suffix
        assert b"CreationDate" not in data
        assert b"<dc:date>" not in data
        assert ji.__version__.encode() not in data
        assert b"matplotlib v" not in data.lower()
    assert first[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))  # no temporary files left
    with pytest.raises(ValueError, match=r"'jpg'.*'png', 'svg', 'pdf'"):
        report.save(_fig(res), tmp_path / "c", formats=("jpg",))


def _train(with_accuracy=True, activations=None, prefix="test"):
    """A training result as jaxinit.training lays one out: (init, seed[, activation]), step, eval."""
    rng = np.random.default_rng(0)
    inits, seeds, steps = ("he_normal", "normal(stddev=0.01)"), (0, 1, 2), 40
    dims, coords, shape = ("init", "seed"), {"init": inits, "seed": seeds}, (2, 3)
    if activations:
        dims, coords = (*dims, "activation"), {**coords, "activation": activations}
        shape = (*shape, len(activations))
    loss = np.exp(-np.arange(steps) / 10.0) + rng.random((*shape, steps))
    fields = {"loss": loss, f"{prefix}_loss": loss[..., ::10]}
    if with_accuracy:
        fields[f"{prefix}_accuracy"] = rng.random((*shape, 4))
    own = {k: ("step",) if k == "loss" else ("eval",) for k in fields}
    return SweepResult(dims=dims, coords=coords, fields=fields, field_dims=own,
                       attrs={"eval_steps": [0, 10, 20, 30]})  # fmt: skip


@pytest.mark.parametrize("prefix", ["test", "eval"])
def test_loss_curves_and_accuracy(prefix):
    train = _train(prefix=prefix)
    fig = report.loss_curves(train)
    (ax,) = fig.axes
    solid = [l for l in ax.get_lines() if l.get_linestyle() == "-"]
    dashed = [l for l in ax.get_lines() if l.get_linestyle() == "--"]
    np.testing.assert_allclose(solid[1].get_ydata(), train.loss[1].mean(0))
    np.testing.assert_allclose(dashed[0].get_xdata(), [0, 10, 20, 30])
    np.testing.assert_allclose(dashed[1].get_ydata(), train.fields[f"{prefix}_loss"][1].mean(0))
    assert len(ax.collections) == 2  # seed bands of the training loss only
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "step"
    acc = report.accuracy(train)
    y = acc.axes[0].get_lines()[0].get_ydata()
    np.testing.assert_allclose(y, train.fields[f"{prefix}_accuracy"][0].mean(0))
    assert acc.axes[0].get_ylim() == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"no field 'test_accuracy'.*loss"):
        report.accuracy(_train(with_accuracy=False))
    assert len(report.loss_curves(_train(activations=("relu", "tanh"))).axes) == 2


def test_decision_boundary_and_grid():
    points = report.decision_grid((-2, 2, -1, 1), resolution=5)
    assert points.shape == (25, 2)
    assert tuple(points[1]) == (-1.0, -1.0)
    assert tuple(points[5]) == (-2.0, -0.5)
    probs = (np.linalg.norm(points, axis=1) > 1).astype(float).reshape(5, 5)
    x = np.array([[0.0, 0.0], [1.5, 0.5], [-1.5, -0.5]])
    fig = report.decision_boundary(np.stack([probs, np.full_like(probs, 0.5)]), x, [0, 1, 1],
                                   extent=(-2, 2, -1, 1), titles=["he", "zeros"])  # fmt: skip
    first, second = fig.axes[:2]
    assert first.get_title() == "he"
    assert first.get_xlim() == (-2, 2)
    scatters = [c for c in first.collections if type(c).__name__ == "PathCollection"]
    assert sorted(len(c.get_offsets()) for c in scatters) == [1, 2]  # class 0, class 1
    assert any(type(c).__name__ == "QuadContourSet" for c in first.get_children())
    assert not any(
        type(c).__name__ == "QuadContourSet" for c in second.get_children()
    )  # no boundary
    with pytest.raises(ValueError, match=r"points \(n, 2\)"):
        report.decision_boundary(probs, x[:, :1], [0, 1, 1], extent=(-2, 2, -1, 1))


def test_phase_diagram_relu_critical_line():
    w, b = np.linspace(0.5, 4.0, 36), np.linspace(0.0, 0.5, 11)
    chi1 = np.broadcast_to(w[:, None] / 2.0, (w.size, b.size))  # ReLU: χ₁ = σ_w²/2
    fig = report.phase_diagram(w, b, chi1, empirical=([1.0, 3.0], [0.1, 0.2], [0.5, 1.5]))
    ax = fig.axes[0]
    (contour,) = [c for c in ax.get_children() if type(c).__name__ == "QuadContourSet"]
    vertices = np.concatenate([p.vertices for p in contour.get_paths()])
    np.testing.assert_allclose(vertices[:, 0], 2.0, atol=1e-9)
    assert {t.get_text().split("\n")[0] for t in ax.texts} == {"ordered", "chaotic"}
    assert ax.get_xlabel() == r"$\sigma_w^2$"
    assert ax.get_ylabel() == r"$\sigma_b^2$"
    with pytest.raises(ValueError, match=r"transpose"):
        report.phase_diagram(w, b, chi1.T)
    with np.errstate(divide="ignore"):
        xi_c = 1.0 / np.abs(np.log(chi1))  # the depth scale: infinite on the critical line
    assert np.isinf(xi_c).any()
    fig = report.phase_diagram(w, b, chi1, xi_c=xi_c)
    assert len(fig.axes) == 2
    assert "xi_c" in fig.axes[1].get_ylabel()


# -- html -------------------------------------------------------------------------------------------


class _Checker(HTMLParser):
    VOID = frozenset({"meta", "img", "br", "hr", "link", "input", "source", "col", "wbr"})

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.refs, self.images = [], [], [], []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action") or (value and "url(" in value):
                self.refs.append(value)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_report_sweep_is_self_contained(res, theory, tmp_path):
    paths = report.report_sweep(
        res, tmp_path / "rep", theory=theory, train=_train(), dpi=REPORT_DPI
    )
    page = paths.html.read_text()
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert page.startswith("<!DOCTYPE html>")
    assert not checker.errors
    assert not checker.stack
    pngs = [p for p in paths.figures if p.suffix == ".png"]
    assert {p.stem for p in pngs} >= {
        "pre_var",
        "grad_var",
        "heatmap",
        "histograms",
        "loss",
        "accuracy",
    }
    for p in pngs:
        assert f"data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" in page, p
    assert len(checker.images) == len(pngs)
    # only embedded images and same-page anchors (the contents): nothing fetched
    assert all(ref.startswith(("data:image/png;base64,", "#")) for ref in checker.refs)
    assert any(ref.startswith("#") for ref in checker.refs)
    assert "http://" not in page.replace('"http://www.w3.org', "")
    assert "<script" not in page
    for needle in ("threefry2x32", ji.__version__, "&quot;batch_size&quot;: 32", "pre_var_rel_err"):
        assert needle in page, needle
    summary = _csv((tmp_path / "rep" / "tables" / "summary.csv").read_text())
    assert len(summary) == 2 * len(INITS)
    layers = _csv((tmp_path / "rep" / "tables" / "layers.csv").read_text())
    assert len(layers) == 2 * len(INITS) * LAYERS
    assert not [p for p in (tmp_path / "rep").rglob("*") if ".tmp" in p.name]


def test_write_report_escapes_and_checks(tmp_path):
    section = report.Section(
        title="<b>x</b>", text="a < b\n\nsecond", tables=(("t", "<table></table>"),)
    )
    path = report.write_report(tmp_path, title="<script>alert(1)</script>", sections=[section])
    page = path.read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert page.count("<p>") >= 2
    assert "not recorded" in page
    with pytest.raises(TypeError, match="Section"):
        report.write_report(tmp_path, title="t", sections=[("title", "text")])
    with pytest.raises(ValueError, match="PNG"):
        report.write_report(
            tmp_path, title="t", sections=[report.Section("s", figures=(("c", path),))]
        )


def test_public_api():
    assert set(report.__all__) <= set(dir(report))
    assert figures.PALETTE == report.PALETTE
    assert len(set(figures.PALETTE)) == len(figures.PALETTE)
    assert tables.FORMATS[:3] == ("markdown", "text", "csv")


def test_report_sweep_splits_extra_dims(res, theory, tmp_path):
    wide = _with_dim(
        res.sel(init=["he_normal"], activation=["relu"]), "width", (16, 32), (1.0, 2.0)
    )
    paths = report.report_sweep(wide, tmp_path, theory=theory, dpi=REPORT_DPI)
    names = {p.name for p in paths.figures + paths.tables}
    assert {"pre_var-width16.png", "heatmap-width32.png", "layers-width32.csv"} <= names
    page = paths.html.read_text()
    assert "Sweep: width = 16" in page
    assert "Per-layer statistics: width = 32" in page
    rows16 = _csv((tmp_path / "tables" / "layers-width16.csv").read_text())
    rows32 = _csv((tmp_path / "tables" / "layers-width32.csv").read_text())
    np.testing.assert_allclose(_col(rows32, "pre_var"), 2 * _col(rows16, "pre_var"), rtol=1e-6)
    # the theory has no width dim: the same prediction stands beside both
    np.testing.assert_allclose(_col(rows32, "pre_var_theory"), _col(rows16, "pre_var_theory"))


def test_heatmap_says_overflow_for_a_network_that_overflowed(res):
    fields = dict(res.fields)
    pre_var, nonfinite = res.pre_var.copy(), res.nonfinite.copy()
    pre_var[0, 1, 0, -1] = np.inf  # one seed of (init 0, activation 1) overflowed float32
    nonfinite[0, 1, 0, -1] = 7
    fig = report.heatmap(dataclasses.replace(res, fields={**fields, "pre_var": pre_var,
                                                          "nonfinite": nonfinite}))  # fmt: skip
    texts = np.array([t.get_text() for t in fig.axes[0].texts]).reshape(pre_var.shape[:2])
    assert texts[0, 1] == "overflow 1/2"  # one seed of two
    assert not any(t.startswith("overflow") for t in np.delete(texts.ravel(), 1))
    (key,) = fig.legends  # the key names what an overflow is
    assert [t.get_text() for t in key.get_texts()] == [figures.CELL_KEY["overflow"]]


def test_loss_curves_smooth_is_a_trailing_moving_average():
    from jaxinit.report.training import _smooth

    y = np.array([[4.0, 0.0, 2.0, 6.0]])
    np.testing.assert_allclose(_smooth(y, 2), [[4.0, 2.0, 1.0, 4.0]])
    np.testing.assert_allclose(_smooth(y, 1), y)
    np.testing.assert_allclose(_smooth(y, 10), [[4.0, 2.0, 2.0, 3.0]])
    with pytest.raises(
        ValueError, match=r"smooth \(a window of steps\) must be an int >= 1; got 0"
    ):
        report.loss_curves(None, smooth=0)


def test_training_report_from_train_and_from_report(tmp_path, capsys):
    """`jaxinit train --out` writes figures, a final table and report.html; `jaxinit report`
    rebuilds them for a training directory (it used to fail on the sweep's fields)."""
    from jaxinit.cli import main

    out = tmp_path / "run"
    argv = ["train", "--data", "circles", "--inits", "zeros", "he_normal", "--seeds", "2",
            "--hidden", "4", "--steps", "20", "--batch-size", "0", "--eval-every", "10",
            "--optimizer", "sgd(learning_rate=0.1)", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    page = (out / "report.html").read_text()
    assert {p.name for p in (out / "figures").iterdir()} == {"loss.png", "accuracy.png"}
    res = ji.TrainResult.load(out / "result")
    final = (out / "tables" / "final.csv").read_text().splitlines()
    zeros = next(r for r in final if r.startswith("zeros"))
    assert f"{float(res.sel(init='zeros').loss[:, -2:].mean()):.4g}" in zeros  # last tenth
    assert "Final numbers" in page
    assert "Provenance" in page
    (out / "report.html").unlink()
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").is_file()
    assert "report:" in capsys.readouterr().out


def test_training_report_draws_per_layer_statistics_when_recorded(tmp_path):
    x, y = ji.data.make_circles(jax.random.key(0), 64, noise=0.1)
    grid = ji.TrainGrid(inits=["he_normal"], seeds=2, hidden=(6, 4), output="sigmoid",
                        batch_size=None, steps=10, record_stats_at=(0, 9),
                        optimizer="sgd(learning_rate=0.1)")  # fmt: skip
    res = ji.train(grid, (x, y))
    paths = ji.report.report_train(res, tmp_path)
    names = {p.name for p in paths.figures}
    assert {"pre_var_by_step.png", "grad_var_by_step.png"} <= names
    fig = ji.report.layer_stats_over_training(res)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2  # one per recorded step
    np.testing.assert_allclose(lines[1].get_ydata(), res.pre_var[0, :, 1].mean(0))
    assert list(lines[0].get_xdata()) == [1, 2]  # layers from 1
    with pytest.raises(TypeError, match="takes a training result"):
        ji.report.report_train(3, tmp_path)


def test_outcome_rule_weighs_saturation_and_dead_units():
    """The cases the variance ratio alone misjudged (issue 15, item 4)."""
    flat = np.ones(5)
    # tanh under N(0, 1) weights: variance steady, 78% of units pinned at ±1
    sat = np.array([0.2, 0.6, 0.78, 0.78, 0.78])
    assert tables.classify(flat, saturated=sat) == ("saturates", 2)
    assert tables.classify(flat, saturated=sat * 0.5) == ("stable", None)
    # ReLU at ratio 348 grows, it does not merely drift
    assert tables.classify(np.array([1.0, 7.0, 48.0, 348.0])) == ("grows", 3)
    assert tables.classify(np.array([1.0, 0.05, 0.01])) == ("shrinks", 2)
    # tanh under Glorot shrinks slowly: a direction, not only "drifts"
    assert tables.classify(np.array([1.0, 0.8, 0.6, 0.45])) == ("drifts down", 4)
    assert tables.classify(np.array([1.0, 2.5])) == ("drifts up", 2)
    # relu's half-dead layers are normal; nearly all dead is not
    assert tables.classify(flat, dead=np.full(5, 0.5)) == ("stable", None)
    assert tables.classify(flat, dead=np.array([0.5, 0.5, 0.95, 1, 1])) == ("dies", 3)
    # the first event decides: an explosion before the saturation
    assert tables.classify(np.array([1.0, 2e3]), saturated=np.array([0.0, 0.9]))[0] == "explodes"
    assert "saturates" in tables.OUTCOME_RULE


def test_summary_table_calls_saturated_tanh_saturated():
    grid = ji.Grid(inits=["normal(stddev=1.0)", "glorot_normal"], activations=["tanh"],
                   depth=4, width=64, seeds=2, batch_size=128, gradients=False)  # fmt: skip
    res = ji.sweep(grid, progress=False)
    rows = {r["init"]: r for r in _csv(report.summary_table(res, fmt="csv"))}
    assert rows["normal(stddev=1.0)"]["outcome"] == "saturates"
    assert float(rows["normal(stddev=1.0)"]["saturated_pct_at_L"]) > 50
    assert rows["glorot_normal"]["outcome"] in ("stable", "drifts down")


def test_histogram_panels_name_their_off_range_share():
    """ReLU under N(0, 1) weights: most values lie past the [0, 3] range of its histogram."""
    grid = ji.Grid(inits=["normal(stddev=1.0)", "he_normal"], activations=["relu"], depth=3,
                   width=32, seeds=2, batch_size=64, gradients=False)  # fmt: skip
    res = ji.sweep(grid, progress=False)
    below, above = figures.off_range_shares(res)
    s = res.sel(init="normal(stddev=1.0)", activation="relu")  # (seed, layer)
    n = 2 * 64 * 32
    np.testing.assert_allclose(above[0, 0], s.hist_above.sum(0) / n)
    assert above[0, 0, -1] > 0.3  # σ_w² = 32: the variance explodes
    assert (below == 0).all()  # relu is never below 0
    assert above[1, 0, 0] < 0.03  # He: z ~ N(0, 2) at layer 1, P(z > 3) = 1.7%
    fig = figures.histogram_grid(res)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert f"{above[0, 0, -1]:.0%} > 3" in texts
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert all(label.endswith(("(log y)", "(linear y)")) for label in labels)


def test_report_page_has_contents_scrolling_tables_and_the_source_revision(tmp_path):
    sections = [report.Section(title="First", tables=[("wide", "<table><tr><td>1</td></tr></table>")]),
                report.Section(title="Second")]  # fmt: skip
    page = report.write_report(tmp_path, title="t", sections=sections).read_text()
    assert '<li><a href="#s1">First</a></li>' in page
    assert '<section id="s2">' in page
    assert '<li><a href="#provenance">Provenance</a></li>' in page
    assert '<div class="table-box"><table>' in page  # wide tables scroll inside their box
    assert "@media print {" in page  # and on paper they fit the page, in landscape
    assert "size: A4 landscape" in page
    rev = report.provenance()["source"]
    if rev is None:  # not a git checkout (an installed wheel): nothing claimed
        assert "git commit" not in page
    else:
        assert len(rev["commit"]) == 40
        assert f"git commit <code>{rev['commit'][:12]}</code>" in page
        assert ("uncommitted changes" in page) == rev["dirty"]


def test_phase_diagram_draws_the_critical_line_from_critical_sigma_w2():
    from sweeps import edge_of_chaos

    w, b = np.linspace(0.5, 3.5, 10), np.linspace(0.0, 0.45, 10)  # the --quick mesh
    chi1 = np.asarray(ji.theory.phase_diagram("erf", sigma_w2=w, sigma_b2=b).chi1)
    line = edge_of_chaos.critical_line("erf", b)
    assert line[1][0] == pytest.approx(np.pi / 4, rel=1e-5)  # at σ_b² = 0, at any resolution
    fig = figures.phase_diagram(w, b, chi1, critical=line,
                                empirical=([1.0, 2.0], [0.1, 0.1], [0.5, 1.5], [0.5, 0.8]))  # fmt: skip
    (drawn,) = [l for l in fig.axes[0].get_lines() if l.get_label() == r"$\chi_1 = 1$"]
    np.testing.assert_array_equal(drawn.get_xdata(), line[1])
    np.testing.assert_array_equal(drawn.get_ydata(), line[0])
    # no contour of the mesh when the line is given
    assert not any(type(c).__name__ == "QuadContourSet" for c in fig.axes[0].collections)
    assert any(type(c).__name__ == "QuadContourSet"  # without it, the contour as before
               for c in figures.phase_diagram(w, b, chi1).axes[0].collections)  # fmt: skip
    (legend,) = fig.legends  # under the axes, off the measured points
    legend = [t.get_text() for t in legend.get_texts()]
    assert "off theory's side (1/2)" in legend  # the second point disagrees with theory
    assert edge_of_chaos.beyond_the_edge("relu").startswith("q* → ∞")
    assert edge_of_chaos.beyond_the_edge("tanh") == "chaotic"
    texts = [t.get_text() for t in figures.phase_diagram(w, b, chi1, beyond="q* → ∞").axes[0].texts]
    assert any(t.startswith("q* → ∞") for t in texts)


def test_curve_styles_tell_forty_curves_apart_and_stagger_their_markers():
    styles = [figures.line_style(i) for i in range(40)]
    assert len({(s["color"], s["marker"]) for s in styles}) == 40
    assert styles[8]["color"] == styles[0]["color"]  # the colours cycle every 8 ...
    assert styles[8]["marker"] != styles[0]["marker"]  # ... the markers do not
    assert styles[8]["linestyle"] != styles[0]["linestyle"]
    # 50 layers: a marker every 5th layer, at a different layer for each of 5 curves
    marks = [set(figures.marker_layers(50, i).tolist()) for i in range(5)]
    assert all(len(m) == 10 for m in marks)
    assert all(not a & b for a, b in itertools.combinations(marks, 2))
    assert figures.marker_layers(5, 3).tolist() == [0, 1, 2, 3, 4]  # few layers: every one
    assert figures.depth_ticks(5, 1.9).tolist() == [1, 2, 3, 4, 5]
    # integer ticks at even steps of 1, 2, 5, 10, 20, 25, 50, ... (layer 3 used to look
    # missing from [1, 3, 5, 6, 8, 10]); layer 1 joins steps of 5 and more
    assert figures.depth_ticks(10, 2.0).tolist() == [2, 4, 6, 8, 10]
    assert figures.depth_ticks(50, 1.0).tolist() == [1, 20, 40]
    assert figures.depth_ticks(200, 2.0).tolist() == [1, 50, 100, 150, 200]
    assert figures.depth_ticks(3, 0.1).tolist() == [1, 3]
    for n in range(2, 400, 7):
        for inches in (0.8, 1.5, 2.0, 4.4):
            ticks = figures.depth_ticks(n, inches)
            steps = set(np.diff(ticks[1:] if ticks[0] == 1 and len(ticks) > 2 else ticks))
            assert len(steps) == 1, (n, inches, ticks)
            assert 1 <= ticks.min() <= ticks.max() <= n, (n, inches, ticks)
            assert len(ticks) <= max(2, int(inches / 0.33)), (n, inches, ticks)


def test_variance_curves_of_coinciding_inits_carry_markers_at_different_layers():
    """glorot_normal and glorot_uniform have one variance at fan_in = fan_out: their measured
    markers must not sit one on another (glorot_normal was hidden under glorot_uniform)."""
    inits = ["glorot_normal", "glorot_uniform", "lecun_normal"]
    grid = ji.Grid(inits=inits, activations=["tanh"], depth=24, width=8, seeds=1, batch_size=8,
                   gradients=False)  # fmt: skip
    res = ji.sweep(grid, progress=False)
    fig = figures.variance_vs_depth(res, theory=ji.theory.predict(grid))
    marks = [l for l in fig.axes[0].get_lines() if l.get_linestyle() == "None"]
    assert len(marks) == 3
    shown = [set(m.get_markevery()) for m in marks]
    assert all(not a & b for a, b in itertools.combinations(shown, 2))
    assert len({m.get_marker() for m in marks}) == 3
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:3] == inits


def test_histogram_grid_of_one_layer_has_a_row_per_activation_and_wrapped_titles(res):
    fig = report.histogram_grid(res, layers=[1])
    axes = np.array(fig.axes).reshape(2, len(INITS))  # activations × inits
    assert [ax.get_title() for ax in axes[0]] == [figures.wrap_label(i) for i in INITS]
    assert all(ax.get_title() == "" for ax in axes[1])
    assert axes[0, 0].get_ylabel().startswith("tanh\nfraction (")
    assert axes[1, 0].get_ylabel().startswith("relu\nfraction (")
    scales = {ax.get_yscale() for ax in axes[1]}
    assert len(scales) == 1  # one y scale a row, named in its label
    assert axes[1, 0].get_ylabel().endswith(f"({scales.pop()} y)")
    heights = axes[1, 1].patches[0].get_data().values  # (relu, he_normal) at layer 1
    np.testing.assert_allclose(heights, res.hist[1, 1, :, 0].sum(0) / (2 * 32 * 16), rtol=1e-6)
    assert figures.wrap_label("glorot_normal(convention='keras')") == (
        "glorot_normal\n(convention='keras')"
    )
    assert figures.wrap_label("he_normal") == "he_normal"


def test_phase_diagram_keeps_points_inside_and_labels_off_them():
    w, b = np.linspace(0.25, 4.0, 10), np.linspace(0.0, 0.5, 10)
    edges = figures.padded_edges(b, np.array([0.0, 0.6]))
    assert edges[0] < 0.0
    assert edges[-1] > 0.6  # a measured point beyond the mesh is inside the axes
    np.testing.assert_allclose(edges[1:-1], (b[:-1] + b[1:]) / 2)
    ww, bb = np.meshgrid(w, b, indexing="ij")
    points = (np.array([1.0, 1.0, 1.5]), np.array([0.3, 0.25, 0.3]))  # by the centroid
    mask = ww < 2.0
    x, y = figures.label_spot(w, b, mask, [points], ((0.0, 4.2), (-0.02, 0.52)))
    assert x < 2.0  # inside its region
    gap = np.min(
        np.maximum(np.abs(points[0] - x) / 4.2 / 0.15, np.abs(points[1] - y) / 0.54 / 0.08)
    )
    assert gap >= 1.0  # the label's box covers no point
    chi1 = ww / 2.0
    fig = figures.phase_diagram(w, b, chi1, empirical=(points[0], points[1], [0.5, 0.5, 0.7]))
    ax = fig.axes[0]
    assert ax.get_ylim()[1] > 0.5  # the top row of points is inside, not on the title
    (ordered,) = [t for t in ax.texts if t.get_text().startswith("ordered")]
    assert ordered.get_position() != (ww[mask].mean(), bb[mask].mean())


def test_write_report_records_every_run(tmp_path):
    runs = {name: {"grid": {"activations": [name], "depth": [3]}, "prng_impl": "threefry2x32"}
            for name in ("tanh", "relu", "erf")}  # fmt: skip
    page = report.write_report(tmp_path, title="t", sections=[], runs=runs).read_text()
    for name in runs:
        assert f"<h3>Grid: {name}</h3>" in page
        assert f"&quot;activations&quot;: [&quot;{name}&quot;]" in page
    with pytest.raises(ValueError, match="not both"):
        report.write_report(tmp_path, title="t", sections=[], attrs={}, runs=runs)


def test_layer_table_columns_select_and_explain(res, theory):
    table = report.layer_table(res, theory=theory, init="he_normal", activation="relu",
                               columns=["ratio", "pre_var"], fmt="csv")  # fmt: skip
    rows = _csv(table)
    assert list(rows[0]) == ["layer", "pre_var", "pre_var_std", "ratio"]  # the table's order
    np.testing.assert_allclose(_col(rows, "ratio"), _geomean_ratio(res.pre_var[1, 1]), rtol=1e-6)
    assert max(len(line) for line in report.layer_table(
        res, theory=theory, init="he_normal", activation="relu",
        columns=["pre_var", "pre_var_theory", "ratio"]).splitlines()) < 80  # fmt: skip
    with pytest.raises(ValueError, match=r"columns='ratoi'.*Did you mean 'ratio'"):
        report.layer_table(res, columns=["ratoi"])
    assert "**ratio**" in tables.layer_table.__doc__


# -- figures of ModelGrid sweeps: layer_profile -----------------------------------------------------

MODEL_INITS = ["he_normal", "normal(stddev=0.01)"]
BLOCKS = 10  # a 42-layer ResNet: inp, 10 × (norm, fc_in, fc_out, block), the model's output


@pytest.fixture(scope="module")
def model_res():
    import functools

    make = functools.partial(ji.models.ResNet, d_in=4, width=8, depth=BLOCKS)
    grid = ji.ModelGrid(
        model=make,
        inits=MODEL_INITS,
        seeds=3,
        inputs="gaussian",
        input_shape=(8, 4),
        gradients=False,
    )
    return ji.sweep(grid, progress=False)


def _labelled_lines(ax):
    return [l for l in ax.get_lines() if not l.get_label().startswith("_")]


def test_layer_profile_draws_a_seed_mean_and_band_per_init(model_res):
    from matplotlib.collections import PolyCollection

    fig = report.layer_profile(model_res)
    (ax,) = fig.axes
    lines = _labelled_lines(ax)
    assert [l.get_label() for l in lines] == MODEL_INITS
    n = 4 * BLOCKS + 2
    for i, line in enumerate(lines):  # the line is the seed mean of each layer, in call order
        np.testing.assert_allclose(line.get_ydata(), model_res.pre_var[i].mean(0), rtol=1e-6)
        np.testing.assert_array_equal(line.get_xdata(), np.arange(n))
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == len(MODEL_INITS)
    assert ax.get_yscale() == "log"  # std 0.01 sits decades under He
    # 42 layers stay readable: one tick per block, named by its path, shaded alternately
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["inp", *[f"blocks/{b}" for b in range(BLOCKS)], "(model)"]
    # every layer has a tick (matplotlib drops the minor ones under a major one)
    assert set(range(n)) <= set(ax.get_xticks(minor=True)) | set(ax.get_xticks())
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [*MODEL_INITS, "line: seed mean; band: 10%–90% of seeds"]


def test_layer_profile_selects_by_type_kernels_and_regex(model_res):
    from jaxinit.report import _layers

    def picked(layers):
        return _layers.layer_series(model_res, layers=layers)[0]

    blocks = [f"blocks/{b}" for b in range(BLOCKS)]
    assert picked("ResidualBlock") == blocks
    assert picked(["inp", "ResidualBlock"]) == ["inp", *blocks]  # union, in call order
    assert picked(r"fc_out$") == [f"{b}/fc_out" for b in blocks]
    kernels = picked("kernels")
    assert len(kernels) == 1 + 2 * BLOCKS
    assert kernels[0] == "inp"
    assert set(kernels) == set(model_res.attrs["kernels"])
    assert picked("Linear") == kernels
    # only block outputs: one tick each; LayerNorm outputs (all ≈ 1) draw on a linear axis
    fig = report.layer_profile(model_res, layers="ResidualBlock", init="he_normal")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == blocks
    assert [l.get_label() for l in _labelled_lines(fig.axes[0])] == ["he_normal"]
    fig = report.layer_profile(model_res, layers="LayerNorm", init="he_normal", center="median")
    assert fig.axes[0].get_yscale() == "linear"
    assert fig.legends[0].get_texts()[-1].get_text().startswith("line: seed median")


def test_layer_profile_names_what_is_valid(model_res, res):
    with pytest.raises(ValueError, match=r"field='pre_vr'.*'pre_var'.*Did you mean 'pre_var'"):
        report.layer_profile(model_res, field="pre_vr")
    with pytest.raises(ValueError, match="not a per-layer field"):
        report.layer_profile(model_res, field="hist")
    with pytest.raises(
        ValueError, match=r"selects no layer.*'LayerNorm'.*'ResidualBlock'.*'kernels'"
    ):
        report.layer_profile(model_res, layers="Dense")
    with pytest.raises(ValueError, match="no valid regex"):
        report.layer_profile(model_res, layers="blocks/[")
    with pytest.raises(TypeError, match="layers must be"):
        report.layer_profile(model_res, layers=[3])
    with pytest.raises(ValueError, match="center"):
        report.layer_profile(model_res, center="mode")
    with pytest.raises(ValueError, match="band must be quantiles"):
        report.layer_profile(model_res, band=(0.9, 0.1))
    with pytest.raises(TypeError, match="SweepResult"):
        report.layer_profile(model_res.pre_var)
    with pytest.raises(ValueError, match="layers differ"):  # not one structure
        report.layer_profile({"resnet": model_res, "mlp": res.sel(activation="relu")})
    with pytest.raises(ValueError, match="needs a ModelGrid result"):
        report.layer_profile(res, layers="kernels", activation="relu")
    with pytest.raises(ValueError, match=r"no module paths \(an MLP sweep\)"):
        report.layer_profile(res, layers="Linear")


def test_layer_profile_of_an_mlp_sweep_and_of_named_results(model_res, res):
    fig = report.layer_profile(res)  # the MLP engine's: layers 1..L, a line per init and activation
    ax = fig.axes[0]
    labels = [l.get_label() for l in _labelled_lines(ax)]
    assert labels == [f"{i} · {a}" for i in INITS for a in ("tanh", "relu")]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(l) for l in range(1, LAYERS + 1)]
    assert ax.get_ylabel() == figures.SHORT_LABELS["pre_var"]
    fig = report.layer_profile(res, activation="relu", layers="[2-4]")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["2", "3", "4"]
    # several results of one structure, named; into the caller's axes, legend left to it
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    out = report.layer_profile(
        {"a": model_res.sel(init=["he_normal"]), "b": model_res},
        layers="ResidualBlock",
        ax=ax,
        legend=False,
        names={"b": "B", "normal(stddev=0.01)": "small"},
    )
    assert out is ax.figure
    assert ax.get_legend() is None
    assert not out.legends
    assert [l.get_label() for l in _labelled_lines(ax)] == ["a", "B · he_normal", "B · small"]


def test_layer_ticks_thin_long_paths_to_round_steps():
    from jaxinit.report import _layers

    convs = [f"convs/{i}" for i in range(200)]
    ticks = _layers.layer_ticks(convs, 6.0)
    assert ticks.texts == [f"convs/{i}" for i in range(0, 200, 10)] + ["convs/199"]
    assert ticks.spans == []
    assert ticks.minor.size == 0
    assert len(ticks.texts) <= 6.0 / _layers.TICK_INCHES + 1
    labels = [
        "embed",
        *[f"blocks/{b}/{m}" for b in range(3) for m in ("ln1", "attn", "fc")],
        "blocks/2",
        "ln_f",
        "(model)",
    ]
    ticks = _layers.layer_ticks(labels, 6.0)
    assert ticks.texts == ["embed", "blocks/0", "blocks/1", "blocks/2", "ln_f", "(model)"]
    assert ticks.spans == [(1, 3), (4, 6), (7, 10)]
    np.testing.assert_allclose(ticks.major[1:4], [2.0, 5.0, 8.5])


def test_report_of_a_model_sweep_draws_its_layers_by_path(tmp_path):
    import functools

    x = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    make = functools.partial(ji.models.ResNet, d_in=8, width=8, depth=2)
    res = ji.sweep(ji.ModelGrid(model=make, inits=["he_normal", "orthogonal"], inputs=x, seeds=2))
    paths = ji.report.report_sweep(res, tmp_path)
    names = sorted(p.name for p in paths.figures)
    assert names == ["model_dead.png", "model_grad_var.png", "model_pre_var.png"]
    rows = (tmp_path / "tables" / "layers.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * len(res.attrs["layers"])  # header, (init, layer)
    assert rows[1].startswith("he_normal,inp,Linear,")


def test_edge_classes_score_points_on_the_line_as_their_own_class():
    """ReLU at σ_w² = 2: theory's χ₁ is 1 exactly; measured 1.009 ± 0.02 and 0.9945 ± 0.02
    are on the edge within error (neither a hit nor a miss), 1.3 ± 0.02 is a miss against an
    ordered theory, and without errors the sides decide alone."""
    measured = np.array([1.009, 0.9945, 1.3, 0.7])
    theory = np.array([1.0, 1.0, 0.9, 0.9])
    se = np.full(4, 0.02)  # of log χ₁
    assert figures.edge_classes(measured, theory, se).tolist() == ["edge", "edge", "other", "same"]
    assert figures.edge_classes(measured, theory).tolist() == ["other", "same", "other", "same"]
    fig = report.phase_diagram(
        np.linspace(1.5, 2.5, 5), np.linspace(0, 0.2, 4), np.ones((5, 4)),
        empirical=(np.full(4, 2.0), np.linspace(0, 0.2, 4), measured, theory, se),
    )  # fmt: skip
    labels = fig.axes[0].get_legend_handles_labels()[1] + [
        t.get_text() for f in fig.legends for t in f.get_texts()
    ]
    assert any("on the edge within error (2/4)" in label for label in labels), labels
    assert any("off theory's side (1/4)" in label for label in labels), labels


def test_trainability_draws_accuracy_and_the_depth_bound():
    w, d = np.array([1.0, 1.5, 2.0]), np.array([10, 20])
    acc = np.array([[0.9, 0.1], [0.95, 0.9], [0.8, 0.3]])
    s = np.linspace(1.0, 2.0, 11)
    xi = np.full(11, 3.0)
    fig = ji.report.trainability(w, d, acc, xi_c=(s, xi), critical=1.5, chance=0.1)
    ax = fig.axes[0]
    (mesh,) = ax.collections
    np.testing.assert_array_equal(mesh.get_array().reshape(2, 3), acc.T)  # depth rows
    assert mesh.get_clim() == (0.1, 1.0)
    curve = [line for line in ax.lines if line.get_color() == "black"]
    np.testing.assert_allclose(curve[0].get_ydata(), 18.0)  # 6 ξ_c
    assert any("critical" in t.get_text() for t in fig.legends[0].texts)
    with pytest.raises(ValueError, match=r"must be \(len\(sigma_w2\), len\(depths\)\) = \(3, 2\)"):
        ji.report.trainability(w, d, acc.T)
    with pytest.raises(ValueError, match="increasing"):
        ji.report.trainability(w[::-1], d, acc)
