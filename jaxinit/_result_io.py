"""Saving and loading a :class:`jaxinit.Result` of any kind: one directory, two files.

``path/arrays.npz`` holds the fields and ``path/manifest.json`` the kind of result
(``"SweepResult"``, ``"TrainResult"``, ...; :data:`jaxinit._results.KINDS`), the
dims, labels, field dims, aliases, attrs and the versions that wrote it. A save writes a sibling
temporary directory, fsyncs both files and renames it over ``path`` under an
exclusive lock on the parent, so a reader sees the old result or the new one,
never half of either. A save killed between moving the old result aside and
moving the new one in is recovered by the next save or load of that path (under
the same lock): the old result is moved back, and the temporary directories of
killed saves (``.<name>.tmp-*``, ``.<name>.old-*``) are removed.

Reading is safe against a hostile directory: no file is read through a link or
from a special file, or over a size limit (:mod:`jaxinit._io`); every array's
shape and dtype are checked against the manifest (its ``shapes`` and ``dtypes``,
and its dims) on the array's header, before the array is read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from jaxinit._host import memory_limit, versions
from jaxinit._io import (
    FileRefused,
    Npz,
    jsonable,
    open_limited,
    read_json,
    refuse_link,
)

__all__ = ["ARRAYS", "MANIFEST", "SCHEMA_VERSION", "load", "save"]

SCHEMA_VERSION = 2  # of manifest.json; load() refuses any other
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
    refuse_link(path)  # the rest is checked under the lock: another save may be swapping path
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(path.parent):
        _recover(path)
        _check_destination(path)
        _swap_in(result, path, text)


def _check_destination(path: Path) -> None:
    """Refuses a ``path`` that :func:`save` must not replace: a link, a file, a directory
    that holds something else than a result. Called with the parent's lock held: outside
    it, another save may be moving ``path`` aside and deleting it while it is read.
    """
    refuse_link(path)
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise _not_a_result(path)
        names = os.listdir(path)
    except FileNotFoundError:
        return
    if names and MANIFEST not in names:
        raise _not_a_result(path)


def _not_a_result(path: Path) -> FileExistsError:
    return FileExistsError(
        f"{path} exists and is not a saved jaxinit result; refusing to replace it"
    )


def _leftovers(path: Path) -> tuple[list[Path], list[Path]]:
    """The directories that killed saves of ``path`` left beside it: ``(olds, temporaries)``,
    by the names :func:`_swap_in` gives them (and no link)."""
    olds, tmps = [], []
    name = re.escape(path.name)
    old, tmp = (
        re.compile(rf"\.{name}\.old-[0-9a-f]{{32}}"),
        re.compile(rf"\.{name}\.tmp-[a-z0-9_]{{8}}"),
    )
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(path.parent):
            if entry.is_dir(follow_symlinks=False):
                if old.fullmatch(entry.name):
                    olds.append(Path(entry.path))
                elif tmp.fullmatch(entry.name):
                    tmps.append(Path(entry.path))
    return olds, tmps


def _recover(path: Path) -> None:
    """Undoes what a save of ``path`` killed midway left (the parent's lock held): with
    nothing at ``path``, the newest complete old result moves back; every other left-over
    directory is removed."""
    olds, tmps = _leftovers(path)
    if olds and not os.path.lexists(path):
        whole = [d for d in olds if (d / MANIFEST).is_file() and (d / ARRAYS).is_file()]
        if whole:
            newest = max(whole, key=lambda d: d.stat().st_mtime_ns)
            os.replace(newest, path)
            olds.remove(newest)
    for d in olds + tmps:
        shutil.rmtree(d, ignore_errors=True)


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
        # checked on each array's header before it is read: no surprise from arrays.npz
        "shapes": {k: list(v.shape) for k, v in result.fields.items()},
        "dtypes": {k: v.dtype.str for k, v in result.fields.items()},
        "schema_version": SCHEMA_VERSION,
        "kind": type(result)._saved_kind(),
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
    """Reads a directory written by :func:`save`, as the kind its manifest names
    (``cls._read_as``: ``cls`` itself, or the kind of ``cls`` it holds)."""
    path = Path(path)
    refuse_link(path)  # as save does: a result is read where it is, never through a link
    if any(_leftovers(path)):  # a save was killed midway: recover it first
        with _exclusive(path.parent):
            _recover(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no {cls.__name__} directory at {path}")
    try:
        m = read_json(path / MANIFEST)
    except FileNotFoundError:
        raise ValueError(f"{path / MANIFEST} is missing: not a complete saved result") from None
    except FileRefused:
        raise
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path / MANIFEST} is not valid JSON: {err}") from None
    version = m.get("schema_version") if isinstance(m, dict) else None
    if type(version) is not int or version < 1:
        raise ValueError(f"{path / MANIFEST}: no valid schema_version (got {version!r})")
    if version != SCHEMA_VERSION:
        fix = (
            "upgrade jaxinit"
            if version > SCHEMA_VERSION
            else "rerun the sweep (or training run) that made it to save it in this format"
        )
        raise ValueError(
            f"{path / MANIFEST} has schema_version {version}, written by another jaxinit "
            f"version; this one reads schema_version {SCHEMA_VERSION} only: {fix}"
        )
    keys = ("kind", "dims", "coords", "field_dims", "aliases", "attrs", "shapes", "dtypes")
    missing = [k for k in keys if k not in m]
    if missing:
        raise ValueError(f"{path / MANIFEST} lacks the keys {missing}")
    if not os.path.lexists(path / ARRAYS):
        raise ValueError(f"{path / ARRAYS} is missing: not a complete saved result")
    kind = cls._read_as(m["kind"], path)
    budget = memory_limit()
    with open_limited(path / ARRAYS, limit=budget) as file:  # read as it is checked
        return _build(kind, path, m, file, budget)


def _build(cls: type, path: Path, m: dict, file, budget: int) -> Any:
    """The result of the manifest ``m`` and ``arrays.npz``, open as ``file``."""
    try:
        npz = Npz(path / ARRAYS, file, budget=budget)
    except FileRefused:
        raise
    except Exception as err:  # zipfile.BadZipFile, ValueError, OSError, EOFError, ...
        raise ValueError(f"{path / ARRAYS} is unreadable: {type(err).__name__}: {err}") from None
    try:
        names = set(m["field_dims"])
    except TypeError:
        raise ValueError(f"{path / MANIFEST}: field_dims is not a mapping") from None
    if set(npz.headers) != names:
        raise ValueError(
            f"{path / ARRAYS} holds {sorted(npz.headers)}; {MANIFEST} names {sorted(names)}"
        )
    for k, (shape, dtype) in npz.headers.items():
        want = _expected(m, k, shape, dtype)
        if want is not None:
            raise ValueError(
                f"{path}: {MANIFEST} and {ARRAYS} disagree: field {k!r} has shape {shape} and "
                f"dtype {dtype} in {path / ARRAYS}; {MANIFEST} gives {want}"
            )
    try:
        arrays = {k: npz.read(k) for k in npz.headers}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path / ARRAYS} is unreadable: {type(err).__name__}: {err}") from None
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


def _expected(m: dict, field: str, shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    """What the manifest ``m`` gives field ``field`` (its ``shapes`` and ``dtypes`` entries)
    where its header's ``shape`` and ``dtype`` differ from it, else None."""
    try:
        want_shape, want_dtype = tuple(m["shapes"][field]), np.dtype(m["dtypes"][field])
    except (KeyError, TypeError, ValueError, AttributeError):
        return "no valid shape for it (a damaged manifest)"
    if (shape, dtype) != (want_shape, want_dtype):
        return f"shape {want_shape} and dtype {want_dtype}"
    return None
