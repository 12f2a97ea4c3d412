"""Atomic file writes: a reader or a crash sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["atomic_write", "jsonable"]


def jsonable(x: Any, *, strict: bool = False) -> Any:
    """``x`` with NumPy arrays and scalars as lists and Python numbers, recursively.

    ``strict`` also turns NaN and ±inf into None, for JSON that any reader parses
    (``json.dumps(..., allow_nan=False)``); otherwise they stay floats.

    Example:
      >>> jsonable({"a": np.arange(2), "b": np.float32(0.5), "c": [np.nan]}, strict=True)
      {'a': [0, 1], 'b': 0.5, 'c': [None]}
    """
    if isinstance(x, Mapping):
        return {k: jsonable(v, strict=strict) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v, strict=strict) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist(), strict=strict)
    if isinstance(x, np.generic):
        x = x.item()
    if strict and isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path``: a temporary file in the same directory, flushed to
    disk, then renamed over ``path``. Nothing is left behind on failure."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
