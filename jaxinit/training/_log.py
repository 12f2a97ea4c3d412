"""Metrics out of a training run: a JSON-lines writer for ``train(callback=...)``.

Each call of the callback appends one line per model::

    {"step": 200, "init": "he_normal", "seed": 0, "loss": 0.41, "test_accuracy": 0.9, ...}

with the model's labels under their dim names, flushed and fsynced so that a
killed run keeps every line written before it. The same mapping feeds
TensorBoard or Weights & Biases in a few lines (README).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["jsonl_writer"]


def _finite(v):
    """JSON has no NaN: a value that is not finite is written as null."""
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v if not isinstance(v, float) or math.isfinite(v) else None


def jsonl_writer(path: str | os.PathLike, dims: Sequence[str]) -> Callable[[int, dict], None]:
    """A ``train`` callback appending each model's metrics as one JSON line to ``path``.

    Args:
      path: the file (appended to; its directory is made).
      dims: the names of the labels' entries, ``grid.dims`` (such as
        ``("init", "seed")``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dims = tuple(dims)

    def write(step: int, metrics: dict) -> None:
        lines = []
        for labels, values in metrics.items():
            row = {"step": int(step), **dict(zip(dims, labels, strict=True))}
            row.update({k: _finite(v) for k, v in values.items()})
            lines.append(json.dumps(row, allow_nan=False))
        with open(path, "a") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())

    return write
