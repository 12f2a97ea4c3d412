"""Numbers beside a report, as a JSON file any reader parses: :func:`write_json`."""

from __future__ import annotations

import json
import os
from typing import Any

from jaxinit._io import atomic_write, jsonable

__all__ = ["write_json"]


def write_json(path: str | os.PathLike, value: Any) -> Any:
    """Writes ``value`` to ``path`` as strict JSON, indented, and returns what it wrote as
    ``json.loads`` reads it back.

    NumPy arrays and scalars become lists and numbers, and NaN and infinities null (JSON has
    neither), so any reader parses the file. The write is atomic: a reader, or a crash,
    sees the old file or the new one, never half of one. The folder must exist.

    Example:
      >>> import numpy as np, tempfile, pathlib
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "summary.json"
      >>> write_json(path, {"var": np.float32(0.5), "ratios": np.array([1.0, np.nan])})
      {'var': 0.5, 'ratios': [1.0, None]}
    """
    text = json.dumps(jsonable(value, strict=True), indent=2, allow_nan=False)
    atomic_write(path, text.encode())
    return json.loads(text)
