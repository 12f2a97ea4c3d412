"""Learning-rate transfer (Yang et al. 2022, Fig. 1): does the best learning rate move with width?

A ReLU MLP of 2 hidden layers on MNIST, He init, Adam, trained ``--steps``
steps at every (width, learning rate, seed) under the standard parametrization
and under μP (TP5 Table 3, base width the smallest, zero output init). Each
parametrization is one ``ji.train`` call: one compiled program per width, the
rates and seeds stacked as data.

    python -m sweeps.lr_transfer --out out/lr_transfer [--quick] [--seeds 2]
        [--steps 300] [--model transformer] [--data-dir ../shared/data/mnist]

``--model transformer`` trains the zoo's Transformer instead (MNIST's rows as 28 tokens,
2 pre-LN blocks of 4 heads, ``d_model`` = width 64 to 512, 32 and 64 with ``--quick``;
μP's attention logits scaled by 1/d), at rates 2⁻¹³ to 2⁻⁵: any Flax model trains under
μP through ``TrainGrid(model=make, width=[...], parametrization="mup")``.

Expected: under μP the loss-against-rate curves of every width have their
minimum at about the same rate; under the standard parametrization the best
rate drifts down as width grows (at full scale, 2 seeds: μP's best is 2⁻⁷ at
every width from 64 to 1024; the standard one falls from 2⁻⁸ to 2⁻¹⁰; the Transformer,
1 seed, 100 steps: μP's 2⁻⁷ at 64 and 2⁻⁸ from 128 to 512, the standard one 2⁻⁹ at 64 down
to 2⁻¹³ at 512). Writes
``summary.json`` (the best rate per width and parametrization; the final
losses, ``(width, learning_rate)``), ``lr_transfer.png`` and ``report.html``. A
killed run resumes from ``train_<parametrization>/``.
"""

from __future__ import annotations

import functools

import numpy as np

import jaxinit as ji
from jaxinit.training import best_learning_rates, final_losses
from sweeps import _common

WIDTHS, QUICK_WIDTHS = (64, 128, 256, 512, 1024), (32, 64, 128)
LEARNING_RATES = tuple(float(2.0**e) for e in range(-14, -1))  # 6e-5 .. 0.25, factors of 2
QUICK_LEARNING_RATES = tuple(float(2.0**e) for e in range(-11, -1, 2))  # 5e-4 .. 0.125
# a 2-core CPU trains a 512-wide one at about 0.8 s a step (batch 64, 28 tokens)
TRANSFORMER_WIDTHS, QUICK_TRANSFORMER_WIDTHS = (64, 128, 256, 512), (32, 64)
TRANSFORMER_LEARNING_RATES = tuple(float(2.0**e) for e in range(-13, -4))  # 1.2e-4 .. 0.031
QUICK_TRANSFORMER_LEARNING_RATES = tuple(float(2.0**e) for e in range(-11, -3, 2))
PARAMETRIZATIONS = ("standard", "mup")  # TrainGrid's values: the summary's and figure's keys
HIDDEN_LAYERS = 2
LAST = 20  # the final loss is each model's mean over its last LAST mini-batches


def make_grid(
    parametrization: str, *, widths, learning_rates, seeds: int, steps: int, model: str = "mlp"
) -> ji.TrainGrid:
    return ji.TrainGrid(
        **_common.architecture(model, parametrization, hidden_layers=HIDDEN_LAYERS),
        inits=["he_normal"],
        seeds=seeds,
        width=list(widths),
        learning_rate=list(learning_rates),
        parametrization=parametrization,
        output_init="zeros" if parametrization == "mup" else None,
        optimizer="adam",
        steps=steps,
        batch_size=64,
    )


def summarize(results: dict[str, ji.TrainResult], *, last: int) -> dict:
    first = next(iter(results.values()))
    return {
        "best_learning_rate": {
            p: {str(w): lr for w, lr in best_learning_rates(r, last=last).items()}
            for p, r in results.items()
        },
        "widths": [int(w) for w in first.coords["width"]],
        "learning_rates": [float(v) for v in first.coords["learning_rate"]],
        "final_loss": {
            p: np.where(np.isfinite(v := final_losses(r, last=last)), v, None).tolist()
            for p, r in results.items()
        },
        "final_loss_axes": ["width", "learning_rate"],
        "steps": int(first.loss.shape[-1]),
        "last": last,
    }


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__, seeds=2)
    p.add_argument("--steps", type=int, default=None, help="Adam steps (300; 60 with --quick)")
    _common.add_model_flag(p)
    p.add_argument("--data-dir", default=None, help="MNIST directory (default $JAXINIT_DATA)")
    args = _common.parse(p, argv)
    steps = args.steps if args.steps is not None else 60 if args.quick else 300
    if steps < LAST:
        p.error(
            f"--steps must be at least {LAST} (the final loss averages the last {LAST}); got {steps}"
        )
    x, y = ji.data.load_mnist("train", data_dir=args.data_dir)
    if args.quick:
        x, y = x[:4096], y[:4096]
    widths = QUICK_WIDTHS if args.quick else WIDTHS
    rates = QUICK_LEARNING_RATES if args.quick else LEARNING_RATES
    if args.model == "transformer":
        x = x.reshape(-1, 28, 28)  # rows as tokens
        widths = QUICK_TRANSFORMER_WIDTHS if args.quick else TRANSFORMER_WIDTHS
        rates = QUICK_TRANSFORMER_LEARNING_RATES if args.quick else TRANSFORMER_LEARNING_RATES
    grid = functools.partial(
        make_grid, widths=widths, learning_rates=rates, seeds=args.seeds, steps=steps
    )
    results = {
        par: ji.train(
            grid(par, model=args.model),
            (x, y),
            _common.eval_data(args.model, x, y),
            out=args.out / f"train_{par}",
        )
        for par in PARAMETRIZATIONS
    }
    summary = _common.write_summary(
        args.out, {**summarize(results, last=LAST), "model": args.model}
    )
    (png,) = ji.report.save(
        ji.report.loss_vs_learning_rate(results, last=LAST), args.out / "lr_transfer"
    )
    head = "".join(f"<th>width {w}</th>" for w in summary["widths"])
    rows = "".join(
        f"<tr><td>{par}</td>" + "".join(f"<td>{lr:.3g}</td>" for lr in best.values()) + "</tr>"
        for par, best in summary["best_learning_rate"].items()
    )
    caption = (
        f"Training loss after {steps} Adam steps (each model's mean over its last {LAST} "
        f"mini-batches, mean of {args.seeds} seeds) against learning rate; rings: each "
        f"width's best rate. μP's rates are those of base width {widths[0]}."
    )
    ji.report.write_report(
        args.out,
        title="Learning-rate transfer: standard parametrization and μP",
        runs={par: r.attrs for par, r in results.items()},
        sections=[
            ji.report.Section(
                title=(
                    f"{HIDDEN_LAYERS} hidden ReLU layers"
                    if args.model == "mlp"
                    else f"Transformer of {_common.TRANSFORMER_DEPTH} pre-LN blocks, rows as tokens"
                )
                + f", widths {list(widths)}, MNIST",
                text="Under μP the best learning rate should not move as width grows "
                "(Yang et al. 2022, Fig. 1); under the standard parametrization it drifts.",
                tables=[
                    (
                        "Best learning rate per width",
                        f"<table><tr><th>parametrization</th>{head}</tr>{rows}</table>",
                    )
                ],
                figures=[(caption, png)],
            )
        ],
    )
    for par, best in summary["best_learning_rate"].items():
        print(
            f"{par:9s} best rate per width: "
            + "  ".join(f"{w}: {lr:.3g}" for w, lr in best.items())
        )
    return summary


if __name__ == "__main__":
    main()
