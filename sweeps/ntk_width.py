r"""The empirical NTK of the zoo's networks against its infinite-width limit, as width grows.

A finite network's neural tangent kernel :math:`\hat\Theta = J J^\top` (Jacot et al. 2018)
fluctuates around the infinite-width kernel with a relative spread of order
:math:`\sqrt{\mathrm{depth}/\mathrm{width}}` (Hanin & Nica 2019): its distance to the limit,
:math:`\|\hat\Theta - \Theta\|_F / \|\Theta\|_F`, should fall like
:math:`\mathrm{width}^{-1/2}`. Measured here on the networks a ModelGrid builds
(``grid.build(seed, init="he_normal")``: the sweep's own networks, zero biases), with
``ji.theory.empirical_ntk`` in the NTK parameterization (σ_w² = 2), for

- the zoo's CNN (``ji.models.CNN``: 2 circular 3×3 convolutions, ReLU, global average
  pooling, a linear head of 1) on 3 Gaussian 4×4×2 images, against
  ``ji.theory.conv_kernels``, at 16 to 512 channels;
- the zoo's ResNet without normalization (``ji.models.ResNet(norm=None, alpha=0.5)``: an
  input layer, 2 blocks ``h + α·fc_out(relu(fc_in(h)))``, a linear head of 1) on 4
  Gaussian inputs of 8 features, against ``ji.theory.residual_kernels``' stream read by
  the head, :math:`\Theta_f = \sigma_w^2 (K + \Theta)`, at widths 32 to 2048.

    python -m sweeps.ntk_width --out out/ntk_width [--seeds 8] [--quick]

Writes ``ntk_width.png`` (the distance against width on log axes, the seeds' mean and
spread, a :math:`\mathrm{width}^{-1/2}` guide), ``summary.json`` (per model: widths,
distances, the fitted slope) and ``report.html``.
"""

from __future__ import annotations

import functools
import time

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

import jaxinit as ji
from jaxinit.report import tables
from jaxinit.report.figures import line_style, styled
from sweeps import _common

SIGMA_W2 = 2.0  # He
ALPHA = 0.5  # the ResNet's branch scale
DEPTH = 2  # convolutions; residual blocks
MODELS = ("cnn", "resnet")


def widths(model: str, quick: bool) -> tuple[int, ...]:
    if model == "cnn":
        return (8, 32) if quick else (16, 32, 64, 128, 256, 512)
    return (16, 64) if quick else (32, 64, 128, 256, 512, 1024, 2048)


def inputs(model: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (3, 4, 4, 2) if model == "cnn" else (4, 8)
    return rng.standard_normal(shape).astype(np.float32)


def factory(model: str, width: int):
    if model == "cnn":
        return functools.partial(ji.models.CNN, in_channels=2, channels=width, depth=DEPTH,
                                 classes=1, padding="CIRCULAR")  # fmt: skip
    return functools.partial(ji.models.ResNet, d_in=8, width=width, depth=DEPTH, alpha=ALPHA,
                             norm=None, classes=1)  # fmt: skip


def limit(model: str, x: np.ndarray) -> np.ndarray:
    """The infinite-width NTK of the head's output (NTK parameterization, σ_b² = 0)."""
    if model == "cnn":
        k = ji.theory.conv_kernels("relu", x, depth=DEPTH, sigma_w2=SIGMA_W2, sigma_b2=0.0,
                                   padding="CIRCULAR")  # fmt: skip
        return np.asarray(k.ntk, np.float64)
    k = ji.theory.residual_kernels("relu", x, depth=DEPTH, alpha=ALPHA, sigma_w2=SIGMA_W2,
                                   sigma_b2=0.0, norm=None)  # fmt: skip
    # a linear head on the stream h: Θ_f = σ_w² (h·h'/n + Θ_h) at infinite width
    return SIGMA_W2 * (np.asarray(k.nngp, np.float64) + np.asarray(k.ntk, np.float64))


def distances(model: str, width: int, seeds: int, theta: np.ndarray) -> np.ndarray:
    """Each seed's ‖Θ̂ - Θ‖_F / ‖Θ‖_F at ``width``, on the ModelGrid's networks; ``theta``
    the limit (:func:`limit`, the same at every width)."""
    x = inputs(model)
    grid = ji.ModelGrid(model=factory(model, width), inits=["he_normal"], seeds=seeds,
                        inputs="gaussian", input_shape=x.shape)  # fmt: skip
    out = []
    for seed in grid.seeds:
        net = grid.build(seed, init="he_normal")
        emp = np.asarray(ji.theory.empirical_ntk(net, x, sigma_w2=SIGMA_W2), np.float64)
        out.append(np.linalg.norm(emp - theta) / np.linalg.norm(theta))
    return np.asarray(out)


def slope(w, d) -> float:
    """The least-squares slope of log(distance) against log(width)."""
    return float(np.polyfit(np.log(np.asarray(w, np.float64)), np.log(d), 1)[0])


@styled
def plot(summary: dict) -> Figure:
    fig = Figure(figsize=(5.2, 3.4), layout="constrained")
    ax = fig.subplots()
    handles = []
    for k, r in enumerate(summary["models"].values()):
        style = line_style(k)
        w, mean = np.asarray(r["widths"]), np.asarray(r["mean"])
        ax.plot(w, mean, **style)
        ax.fill_between(w, r["q10"], r["q90"], color=style["color"], alpha=0.2, linewidth=0)
        ax.plot(w, mean[0] * np.sqrt(w[0] / w), color=style["color"], linewidth=0.8,
                linestyle=":")  # fmt: skip
        handles.append(Line2D([], [], **style, label=f"{r['label']}: slope {r['slope']:.2f}"))
    handles.append(Line2D([], [], color="0.3", linewidth=0.8, linestyle=":",
                          label=r"width$^{-1/2}$ from the narrowest"))  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width (channels for the CNN)")
    ax.set_ylabel(r"$\|\hat\Theta - \Theta\|_F\,/\,\|\Theta\|_F$")
    ax.set_title("empirical NTK against its infinite-width limit", fontsize=9)
    ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
    ax.legend(handles=handles, fontsize=7, frameon=False)
    return fig


def table(summary: dict, fmt: str) -> str:
    rows = [
        [r["label"], w, m, lo, hi]
        for r in summary["models"].values()
        for w, m, lo, hi in zip(r["widths"], r["mean"], r["q10"], r["q90"], strict=True)
    ]
    cols = ["model", "width", "distance (seed mean)", "q10", "q90"]
    return tables.render(cols, rows, fmt)


LABELS = {"cnn": "CNN (conv_kernels)", "resnet": "ResNet, no norm (residual_kernels)"}


def main(argv: list[str] | None = None) -> dict:
    args = _common.parse(_common.parser(__doc__, seeds=8), argv)
    start = time.perf_counter()
    models = {}
    for model in MODELS:
        ws = widths(model, args.quick)
        theta = limit(model, inputs(model))
        d = np.stack([distances(model, w, args.seeds, theta) for w in ws])  # (width, seed)
        mean = d.mean(1)
        models[model] = {
            "label": LABELS[model],
            "widths": list(ws),
            "mean": mean.tolist(),
            "q10": np.quantile(d, 0.1, axis=1).tolist(),
            "q90": np.quantile(d, 0.9, axis=1).tolist(),
            "slope": slope(ws, mean),
        }
    seconds = time.perf_counter() - start
    summary = _common.write_summary(
        args.out, {"models": models, "seeds": args.seeds, "sigma_w2": SIGMA_W2, "seconds": seconds}
    )
    (png,) = ji.report.save(plot(summary), args.out / "ntk_width")
    ji.report.write_report(
        args.out,
        title="The empirical NTK against width",
        sections=[
            ji.report.Section(
                "Distance to the infinite-width NTK",
                text=__doc__.split("python -m")[0].strip(),
                tables=[("Relative Frobenius distance", table(summary, "html"))],
                figures=[("Distance against width; dotted: width^-1/2.", png)],
            )
        ],
    )
    print(table(summary, "text"))
    slopes = ", ".join(f"{r['label']} {r['slope']:.2f}" for r in models.values())
    print(f"\nslopes (width^-1/2 is -0.5): {slopes}; {seconds:.1f} s; wrote {png.name}, "
          f"summary.json and report.html in {args.out}")  # fmt: skip
    return summary


if __name__ == "__main__":
    main()
