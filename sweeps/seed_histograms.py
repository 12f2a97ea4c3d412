"""The seed experiment: per-layer activation histograms under four initializations.

std 1, std 0.01, Xavier/Glorot and He weights, under sigmoid, tanh and ReLU;
5 layers of 100 units; 1000 Gaussian inputs. One compiled sweep replaces the
twelve Python loops of the original posts.

    python -m sweeps.seed_histograms --out out/seed_histograms [--seeds 4] [--quick]

Writes, each once, into the output directory:

- ``report.html``: the page, every figure inlined;
- ``figures/``: ``histograms.png`` (layers × configurations), ``pre_var.png``,
  ``post_var.png`` and ``grad_var.png`` (measured markers, mean-field theory as lines),
  ``heatmap.png``;
- ``tables/``: ``summary.csv`` and ``summary.md`` (the outcome per pair), ``layers.csv``;
- ``summary.json``: per-layer variance, mean, saturated and dead fractions, seed means;
- ``sweep/``: the checkpoint (``sweep.json``, ``chunks/``) and the full SweepResult
  in ``sweep/result`` (``ji.SweepResult.load``); a killed run resumes from it.

It prints a per-layer table.
"""

from __future__ import annotations

import jaxinit as ji
from sweeps import _common

INITS = ["normal(stddev=1.0)", "normal(stddev=0.01)", "glorot_normal", "he_normal"]
ACTIVATIONS = ["sigmoid", "tanh", "relu"]


def make_grid(*, quick: bool, seeds: int) -> ji.Grid:
    width, batch_size = (16, 64) if quick else (100, 1000)
    return ji.Grid(
        inits=INITS,
        activations=ACTIVATIONS,
        depth=5,
        width=width,
        seeds=seeds,
        batch_size=batch_size,
        inputs="gaussian",
        bins=30,
    )


def summarize(res: ji.SweepResult) -> dict:
    out = {}
    for init in res.coords["init"]:
        for act in res.coords["activation"]:
            s = res.sel(init=init, activation=act)
            out[f"{init} | {act}"] = {
                "post_var": s.post_var.mean(0).tolist(),
                "post_mean": s.post_mean.mean(0).tolist(),
                "saturated": s.saturated.mean(0).tolist(),
                "dead": s.dead.mean(0).tolist(),
            }
    return out


def table(summary: dict) -> str:
    lines = [
        f"{'init | activation':38s} {'layer':>5s} {'post_mean':>10s} {'post_var':>10s} "
        f"{'saturated':>9s} {'dead':>6s}"
    ]
    for label, s in summary.items():
        for layer, (m, v, sat, dead) in enumerate(
            zip(s["post_mean"], s["post_var"], s["saturated"], s["dead"], strict=True)
        ):
            lines.append(f"{label:38s} {layer + 1:5d} {m:10.4g} {v:10.4g} {sat:9.1%} {dead:6.1%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = _common.parse(_common.parser(__doc__, seeds=4), argv)
    grid = make_grid(quick=args.quick, seeds=args.seeds)
    res, seconds = _common.run(grid, args.out)  # the result is saved in sweep/result
    summary = _common.write_summary(args.out, summarize(res))
    paths = ji.report.report_sweep(
        res, args.out, theory=_common.theory_or_none(grid), title="Seed histograms"
    )
    print(table(summary))
    print(
        f"\n{len(grid)} networks in {seconds:.1f} s; wrote {paths.html}, "
        f"{', '.join(p.relative_to(args.out).as_posix() for p in paths.figures)}, tables/, "
        f"summary.json and the result in {args.out / 'sweep' / 'result'}"
    )
    return summary


if __name__ == "__main__":
    main()
