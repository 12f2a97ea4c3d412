"""Seed 002: zeros, large random and He weights on the two-circles problem.

A [2, 10, 5, 1] ReLU network with a sigmoid output, trained by full-batch
gradient descent (learning rate 0.01, 15,000 iterations) on 300 noisy points of
two circles (noise 0.05, test set of 100), from three initializations:

- zeros: every hidden unit computes the same function and gets the same
  gradient, so the symmetry never breaks and the network predicts one class;
- normal(stddev=10.0) ("large random"): the sigmoid output saturates and the
  loss starts huge; it learns slowly;
- he_normal: learns the circles.

    python -m sweeps.circles --out out/circles [--seeds 3] [--quick]

Writes ``summary.json`` (``test_accuracy`` and ``train_accuracy`` by the result's init label,
with ``display``, the human names, beside them;
seed means), ``loss.png``, ``boundaries.png`` (the first seed's decision
boundaries) and ``report.html``.
"""

from __future__ import annotations

import jax
import numpy as np

import jaxinit as ji
from sweeps import _common

INITS = ("zeros", "normal(stddev=10.0)", "he_normal")  # the result's labels, used everywhere
DISPLAY = {"zeros": "zeros", "normal(stddev=10.0)": "large random", "he_normal": "He"}
EXTENT = (-1.5, 1.5, -1.5, 1.5)


def make_grid(*, quick: bool, seeds: int) -> ji.TrainGrid:
    return ji.TrainGrid(
        inits=list(INITS),
        seeds=seeds,
        hidden=(10, 5),
        activations="relu",
        output="sigmoid",
        optimizer="sgd(learning_rate=0.01)",
        steps=1500 if quick else 15_000,
        batch_size=None,
        eval_every=500,
        keep_params=True,
    )


def predict(res: ji.TrainResult, x: np.ndarray, **selection) -> np.ndarray:
    """P(y = 1) of the trained networks at ``x``: (..., n) for the selected models."""
    s = res.sel(**selection)
    n_layers = sum(f.startswith("kernel_") for f in s.fields)
    h = np.asarray(x, np.float64)
    for l in range(n_layers):
        z = h @ s.fields[f"kernel_{l}"] + s.fields[f"bias_{l}"][..., None, :]
        h = np.maximum(z, 0) if l < n_layers - 1 else 0.5 * (1 + np.tanh(z[..., 0] / 2))  # sigmoid
    return h


def accuracy(res: ji.TrainResult, x, y, spec) -> np.ndarray:
    return ((predict(res, x, init=spec) > 0.5) == (np.asarray(y) == 1)).mean(-1)  # per seed


def boundary_titles(summary: dict) -> list[str]:
    """The decision-boundary panels' titles, one per init of ``summary``: the result's label
    (as in the loss legend and summary.json's keys) on the first line, then the human name
    and the test accuracy (one line each, a panel is narrow)."""
    return [
        f"{spec}\n{summary['display'][spec]}: test {acc:.0%}"
        for spec, acc in summary["test_accuracy"].items()
    ]


def main(argv: list[str] | None = None) -> dict:
    args = _common.parse(_common.parser(__doc__, seeds=3), argv)
    key = jax.random.key(2)  # seed 002
    x, y = ji.data.make_circles(jax.random.fold_in(key, 0), 300, noise=0.05)
    x_test, y_test = ji.data.make_circles(jax.random.fold_in(key, 1), 100, noise=0.05)
    x, y, x_test, y_test = (np.asarray(a) for a in (x, y, x_test, y_test))
    grid = make_grid(quick=args.quick, seeds=args.seeds)
    res = ji.train(grid, (x, y), (x_test, y_test), out=args.out / "train")
    summary = {"test_accuracy": {}, "train_accuracy": {}, "final_loss": {}, "display": DISPLAY}
    for spec in INITS:
        summary["test_accuracy"][spec] = float(accuracy(res, x_test, y_test, spec).mean())
        summary["train_accuracy"][spec] = float(accuracy(res, x, y, spec).mean())
        summary["final_loss"][spec] = float(res.sel(init=spec).loss[:, -1].mean())
    summary = _common.write_summary(args.out, summary)
    points = ji.report.decision_grid(EXTENT, resolution=150)
    probs = np.stack(
        [predict(res, points, init=spec, seed=grid.coords()["seed"][0]) for spec in INITS]
    ).reshape(len(INITS), 150, 150)
    titles = boundary_titles(summary)
    loss = ji.report.loss_curves(res)
    _common.name_the_band(loss, f"band: min–max over {args.seeds} seeds")
    figures = []
    for name, fig, caption in (
        (
            "loss",
            loss,
            "Training loss (full batch): seed mean, min–max band over seeds; dashed "
            "with points: test loss at each evaluation.",
        ),
        (
            "boundaries",
            ji.report.decision_boundary(probs, x_test, y_test, extent=EXTENT, titles=titles),
            "Decision boundaries of the first seed, with the test points.",
        ),
    ):
        (png,) = ji.report.save(fig, args.out / name)
        figures.append((caption, png))
    ji.report.write_report(
        args.out,
        title="Two circles: zeros, large random and He",
        sections=[ji.report.Section(title="Training", figures=figures)],
        attrs=res.attrs,
    )
    for spec in INITS:
        print(
            f"{spec:20s} train {summary['train_accuracy'][spec]:6.1%}  "
            f"test {summary['test_accuracy'][spec]:6.1%}  "
            f"loss {summary['final_loss'][spec]:.4f}"
        )
    return summary


if __name__ == "__main__":
    main()
