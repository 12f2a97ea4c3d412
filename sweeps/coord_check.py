"""The coord check (Yang et al. 2022, Fig. 5): do activations stay the same size as width grows?

A 4-hidden-layer ReLU MLP on MNIST, He init, Adam, trained a few steps at
widths 64 to 2048 (64 and 256 with ``--quick``), under the standard
parametrization and under μP (TP5 Table 3, base width the smallest; the μP
output layer starts at zero by default, ``--mup-output scaled`` gives it Table 3's
1/fan_in² variance instead). At every step 0..t it records each layer's mean
|h| (mup's convention) on that step's mini-batch, every width and seed trained
at once, one compiled program per width.

    python -m sweeps.coord_check --out out/coord_check [--quick] [--seeds 4]
        [--steps 10] [--learning-rate 0.001] [--model transformer] [--data-dir ...]

``--model transformer`` runs the check on the zoo's Transformer instead
(``ji.models.Transformer``: MNIST's rows as 28 tokens of 28 pixels, 2 pre-LN blocks of
4 heads, ``d_model`` = width 64 to 512, 32 and 128 with ``--quick``): any Flax model
trains through ``TrainGrid(model=make, width=[...], parametrization="mup")``, which
infers per parameter which dims grow with width (microsoft/mup's ``set_base_shapes``)
and applies Table 3; μP's model also scales its attention logits by 1/d
(``attention_scale="1/d"``), the standard one by 1/√d. Every output the model's sweep
captures is recorded by path; the figure shows the blocks' outputs, the attention's,
the MLPs' and the logits.

Expected: under μP every line is flat (slope of log size against log width near
0); under the standard parametrization the updates grow with width and the
output logits grow with it. Writes ``summary.json`` (per parametrization and
layer, the slope at the last step; the widths; the steps; the sizes),
``coord_check.png`` and ``report.html``. A killed run resumes from
``train_<parametrization>/``.
"""

from __future__ import annotations

import re

import numpy as np

import jaxinit as ji
from jaxinit.training import coord_sizes, coord_slopes
from sweeps import _common

# --quick trains the end widths only: a least-squares slope through equally spaced
# log-widths is the end points' slope, so the middle one would cost a compile for nothing
WIDTHS, QUICK_WIDTHS = (64, 128, 256, 512, 1024, 2048), (64, 256)
TRANSFORMER_WIDTHS, QUICK_TRANSFORMER_WIDTHS = (64, 128, 256, 512), (32, 128)
TRANSFORMER_DEPTH = _common.TRANSFORMER_DEPTH
PARAMETRIZATIONS = ("standard", "mup")  # TrainGrid's values: the summary's and figure's keys
MUP_OUTPUTS = ("zeros", "scaled")  # μP's output layer: zero init, or Table 3's 1/fan_in² variance
HIDDEN_LAYERS = 4


def make_grid(
    parametrization: str,
    *,
    widths,
    seeds: int,
    steps: int,
    learning_rate: float,
    mup_output: str = "zeros",
    model: str = "mlp",
) -> ji.TrainGrid:
    zero_out = parametrization == "mup" and mup_output == "zeros"
    return ji.TrainGrid(
        **_common.architecture(model, parametrization, hidden_layers=HIDDEN_LAYERS),
        inits=["he_normal"],
        seeds=seeds,
        width=list(widths),
        parametrization=parametrization,
        output_init="zeros" if zero_out else None,
        optimizer="adam",
        learning_rate=learning_rate,
        steps=steps,
        batch_size=64,
        record_stats_at=range(steps + 1),
    )


def shown_layers(result: ji.TrainResult) -> list[str] | None:
    """The figure's lines: all of an MLP's; a Transformer's blocks, attention, MLPs, logits."""
    names = result.attrs.get("layers")
    if names is None:
        return None
    keep = [n for n in names if re.fullmatch(r"blocks/\d+(/attn|/fc_out)?", n)]
    return [*keep, "output"]


def summarize(results: dict[str, ji.TrainResult]) -> dict:
    first = next(iter(results.values()))
    return {
        "slopes": {p: coord_slopes(r) for p, r in results.items()},
        "widths": [int(w) for w in first.coords["width"]],
        "steps": int(first.attrs["stats_steps"][-1]),
        "sizes": {
            p: {k: v.tolist() for k, v in coord_sizes(r).items()} for p, r in results.items()
        },
        "size_axes": ["width", "step"],
    }


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__, seeds=4)
    p.add_argument("--steps", type=int, default=10, help="Adam steps t; sizes at 0..t (10)")
    p.add_argument(
        "--learning-rate",
        type=float,
        default=1e-3,
        help="Adam's learning rate, μP's at the base width (0.001)",
    )
    p.add_argument(
        "--mup-output",
        choices=MUP_OUTPUTS,
        default="zeros",
        help="μP's output init: zero, or Table 3's 1/fan_in² variance (zeros)",
    )
    _common.add_model_flag(p)
    p.add_argument("--data-dir", default=None, help="MNIST directory (default $JAXINIT_DATA)")
    args = _common.parse(p, argv)
    if args.steps < 1:
        p.error(f"--steps must be a positive integer; got {args.steps}")
    x, y = ji.data.load_mnist("train", data_dir=args.data_dir)
    n = 4096 if args.quick else 16384  # a few steps of 64 examples read few of them
    x, y = x[:n], y[:n]
    widths = QUICK_WIDTHS if args.quick else WIDTHS
    if args.model == "transformer":
        x = x.reshape(-1, 28, 28)  # rows as tokens
        widths = QUICK_TRANSFORMER_WIDTHS if args.quick else TRANSFORMER_WIDTHS
    results = {}
    for par in PARAMETRIZATIONS:
        grid = make_grid(
            par,
            widths=widths,
            seeds=args.seeds,
            steps=args.steps,
            learning_rate=args.learning_rate,
            mup_output=args.mup_output,
            model=args.model,
        )
        evals = _common.eval_data(args.model, x, y)
        results[par] = ji.train(grid, (x, y), evals, out=args.out / f"train_{par}")
    summary = _common.write_summary(
        args.out,
        {
            **summarize(results),
            "learning_rate": args.learning_rate,
            "mup_output": args.mup_output,
            "model": args.model,
        },
    )
    shown = sorted({0, 1, args.steps // 2, args.steps})
    lines = shown_layers(results["mup"])
    fig = ji.report.size_vs_width(results, steps=tuple(shown), layers=lines)
    (png,) = ji.report.save(fig, args.out / "coord_check")
    cols = list(summary["slopes"]["standard"]) if lines is None else lines
    head = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in cols)
    rows = "".join(
        f"<tr><td>{par}</td>" + "".join(f"<td>{slopes[k]:+.3f}</td>" for k in cols) + "</tr>"
        for par, slopes in summary["slopes"].items()
    )
    table = f"<table><tr><th>parametrization</th>{head}</tr>{rows}</table>"
    what = (
        f"{HIDDEN_LAYERS} hidden ReLU layers"
        if args.model == "mlp"
        else f"Transformer of {TRANSFORMER_DEPTH} pre-LN blocks (MNIST rows as tokens), d_model"
    )
    caption = (
        f"Mean |h| of {'each layer' if lines is None else ', '.join(lines)} "
        f"against "
        f"width (log–log; seed mean of {args.seeds} seeds) at steps {shown} of Adam at "
        f"learning rate {args.learning_rate:g} (μP's at base width {widths[0]}); μP's output "
        f"layer starts {'at zero' if args.mup_output == 'zeros' else 'with variance ∝ 1/fan_in²'}."
    )
    ji.report.write_report(
        args.out,
        title="Coord check: standard parametrization and μP",
        runs={par: r.attrs for par, r in results.items()},
        sections=[
            ji.report.Section(
                title=f"{what}, widths {list(widths)}, MNIST",
                text="Slope of log(mean |h|) against log(width) at the last step, per layer: 0 is "
                "width-independent, 1 grows in proportion to width (Yang et al. 2022, Fig. 5).",
                tables=[("Slopes at the last step", table)],
                figures=[(caption, png)],
            )
        ],
    )
    for par, slopes in summary["slopes"].items():
        print(f"{par:9s} " + "  ".join(f"{k} {v:+.3f}" for k, v in slopes.items()))
    flat = max(abs(v) for v in summary["slopes"]["mup"].values() if np.isfinite(v))
    print(
        f"μP: largest |slope| {flat:.3f}; standard: output slope {summary['slopes']['standard']['output']:+.3f}"
    )
    return summary


if __name__ == "__main__":
    main()
