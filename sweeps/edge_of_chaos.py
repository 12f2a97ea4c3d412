r"""The order-to-chaos phase diagram: mean-field theory beside the measured networks.

Theory: χ₁ = σ_w² E[φ′(√q* z)²] and the correlation depth scale ξ_c over a
100 × 100 grid of (σ_w², σ_b²) per activation, computed vectorized
(Poole et al. 2016, https://arxiv.org/abs/1606.05340; Schoenholz et al. 2017,
https://arxiv.org/abs/1611.01232). χ₁ = 1 is the edge of chaos: below it
(ordered) gradients vanish and inputs become correlated with depth; above it
(chaotic) gradients explode and nearby inputs decorrelate.

Measured: an 8 × 5 sub-grid of the same plane, one sweep per activation,
weights N(0, σ_w²/fan_in) and biases N(0, σ_b²). From each network's
back-propagated gradient variance the empirical χ₁ is the per-layer growth
:math:`(\mathrm{Var}\,\delta_1 / \mathrm{Var}\,\delta_L)^{1/(L-1)}`, and the
mean cosine between samples at layer L is the empirical correlation.

    python -m sweeps.edge_of_chaos --out out/edge_of_chaos [--seeds 2] [--quick]
        [--activations tanh relu erf]

Writes ``phase-<activation>.png``, ``summary.json`` (per activation: the
critical σ_w² at σ_b² = 0, the cells computed and their time, how many
measured points fall on theory's side of the line, and the mean cosine between
samples at layer L, measured and predicted, per (σ_w², σ_b²)) and ``report.html``.
"""

from __future__ import annotations

import math
import time

import numpy as np

import jaxinit as ji
from sweeps import _common

ACTIVATIONS = ["tanh", "relu", "erf"]
THEORY_W2 = np.linspace(0.25, 4.0, 100)
THEORY_B2 = np.linspace(0.0, 0.5, 100)
MEASURED_W2 = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
MEASURED_B2 = [0.0, 0.05, 0.15, 0.3, 0.5]


def init_spec(sigma_w2: float) -> str:
    return f"variance_scaling(scale={sigma_w2}, distribution='untruncated_normal')"


def bias_spec(sigma_b2: float) -> str:
    return "zeros" if sigma_b2 == 0 else f"normal(stddev={math.sqrt(sigma_b2)!r})"


def measured_plane(*, quick: bool) -> tuple[list[float], list[float]]:
    """The (σ_w², σ_b²) values of the measured sub-grid."""
    return (MEASURED_W2[::3], MEASURED_B2[::2]) if quick else (MEASURED_W2, MEASURED_B2)


def make_grid(activation: str, *, quick: bool, seeds: int) -> ji.Grid:
    depth, width, batch_size = (6, 32, 32) if quick else (20, 256, 64)
    w2, b2 = measured_plane(quick=quick)
    return ji.Grid(
        inits=[init_spec(w) for w in w2],
        activations=[activation],
        depth=depth,
        width=width,
        seeds=seeds,
        batch_size=batch_size,
        bias_inits=[bias_spec(b) for b in b2],
        cosine=True,
    )


def measured_chi1(res: ji.SweepResult) -> tuple[np.ndarray, np.ndarray]:
    """Per (init, bias_init): the geometric seed mean of the per-layer gradient growth, and
    the standard error of its log over seeds (0 with one seed: no error to estimate)."""
    g = res.grad_var  # (init, bias_init, seed, layer)
    depth = g.shape[-1]
    per_seed = np.log(g[..., 0] / g[..., -1]) / (depth - 1)
    n = np.sum(np.isfinite(per_seed), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.nanstd(per_seed, axis=-1, ddof=1) / np.sqrt(n) if per_seed.shape[-1] > 1 else 0
    return np.exp(np.nanmean(per_seed, axis=-1)), np.nan_to_num(np.asarray(se, np.float64))


def critical_line(act: str, sigma_b2: np.ndarray, points: int = 200) -> tuple:
    """``(σ_b², σ_w²)`` of the edge of chaos from ``theory.critical_sigma_w2`` itself, on a
    fine grid over the plotted σ_b² range, whatever the mesh's resolution: a contour of
    χ₁ = 1 on the 10 × 10 mesh of --quick puts erf's at σ_b² = 0 near 1.0, against the
    exact 0.7854 (π/4)."""
    b = np.linspace(float(sigma_b2[0]), float(sigma_b2[-1]), points)
    return b, np.asarray(ji.theory.critical_sigma_w2(act, sigma_b2=b), np.float64)


def beyond_the_edge(act: str) -> str:
    """What the χ₁ > 1 side is: chaos, or (the relu family) a q* that diverges."""
    crit = float(ji.theory.critical_sigma_w2(act, sigma_b2=0.1))
    div = float(ji.theory.divergence_sigma_w2(act, sigma_b2=0.1))
    return "q* → ∞\n(no chaotic phase)" if np.isclose(crit, div, rtol=1e-5) else "chaotic"


def theory_mesh(*, quick: bool) -> tuple[np.ndarray, np.ndarray]:
    """The (σ_w², σ_b²) values of theory's mesh: 100 × 100, or 10 × 10 over the same
    ranges at --quick (so the coarse mesh still reaches the measured σ_b² = 0.5)."""
    if quick:
        return (
            np.linspace(THEORY_W2[0], THEORY_W2[-1], 10),
            np.linspace(THEORY_B2[0], THEORY_B2[-1], 10),
        )
    return THEORY_W2, THEORY_B2


def point_key(sigma_w2: float, sigma_b2: float) -> str:
    """How summary.json names a measured point: ``"σ_w²|σ_b²"``."""
    return f"{sigma_w2}|{sigma_b2}"


NUMBERS_COLUMNS = [
    "activation",
    "critical σ_w² at σ_b² = 0",
    "beyond the edge",
    "theory cells",
    "theory s",
    "networks (depth)",
    "sweep s",
    "on theory's side",
    "off theory's side (σ_w²|σ_b²)",
    "on the edge within error (σ_w²|σ_b²)",
]


def numbers_rows(summary: dict) -> list[list]:
    """One row of NUMBERS_COLUMNS per activation of ``summary`` (what main returns)."""
    return [
        [
            act,
            s["critical_sigma_w2_at_sigma_b2_0"],
            s["beyond_the_edge"],
            f"{s['theory_cells']:,}",
            s["theory_seconds"],
            f"{s['measured_networks']} (L = {s['depth']})",
            s["sweep_seconds"],
            f"{s['measured_on_theory_side']}/{s['measured_points']}",
            ", ".join(s["off_theory_side"]) or "none",
            ", ".join(s["on_the_edge_within_error"]) or "none",
        ]
        for act, s in summary.items()
    ]


POINT_COLUMNS = [
    "σ_w²",
    "σ_b²",
    "χ₁ measured",
    "χ₁ theory",
    "same side",
    "cos at L measured",
    "cos at L theory",
]


def point_rows(s: dict) -> list[list]:
    """One row of POINT_COLUMNS per measured point of one activation's summary."""
    rows = []
    for key, chi in s["chi1_at"].items():
        w, b = (float(x) for x in key.split("|"))
        rows.append(
            [
                w,
                b,
                chi,
                s["chi1_theory_at"][key],
                "no"
                if key in s["off_theory_side"]
                else ("on the edge" if key in s["on_the_edge_within_error"] else "yes"),
                s["cosine_at_L"][key],
                s["cosine_theory_at_L"][key],
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__, seeds=2)
    p.add_argument(
        "--activations",
        nargs="+",
        default=ACTIVATIONS,
        metavar="SPEC",
        help=f"activations, as jaxinit specs ({' '.join(ACTIVATIONS)})",
    )
    args = _common.parse(p, argv)
    for act in args.activations:
        try:
            ji.activations.get(act)
        except ValueError as e:
            p.error(f"--activations: {e}")
    w2, b2 = theory_mesh(quick=args.quick)
    summary, sections, runs = {}, [], {}
    for act in args.activations:
        start = time.perf_counter()
        phase = ji.theory.phase_diagram(act, sigma_w2=w2, sigma_b2=b2)
        chi1 = np.asarray(phase.chi1)
        theory_s = time.perf_counter() - start
        grid = make_grid(act, quick=args.quick, seeds=args.seeds)
        res, sweep_s = _common.run(grid, args.out, f"sweep-{act}")
        runs[act] = res.attrs
        res = res.squeeze()
        ew2, eb2 = measured_plane(quick=args.quick)  # the grid's init and bias order
        chi_emp, log_se = measured_chi1(res)
        predicted = ji.theory.predict(grid).squeeze()
        ww, bb = np.meshgrid(ew2, eb2, indexing="ij")
        q = ji.theory.q_star(act, sigma_w2=ww, sigma_b2=bb).q  # one call over the mesh
        chi_th = np.asarray(ji.theory.chi1(act, q=q, sigma_w2=ww))
        # as the figure rings them: same side, other side, or on the edge within error
        classes = ji.report.figures.edge_classes(chi_emp, chi_th, log_se)
        line = critical_line(act, b2)
        beyond = beyond_the_edge(act)
        fig = ji.report.phase_diagram(
            w2,
            b2,
            chi1,
            xi_c=np.asarray(phase.xi_c),
            empirical=(ww, bb, chi_emp, chi_th, log_se),
            critical=line,
            beyond=beyond,
        )
        fig.axes[0].set_title(
            f"{act}: theory ({w2.size}×{b2.size}) and measured (L = {grid.depth})", fontsize=8
        )
        (png,) = ji.report.save(fig, args.out / f"phase-{act}")
        keys = [[point_key(w, b) for b in eb2] for w in ew2]
        summary[act] = {
            "critical_sigma_w2_at_sigma_b2_0": float(
                ji.theory.critical_sigma_w2(act, sigma_b2=0.0)
            ),
            "beyond_the_edge": beyond,
            "theory_cells": int(chi1.size),
            "theory_seconds": theory_s,
            "measured_networks": len(grid),
            "depth": grid.depth,
            "sweep_seconds": sweep_s,
            "measured_points": int(chi_emp.size),
            "measured_on_theory_side": int((classes == "same").sum()),
            "off_theory_side": [
                keys[i][j] for i, j in zip(*np.nonzero(classes == "other"), strict=True)
            ],
            "on_the_edge_within_error": [
                keys[i][j] for i, j in zip(*np.nonzero(classes == "edge"), strict=True)
            ],
            "chi1_log_se_at": {
                keys[i][j]: float(log_se[i, j]) for i, j in np.ndindex(log_se.shape)
            },
            "chi1_at": {keys[i][j]: float(chi_emp[i, j]) for i, j in np.ndindex(chi_emp.shape)},
            "chi1_theory_at": {
                keys[i][j]: float(chi_th[i, j]) for i, j in np.ndindex(chi_th.shape)
            },
            "cosine_theory_at_L": {
                keys[i][j]: float(np.nanmean(predicted.cosine[i, j, :, -1]))
                for i, j in np.ndindex(chi_emp.shape)
            },
            "cosine_at_L": {
                keys[i][j]: float(np.nanmean(res.cosine[i, j, :, -1]))
                for i, j in np.ndindex(chi_emp.shape)
            },
        }
        s = summary[act]
        caption = (
            f"{act}: log10 ξ_c; black: the χ₁ = 1 line (critical_sigma_w2 at "
            f"{line[0].size} values of σ_b²); markers: measured networks, "
            f"{s['measured_on_theory_side']}/{s['measured_points']} on theory's side "
            "(ringed in red: the other side; in grey: within 2 standard errors of χ₁ = 1, "
            "where the measurement cannot tell the side)."
        )
        sections.append(
            ji.report.Section(
                title=f"{act}: phase diagram",
                text=f"{len(grid)} networks ({len(ew2)} σ_w² × {len(eb2)} σ_b² × {args.seeds} seeds), "
                f"depth {grid.depth}, width {grid.width}; measured χ₁ is the geometric "
                "seed mean of the per-layer gradient growth.",
                figures=[(caption, png)],
            )
        )
        print(
            f"{act}: critical σ_w² at σ_b² = 0 is "
            f"{s['critical_sigma_w2_at_sigma_b2_0']:.4f}; {chi1.size} cells in "
            f"{theory_s:.2f} s; {s['measured_on_theory_side']}/{s['measured_points']} measured "
            f"points on theory's side, {len(s['on_the_edge_within_error'])} on the edge within "
            "error"
        )
    summary = _common.write_summary(args.out, summary)
    numbers = ji.report.Section(
        title="Numbers",
        text="Per activation: theory's edge of chaos, the cells computed, and how many measured "
        "networks fall on theory's side of χ₁ = 1. Each activation's grid is in the "
        "provenance.",
        tables=[
            ("Per activation", ji.report.render(NUMBERS_COLUMNS, numbers_rows(summary), fmt="html"))
        ],
    )
    points = ji.report.Section(
        title="Measured points",
        text="Per measured network configuration: χ₁ measured and theory's, whether they fall "
        "on the same side of 1, and the mean cosine between samples at layer L.",
        tables=[
            (act, ji.report.render(POINT_COLUMNS, point_rows(s), fmt="html"))
            for act, s in summary.items()
        ],
    )
    ji.report.write_report(
        args.out, title="The edge of chaos", sections=[numbers, *sections, points], runs=runs
    )
    return summary


if __name__ == "__main__":
    main()
