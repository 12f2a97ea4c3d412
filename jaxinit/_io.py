"""Atomic file writes: a reader or a crash sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile


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
