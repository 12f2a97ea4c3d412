"""The flagship: thousands of networks at initialization, in one compiled sweep per shape.

10 initializers × 10 activations × depths up to 50 × 32 seeds (12,800
networks at the default settings), 100 units, 1000 Gaussian inputs. It ends
in the init × activation heatmap of the variance ratio at depth L (log10, colour
clipped at ±3 decades; hatched cells overflowed float32 or fell to 0, as its key
says), the summary table of which inits keep the variance within [0.5, 2]×
through depth and where the others vanish or explode, and its wall time and
combos/s.

    python -m sweeps.big_grid --out out/big_grid [--seeds 32] [--width 100] [--batch-size 1000]
                              [--depths 5 10 20 50] [--quick]

This is an accelerator-sized job: on a 2-core CPU the default grid takes hours
(about 60 five-layer networks per second, and depth costs linearly); use smaller
``--batch-size``/``--width``/``--seeds`` there. A killed run resumes from ``sweep/``.
Writes ``summary.json`` (timings, and per activation and init: the ratio at the
deepest layer and the outcome), ``report.html`` and the figures.
"""

from __future__ import annotations

import csv
import io

import jax

import jaxinit as ji
from sweeps import _common

INITS = [
    "normal(stddev=1.0)",
    "normal(stddev=0.01)",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "orthogonal",
    "truncated_normal(stddev=0.05)",
    "uniform",
]
ACTIVATIONS = [
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "silu",
    "softplus",
    "erf",
]


def make_grid(
    *, quick: bool, seeds: int, width: int, batch_size: int, depths: list[int]
) -> ji.Grid:
    if quick:
        return ji.Grid(
            inits=INITS[:4],
            activations=ACTIVATIONS[:3],
            depth=[3, 6],
            width=8,
            seeds=seeds,
            batch_size=16,
        )
    return ji.Grid(
        inits=INITS,
        activations=ACTIVATIONS,
        depth=depths,
        width=width,
        seeds=seeds,
        batch_size=batch_size,
    )


def summarize(res: ji.SweepResult) -> dict:
    out = {}
    for row in csv.DictReader(io.StringIO(ji.report.summary_table(res, fmt="csv"))):
        out[f"{row['init']} | {row['activation']}"] = {  # numbers as numbers, null for none
            "ratio_at_L": float(row["ratio_at_L"]) if row["ratio_at_L"] else None,
            "outcome": row["outcome"],
            "outcome_layer": int(row["outcome_layer"]) if row["outcome_layer"] else None,
        }
    return out


def on_devices(devices: list[str]) -> str:
    """Where the sweep ran, in words: ``cpu:0``, or ``2 devices (cpu:0, cpu:1)`` (it said
    ``cpu:0`` while both ran)."""
    if len(devices) == 1:
        return devices[0]
    shown = ", ".join(devices[:4]) + (", ..." if len(devices) > 4 else "")
    return f"{len(devices)} devices ({shown})"


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__, seeds=32)
    p.add_argument("--width", type=int, default=100, help="units per layer (100)")
    p.add_argument("--batch-size", type=int, default=1000, help="input samples (1000)")
    p.add_argument("--depths", type=int, nargs="+", default=[5, 10, 20, 50])
    args = _common.parse(p, argv)
    grid = make_grid(
        quick=args.quick,
        seeds=args.seeds,
        width=args.width,
        batch_size=args.batch_size,
        depths=args.depths,
    )
    resumed = _common.resuming(args.out / "sweep")
    res, seconds = _common.run(grid, args.out)
    summary = {
        "networks": len(grid),
        "resumed": resumed,  # then the time covers only what this run computed
        "wall_time_s": seconds,
        "combos_per_s": None if resumed else len(grid) / seconds,
        "devices": [str(d) for d in jax.local_devices()],
        "deepest": max(grid.coords()["depth"]),
        "by_pair": summarize(res),
    }
    summary = _common.write_summary(args.out, summary)
    paths = ji.report.report_sweep(
        res, args.out, theory=_common.theory_or_none(grid), title="The big grid"
    )
    print(ji.report.summary_table(res, fmt="text"))
    outcomes = [v["outcome"] for v in summary["by_pair"].values()]
    counts = {o: outcomes.count(o) for o in sorted(set(outcomes))}
    speed = "resumed" if resumed else f"{len(grid) / seconds:.1f} combos/s"
    print(
        f"\n{len(grid)} networks in {seconds:.1f} s ({speed} on {on_devices(summary['devices'])}); "
        f"outcomes {counts}; report {paths.html}"
    )
    return summary


if __name__ == "__main__":
    main()
