"""Schoenholz et al. 2017, Fig. 5–6: which deep tanh networks train, over (σ_w², depth).

*Deep Information Propagation* (https://arxiv.org/abs/1611.01232, §5): a random
network carries the correlation between two inputs only over about ξ_c layers,
the correlation depth scale, :math:`\\xi_c^{-1} = -\\log \\chi_c`, infinite at the edge
of chaos (χ₁ = 1). Trained, a network of depth L learns only where
L ≲ 6 ξ_c(σ_w²): a band around the critical σ_w² that widens with depth's budget.

Here: tanh MLPs of ``--width`` units (the paper: 300) on MNIST, σ_b² = 0.05 (bias
N(0, 0.05)), weights N(0, σ_w²/fan_in) (``variance_scaling(scale=σ_w², mode='fan_in',
distribution='normal')``, untruncated), a grid of σ_w² × depth, each cell
``--seeds`` networks; SGD, learning rate 0.01, mini-batches of 128, ``--steps``
steps; the test accuracy at the end (a 2000-image test subset). Every σ_w² of one
depth trains at once in one compiled program (the inits are one family: one draw per
seed, scaled); one program per depth. Theory's 6 ξ_c(σ_w²) (``ji.theory.depth_scales``)
and the critical σ_w² are overlaid.

    python -m sweeps.trainability --out out/trainability [--quick] [--seeds 2]
                                  [--steps 500] [--width 64] [--data-dir DIR]

Writes ``summary.json`` (the accuracy grid, 6 ξ_c per σ_w², and how often "trains"
— accuracy at least halfway from chance to the grid's best — agrees with
L ≤ 6 ξ_c), ``trainability.png`` and ``report.html``; each depth's run is
checkpointed under ``train/L<depth>`` (a rerun resumes).
"""

from __future__ import annotations

import time

import numpy as np

import jaxinit as ji
from sweeps import _common

SIGMA_B2 = 0.05
FACTOR = 6.0  # the paper's bound: L ≤ 6 ξ_c
CHANCE = 0.1  # 10 classes
TEST_IMAGES = 2000
SIZES = {  # (σ_w² grid, depths, width, steps)
    "full": (np.round(np.linspace(1.0, 4.0, 16), 3), (10, 20, 30, 40, 50, 60, 80, 100), 64, 500),
    "quick": (np.array([1.0, 1.75, 3.0]), (2, 4), 16, 20),
}


def init_spec(sigma_w2: float) -> str:
    return f"variance_scaling(scale={float(sigma_w2)!r}, mode='fan_in', distribution='normal')"


def make_grid(depth: int, sigma_w2, *, width: int, steps: int, seeds: int) -> ji.TrainGrid:
    return ji.TrainGrid(
        inits=[init_spec(s) for s in sigma_w2],
        seeds=seeds,
        hidden=(width,) * depth,
        activations="tanh",
        bias_inits=f"normal(stddev={float(np.sqrt(SIGMA_B2))!r})",
        optimizer="sgd(learning_rate=0.01)",
        steps=steps,
        batch_size=128,
        eval_every=steps,
    )


def agreement(sigma_w2, depths, accuracy, xi_c) -> dict:
    """Cells where "trains" (accuracy ≥ halfway from chance to the grid's best) and
    "L ≤ 6 ξ_c" say the same, and the cells where they do not."""
    threshold = CHANCE + (float(np.max(accuracy)) - CHANCE) / 2
    trains = accuracy >= threshold
    predicted = np.asarray(depths)[None, :] <= FACTOR * np.asarray(xi_c)[:, None]
    misses = [
        {
            "sigma_w2": float(sigma_w2[i]),
            "depth": int(depths[j]),
            "accuracy": float(accuracy[i, j]),
            "bound": float(FACTOR * xi_c[i]),
            "theory_says": "trains" if predicted[i, j] else "does not train",
        }
        for i, j in zip(*np.nonzero(trains != predicted), strict=True)
    ]
    return {
        "threshold": threshold,
        "agree_fraction": float(np.mean(trains == predicted)),
        "cells": int(trains.size),
        "disagreements": misses,
    }


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__, seeds=2)
    p.add_argument("--steps", type=int, default=None, help="SGD steps (500; quick 20)")
    p.add_argument("--width", type=int, default=None, help="hidden units (64; quick 16)")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default $JAXINIT_DATA)")
    args = _common.parse(p, argv)
    sigma_w2, depths, width, steps = SIZES["quick" if args.quick else "full"]
    width = width if args.width is None else args.width
    steps = steps if args.steps is None else args.steps
    for name, value in (("--steps", steps), ("--width", width)):
        if value < 1:
            p.error(f"{name} must be a positive integer; got {value}")
    x, y = ji.data.load_mnist("train", data_dir=args.data_dir)
    x_test, y_test = ji.data.load_mnist("test", data_dir=args.data_dir)
    x_test, y_test = x_test[:TEST_IMAGES], y_test[:TEST_IMAGES]
    if args.quick:
        x, y, x_test, y_test = x[:1024], y[:1024], x_test[:256], y_test[:256]
    start = time.perf_counter()
    accuracy = np.zeros((len(sigma_w2), len(depths)))
    for j, depth in enumerate(depths):
        grid = make_grid(depth, sigma_w2, width=width, steps=steps, seeds=args.seeds)
        res = ji.train(
            grid,
            (x, y),
            (x_test, y_test),
            out=args.out / "train" / f"L{depth}",
            dataset=f"MNIST train (evaluated on the first {len(x_test)} test images), pixels / 255",
        )
        for i, s in enumerate(sigma_w2):
            accuracy[i, j] = float(res.sel(init=init_spec(s)).test_accuracy[:, -1].mean())
        print(f"L = {depth:3d}: accuracy {np.round(accuracy[:, j], 2)}", flush=True)
    seconds = time.perf_counter() - start
    scales = ji.theory.depth_scales("tanh", sigma_w2=sigma_w2, sigma_b2=SIGMA_B2)
    xi_c = np.asarray(scales.xi_c, np.float64)
    fine = np.linspace(sigma_w2[0], sigma_w2[-1], 400)
    fine_xi = np.asarray(ji.theory.depth_scales("tanh", sigma_w2=fine, sigma_b2=SIGMA_B2).xi_c)
    critical = float(ji.theory.critical_sigma_w2("tanh", sigma_b2=SIGMA_B2))
    summary = _common.write_summary(
        args.out,
        {
            "sigma_w2": [float(s) for s in sigma_w2],
            "depths": [int(d) for d in depths],
            "sigma_b2": SIGMA_B2,
            "width": width,
            "steps": steps,
            "seeds": args.seeds,
            "accuracy": accuracy.tolist(),  # [σ_w² index][depth index], seed mean
            "bound_6_xi_c": [float(FACTOR * v) for v in xi_c],
            "critical_sigma_w2": critical,
            "agreement": agreement(sigma_w2, depths, accuracy, xi_c),
            "seconds": seconds,
        },
    )
    fig = ji.report.trainability(
        sigma_w2, depths, accuracy, xi_c=(fine, fine_xi), critical=critical, chance=CHANCE
    )
    (png,) = ji.report.save(fig, args.out / "trainability")
    agree = summary["agreement"]
    table = ji.report.render(
        ["σ_w²", "6 ξ_c", *[f"L={d}" for d in depths]],
        [
            [s, b, *row]
            for s, b, row in zip(sigma_w2, summary["bound_6_xi_c"], accuracy, strict=True)
        ],
        fmt="html",
    )
    ji.report.write_report(
        args.out,
        title="Trainability of deep tanh networks (Schoenholz et al. 2017)",
        attrs=res.attrs,
        sections=[
            ji.report.Section(
                title=f"{len(sigma_w2)} σ_w² × {len(depths)} depths × {args.seeds} seeds, width "
                f"{width}, {steps} SGD steps on MNIST",
                figures=[
                    (
                        f"Test accuracy after {steps} steps (seed mean); black: 6 ξ_c(σ_w²), "
                        "theory's deepest trainable network; dashed: the critical σ_w². "
                        f"'Trains' (accuracy ≥ {agree['threshold']:.2f}) agrees with L ≤ 6 ξ_c "
                        f"in {agree['agree_fraction']:.0%} of {agree['cells']} cells.",
                        png,
                    )
                ],
                tables=[("Test accuracy by σ_w² (rows) and depth (columns)", table)],
            )
        ],
    )
    print(
        f"{accuracy.size} cells in {seconds:.0f} s; 'trains' agrees with L ≤ 6 ξ_c in "
        f"{agree['agree_fraction']:.0%} (threshold {agree['threshold']:.2f}); critical σ_w² "
        f"{critical:.3f}"
    )
    return summary


if __name__ == "__main__":
    main()
