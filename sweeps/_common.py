"""What every sweep script shares: its flags, and how it writes summary.json and the report."""

from __future__ import annotations

import argparse
import functools
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

import jaxinit as ji


def parser(doc: str, *, seeds: int) -> argparse.ArgumentParser:
    """``--out DIR`` (required), ``--quick`` and ``--seeds N``, with the script's doc as help."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--out", type=pathlib.Path, required=True, help="output directory")
    p.add_argument("--quick", action="store_true", help="tiny shapes, for smoke tests")
    p.add_argument("--seeds", type=int, default=seeds, help=f"networks per configuration ({seeds})")
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parses the script's arguments, then asks for one CPU device per core (saying so first)."""
    args = p.parse_args(argv)
    print(ji.use_cpu_cores(), flush=True)
    if args.seeds < 1:
        p.error(f"--seeds must be a positive integer; got {args.seeds}")
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def write_summary(out: pathlib.Path, summary: dict) -> dict:
    """Writes ``out/summary.json`` (strict JSON) and returns what it wrote, as read back."""
    return ji.report.write_json(out / "summary.json", summary)


def theory_or_none(grid: ji.Grid) -> ji.SweepResult | None:
    """Mean-field predictions for ``grid``, or None (with a note) where theory has none."""
    try:
        return ji.theory.predict(grid)
    except ValueError as e:
        print(f"note: no theory overlay: {e}", file=sys.stderr)
        return None


def resuming(path: pathlib.Path) -> bool:
    """Whether ``path`` holds chunks of an earlier, interrupted or finished, sweep."""
    return bool(ji.sweeping.checkpointed_chunks(path))


def run(grid: ji.Grid, out: pathlib.Path, name: str = "sweep") -> tuple[ji.SweepResult, float]:
    """``ji.sweep`` checkpointed under ``out/name`` (a rerun resumes), and its wall time in s.

    A resumed run reads finished chunks back, so its time is not the sweep's: it says so.
    """
    if resuming(out / name):
        print(
            f"resuming from {out / name}: finished chunks are read back, not recomputed, "
            "so the time below is not the whole sweep's",
            file=sys.stderr,
        )
    start = time.perf_counter()
    res = ji.sweep(grid, out=out / name)
    return res, time.perf_counter() - start


def per_layer(res: ji.SweepResult, fields: Sequence[str], **selection: Any) -> dict:
    """Seed means of per-layer fields for one selected combination, as lists."""
    s = res.sel(**selection)
    axes = tuple(range(len(s.dims)))
    return {f: np.nanmean(getattr(s, f), axis=axes) for f in fields if f in s.fields}


def name_the_band(fig: Figure, label: str) -> None:
    """Adds ``label`` with a grey band to the legend under ``fig`` (the band's meaning was
    only in the caption)."""
    (old,) = fig.legends
    handles, labels = old.legend_handles, [t.get_text() for t in old.get_texts()]
    old.remove()
    handles.append(Patch(facecolor="0.5", alpha=0.3, linewidth=0))
    fig.legend(
        handles, [*labels, label], loc="outside lower center", ncols=2, fontsize=7, frameon=False
    )


TRANSFORMER_DEPTH = 2  # the μP sweeps' Transformer: pre-LN blocks of 4 heads
MODELS = ("mlp", "transformer")  # the μP sweeps' --model choices


def mnist_transformer(rngs, *, width: int, parametrization: str) -> ji.models.Transformer:
    """The μP sweeps' Transformer on MNIST's rows as 28 tokens of 28 pixels, ``d_model =
    width`` (4 heads: the heads' width grows); under μP its attention logits are scaled by
    1/d (``attention_scale="1/d"``), under the standard parametrization by 1/√d."""
    return ji.models.Transformer(
        rngs,
        d_in=28,
        d_model=width,
        heads=4,
        depth=TRANSFORMER_DEPTH,
        classes=10,
        attention_scale="1/d" if parametrization == "mup" else "1/sqrt(d)",
    )


def architecture(model: str, parametrization: str, *, hidden_layers: int) -> dict[str, Any]:
    """The TrainGrid fields of the μP sweeps' network: the MLP's ReLU hidden layers (their
    width is the grid's), or the model field of :func:`mnist_transformer`."""
    if model == "transformer":
        make = functools.partial(mnist_transformer, parametrization=parametrization)
        return {"model": make}
    return {"hidden": (1,) * hidden_layers, "activations": "relu"}


TRANSFORMER_EVAL = 1000  # the Transformer's evaluation examples (see eval_data)


def eval_data(model: str, x: np.ndarray, y: np.ndarray) -> tuple | None:
    """What the μP sweeps evaluate on (their summaries use the training loss only): the
    training data for the MLP (train's default), its first TRANSFORMER_EVAL examples for the
    Transformer, whose full pass over 60000 images of 28 tokens at width 256 costs more
    than its training (about 5 TFLOP a model)."""
    return (x[:TRANSFORMER_EVAL], y[:TRANSFORMER_EVAL]) if model == "transformer" else None


def add_model_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        choices=MODELS,
        default="mlp",
        help="the MLP, or the zoo's Transformer on MNIST's rows as tokens (mlp)",
    )
