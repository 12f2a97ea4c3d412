"""Seed 001: the std-0.01 ReLU network, whose activations shrink toward zero layer by layer.

5 layers of 100 ReLU units with N(0, 0.01²) weights and zero biases on 1000
Gaussian inputs, next to He for contrast. Prints the per-layer mean activation
measured (seed mean) beside the mean-field prediction. With σ_w² = 100 · 10⁻⁴ =
0.01 the ReLU length map is q' = σ_w² q / 2, so every layer divides the
pre-activation variance by 200 and the mean activation E[relu(√q z)] = √(q/2π)
by √200 ≈ 14.1; He's σ_w² = 2 keeps q fixed.

    python -m sweeps.relu_std001 --out out/relu_std001 [--seeds 8] [--quick]

Writes ``summary.json`` (per init: measured and predicted post_mean and pre_var
by layer, and their relative error), ``report.html`` and the figures.
"""

from __future__ import annotations

import numpy as np

import jaxinit as ji
from sweeps import _common

INITS = ["normal(stddev=0.01)", "he_normal"]


def make_grid(*, quick: bool, seeds: int) -> ji.Grid:
    width, batch_size = (32, 128) if quick else (100, 1000)
    return ji.Grid(
        inits=INITS,
        activations=["relu"],
        depth=5,
        width=width,
        seeds=seeds,
        batch_size=batch_size,
        inputs="gaussian",
    )


def main(argv: list[str] | None = None) -> dict:
    args = _common.parse(_common.parser(__doc__, seeds=8), argv)
    grid = make_grid(quick=args.quick, seeds=args.seeds)
    res, seconds = _common.run(grid, args.out)
    theory = ji.theory.predict(grid)
    summary = {}
    for init in INITS:
        measured = _common.per_layer(res, ("post_mean", "pre_var"), init=init)
        predicted = _common.per_layer(theory, tuple(measured), init=init)
        summary[init] = {
            **{f"{f}_measured": v for f, v in measured.items()},
            **{f"{f}_theory": predicted[f] for f in measured},
            **{f"{f}_rel_error": measured[f] / predicted[f] - 1 for f in measured},
        }
    summary = _common.write_summary(args.out, summary)
    ji.report.report_sweep(res, args.out, theory=theory, title="ReLU with std 0.01 weights")
    for init, s in summary.items():
        print(f"{init}: mean activation by layer (seed mean of {args.seeds}) vs mean-field theory")
        print(f"  {'layer':>5s} {'measured':>11s} {'theory':>11s} {'rel. error':>10s}")
        for layer, (m, t, e) in enumerate(
            zip(
                s["post_mean_measured"],
                s["post_mean_theory"],
                s["post_mean_rel_error"],
                strict=True,
            )
        ):
            print(f"  {layer + 1:5d} {m:11.4g} {t:11.4g} {e:10.1%}")
    small = summary["normal(stddev=0.01)"]
    measured, predicted = (np.divide(*small[f"post_mean_{k}"][:2]) for k in ("measured", "theory"))
    print(
        f"\nstd 0.01: layer 1 / layer 2 mean activation {measured:.1f}, theory {predicted:.1f} "
        f"(√(2 / σ_w²) with σ_w² = width · 10⁻⁴); {len(grid)} networks in {seconds:.1f} s"
    )
    return summary


if __name__ == "__main__":
    main()
