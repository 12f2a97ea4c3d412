"""Seed 000: a Keras Dense(256) layer on a 784-d U[0, 1) input, under three initializers.

RandomNormal(stddev=1.0), glorot_normal and glorot_uniform, in the **Keras
convention** (its glorot_normal is a normal truncated at ±2σ, rescaled to the exact variance),
with sigmoid and tanh. The original post feeds one input vector, so each
histogram holds the 256 units of one forward pass; the batch of 1000 inputs
shows the same distributions with enough samples to mean something.

    python -m sweeps.keras_dense256 --out out/keras_dense256 [--seeds 4] [--quick]

Expected: with std 1 the pre-activations have variance 784/3 ≈ 261 (E[x²] = 1/3
for U[0, 1)), so sigmoid and tanh saturate almost everywhere; under Glorot
(Var w = 2/(784 + 256)) the pre-activation variance is about 0.5 and few units
saturate. Writes ``summary.json`` (per batch size, init and activation: pre/post
variance and the saturated fraction, seed means), ``histograms-batch1.png``,
``histograms-batch1000.png`` and ``report.html``.
"""

from __future__ import annotations

import jaxinit as ji
from sweeps import _common

INITS = [
    "normal(stddev=1.0)",  # keras.initializers.RandomNormal(stddev=1.0): untruncated
    "glorot_normal(convention='keras')",
    "glorot_uniform(convention='keras')",
]
ACTIVATIONS = ["sigmoid", "tanh"]
D_IN, UNITS = 784, 256


def make_grid(*, batch_size: int, seeds: int, quick: bool) -> ji.Grid:
    units = 32 if quick else UNITS
    return ji.Grid(
        inits=INITS,
        activations=ACTIVATIONS,
        depth=1,
        width=units,
        d_in=D_IN,
        seeds=seeds,
        batch_size=batch_size,
        inputs="uniform",
        bins=30,
        gradients=False,
    )


def summarize(res: ji.SweepResult) -> dict:
    out = {}
    for init in res.coords["init"]:
        for act in res.coords["activation"]:
            m = _common.per_layer(
                res, ("pre_var", "post_var", "saturated"), init=init, activation=act
            )
            out[f"{init} | {act}"] = {k: float(v[0]) for k, v in m.items()}
    return out


def report_title(units: int) -> str:
    """The page's title, with the width actually run (32 units at --quick, not 256)."""
    return f"Keras Dense({units}) under three initializers"


def main(argv: list[str] | None = None) -> dict:
    args = _common.parse(_common.parser(__doc__, seeds=4), argv)
    batches = (1, 64) if args.quick else (1, 1000)
    summary, sections, runs = {}, [], {}
    for batch in batches:
        grid = make_grid(batch_size=batch, seeds=args.seeds, quick=args.quick)
        res, seconds = _common.run(grid, args.out, f"sweep-batch{batch}")
        summary[f"batch{batch}"] = summarize(res)
        runs[f"batch {batch}"] = res.attrs
        hist = args.out / f"histograms-batch{batch}"
        (png,) = ji.report.save(ji.report.histogram_grid(res, yscale="linear"), hist)
        sections.append(
            ji.report.Section(
                title=f"Dense({grid.width}) on {batch} input{'s' * (batch > 1)}, in {seconds:.1f} s",
                tables=[("Per init and activation", ji.report.layer_table(res, fmt="html"))],
                figures=[("Post-activation histograms; seeds pooled.", png)],
            )
        )
    summary = _common.write_summary(args.out, summary)
    ji.report.write_report(args.out, title=report_title(grid.width), sections=sections, runs=runs)
    for key, rows in summary.items():
        print(key)
        for label, s in rows.items():
            print(f"  {label:46s} pre_var {s['pre_var']:9.4g}  saturated {s['saturated']:6.1%}")
    return summary


if __name__ == "__main__":
    main()
