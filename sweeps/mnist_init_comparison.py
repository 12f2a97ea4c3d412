"""Seed 001, Fig. 6-15: a 5-layer ReLU MLP on MNIST from std 0.01, Xavier and He weights.

4 hidden ReLU layers of 100 units and a softmax output; SGD with learning rate
0.01, mini-batches of 128, 2000 iterations; every init with ``--seeds`` seeds,
all models trained at once in one vmapped program. Per-layer activation and
gradient statistics are recorded at the first and the last step.

    python -m sweeps.mnist_init_comparison --out out/mnist [--seeds 5] [--quick]
                                           [--data-dir ../shared/data/mnist]

Expected: std 0.01 never learns (its signal shrinks by about 14× per layer, so
the loss stays at ln 10 ≈ 2.30), and He ends below Xavier. MNIST is read from
``--data-dir``, else ``$JAXINIT_DATA``, else the user cache (downloaded there
if missing). Writes ``summary.json`` (per init: final training loss, the
seeds' min and max, test loss and accuracy), ``loss.png``, ``accuracy.png`` and
``report.html``. A killed run resumes from ``train/``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MultipleLocator

import jaxinit as ji
from sweeps import _common

INITS = ("normal(stddev=0.01)", "glorot_normal", "he_normal")  # the result's labels, everywhere
DATASET = "MNIST: train split (test split for evaluation), pixels / 255 in [0, 1]"
DISPLAY = {"normal(stddev=0.01)": "std 0.01", "glorot_normal": "Xavier", "he_normal": "He"}


def make_grid(*, quick: bool, seeds: int) -> ji.TrainGrid:
    steps = 200 if quick else 2000
    return ji.TrainGrid(
        inits=list(INITS),
        seeds=seeds,
        hidden=(100,) * 4,
        activations="relu",
        optimizer="sgd(learning_rate=0.01)",
        steps=steps,
        batch_size=128,
        eval_every=steps // 10,
        record_stats_at=(0, steps),
    )


def summarize(res: ji.TrainResult) -> dict:
    out = {}
    for spec in INITS:
        s = res.sel(init=spec)
        final = ji.training.final_loss(s.loss)  # per seed: the last tenth of the steps' mean
        out[spec] = {
            "display": DISPLAY[spec],
            "final_loss": float(final.mean()),
            "final_loss_min": float(final.min()),
            "final_loss_max": float(final.max()),
            "test_loss": float(s.test_loss[:, -1].mean()),
            "test_accuracy": float(s.test_accuracy[:, -1].mean()),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__, seeds=5)
    p.add_argument("--data-dir", default=None, help="MNIST directory (default $JAXINIT_DATA)")
    args = _common.parse(p, argv)
    x, y = ji.data.load_mnist("train", data_dir=args.data_dir)
    x_test, y_test = ji.data.load_mnist("test", data_dir=args.data_dir)
    if args.quick:
        x, y, x_test, y_test = x[:4096], y[:4096], x_test[:1000], y_test[:1000]
    grid = make_grid(quick=args.quick, seeds=args.seeds)
    res = ji.train(grid, (x, y), (x_test, y_test), out=args.out / "train", dataset=DATASET)
    summary = _common.write_summary(args.out, summarize(res))
    loss = ji.report.loss_curves(res, smooth=20, log_y=False)
    for ax in loss.axes:  # where std 0.01 stays: chance over 10 classes
        ax.axhline(np.log(10), color="0.5", linestyle=":", linewidth=1.0, zorder=0)
    loss.axes[0].annotate(
        "ln 10 (chance)",
        (0.98, np.log(10)),
        xycoords=("axes fraction", "data"),
        xytext=(0, 4),
        textcoords="offset points",
        ha="right",
        va="bottom",
        fontsize=7,
        color="0.4",
    )
    loss.axes[0].yaxis.set_major_locator(MultipleLocator(0.5))  # 0.5 a tick: it had two
    _common.name_the_band(loss, f"band: min–max over {args.seeds} seeds")
    figures = []
    for name, fig, caption in (
        (
            "loss",
            loss,
            "Training loss, 20-step moving average of each seed: line the seed mean, band the "
            "min–max over seeds; dashed with points: test loss at each evaluation; dotted: "
            "ln 10, the loss of a uniform guess over 10 classes.",
        ),
        (
            "accuracy",
            ji.report.accuracy(res),
            "Test accuracy during training (seed mean, min–max band); dotted: chance, 10%.",
        ),
    ):
        (png,) = ji.report.save(fig, args.out / name)
        figures.append((caption, png))
    rows = [
        [spec, s["display"], s["final_loss"], s["test_accuracy"]] for spec, s in summary.items()
    ]
    table = ji.report.render(
        ["init", "name", "final loss", "test accuracy (%)"],
        [[a, b, c, 100 * d] for a, b, c, d in rows],
        fmt="html",
    )
    ji.report.write_report(
        args.out,
        title="MNIST: std 0.01, Xavier and He",
        attrs=res.attrs,
        sections=[
            ji.report.Section(
                title=f"{len(INITS)} inits × {args.seeds} seeds, "
                f"{grid.steps} SGD steps, trained at once",
                tables=[("Final training loss and test accuracy (seed means)", table)],
                figures=figures,
            )
        ],
    )
    for spec, s in summary.items():
        print(
            f"{spec:20s} final loss {s['final_loss']:.4f} "
            f"[{s['final_loss_min']:.4f}, {s['final_loss_max']:.4f}]  "
            f"test accuracy {s['test_accuracy']:.2%}"
        )
    he, xavier = summary["he_normal"]["final_loss"], summary["glorot_normal"]["final_loss"]
    small = summary["normal(stddev=0.01)"]["final_loss"]
    print(
        f"std 0.01 stays at {small:.3f} (ln 10 = {np.log(10):.3f}); "
        f"He {'<' if he < xavier else '>='} Xavier"
    )
    return summary


if __name__ == "__main__":
    main()
