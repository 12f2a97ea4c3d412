"""Saving and loading a :class:`jaxinit.results.SweepResult`: one directory, two files.

``path/arrays.npz`` holds the fields and ``path/manifest.json`` the dims, labels,
field dims, aliases, attrs and the versions that wrote it. A save writes a sibling
temporary directory, fsyncs both files and renames it over ``path`` under an
exclusive lock on the parent, so a reader sees the old result or the new one,
never half of either.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from jaxinit._host import versions
from jaxinit._io import jsonable

__all__ = ["ARRAYS", "MANIFEST", "SCHEMA_VERSION", "load", "save"]

SCHEMA_VERSION = 1  # of manifest.json; load() refuses newer ones
ARRAYS, MANIFEST = "arrays.npz", "manifest.json"


@contextlib.contextmanager
def _exclusive(directory: Path):
    """An exclusive ``flock`` on ``directory`` itself while the block runs: saves into it by
    several processes (or threads) take turns instead of failing in the rename, and no
    lock file is left beside the result."""
    import fcntl

    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def save(result: Any, path: str | os.PathLike) -> None:
    """Writes ``path/arrays.npz`` and ``path/manifest.json``, atomically.

    The files are written into a temporary sibling directory that then
    replaces ``path``. An existing result at ``path`` is replaced whole; any
    other existing file or non-empty directory is refused.
    """
    path = Path(path)
    text = json.dumps(jsonable(_manifest(result)), indent=1)
    if path.exists() and not (
        path.is_dir() and ((path / MANIFEST).exists() or not any(path.iterdir()))
    ):
        raise FileExistsError(f"{path} exists and is not a SweepResult; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(path.parent):
        _swap_in(result, path, text)


def _swap_in(result: Any, path: Path, text: str) -> None:
    """Writes a sibling temporary directory and renames it over ``path`` (lock held)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        with open(tmp / ARRAYS, "wb") as f:
            np.savez(f, **result.fields)
            f.flush()
            os.fsync(f.fileno())
        with open(tmp / MANIFEST, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex}")
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _manifest(result: Any) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "dims": list(result.dims),
        "coords": {d: list(labels) for d, labels in result.coords.items()},
        "field_dims": {k: list(own) for k, own in result.field_dims.items()},
        # pairs, not an object: JSON keys are strings and labels may be ints
        "aliases": {d: [[k, v] for k, v in t.items()] for d, t in result.aliases.items()},
        "attrs": result.attrs,
        "versions": versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def load(cls: type, path: str | os.PathLike) -> Any:
    """Reads a directory written by :meth:`save`."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no SweepResult directory at {path}")
    try:
        m = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path / MANIFEST} is missing: not a complete SweepResult") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path / MANIFEST} is not valid JSON: {err}") from None
    version = m.get("schema_version") if isinstance(m, dict) else None
    if type(version) is not int or version < 1:
        raise ValueError(f"{path / MANIFEST}: no valid schema_version (got {version!r})")
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"{path / MANIFEST} has schema_version {version}, newer than the "
            f"{SCHEMA_VERSION} this jaxinit reads; upgrade jaxinit"
        )
    missing = [k for k in ("dims", "coords", "field_dims", "aliases", "attrs") if k not in m]
    if missing:
        raise ValueError(f"{path / MANIFEST} lacks the keys {missing}")
    try:
        # our own handle: np.load leaks the file it opened when the zip is corrupt
        with open(path / ARRAYS, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise ValueError(f"{path / ARRAYS} is missing: not a complete SweepResult") from None
    except Exception as err:  # zipfile.BadZipFile, ValueError, OSError, EOFError, ...
        raise ValueError(f"{path / ARRAYS} is unreadable: {type(err).__name__}: {err}") from None
    if set(arrays) != set(m["field_dims"]):
        raise ValueError(
            f"{path / ARRAYS} holds {sorted(arrays)}; {MANIFEST} names {sorted(m['field_dims'])}"
        )
    try:
        return cls(
            dims=tuple(m["dims"]),
            coords={d: tuple(labels) for d, labels in m["coords"].items()},
            fields={k: arrays[k] for k in m["field_dims"]},
            field_dims={k: tuple(own) for k, own in m["field_dims"].items()},
            aliases={d: {k: v for k, v in pairs} for d, pairs in m["aliases"].items()},
            attrs=m["attrs"],
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: {MANIFEST} and {ARRAYS} disagree: {err}") from None
