"""Files: atomic writes, and safe reads of the files jaxinit reads back.

Writes go through :func:`atomic_write`: a reader or a crash sees the old file or the
new one, never half of one. Reads of what jaxinit wrote (manifests, checkpoints,
saved results) go through :func:`open_limited` (:func:`read_regular`,
:func:`read_json`, :class:`Npz`),
which never follows a symbolic link, never blocks on or reads a special file (a FIFO,
``/dev/zero``), and refuses a file over a size limit before reading it; an ``.npz``'s
arrays declare their shapes and dtypes in their headers, read before any data, so a
caller checks them (and a zip bomb is refused) before anything is inflated. Folders
inside a directory jaxinit writes are made by :func:`make_dirs`, which refuses links.
Every refusal is a :class:`FileRefused` (a ValueError) naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import pathlib
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "JSON_DEPTH",
    "JSON_LIMIT",
    "FileRefused",
    "Npz",
    "atomic_write",
    "jsonable",
    "make_dirs",
    "naming_the_path",
    "open_limited",
    "open_regular",
    "read_json",
    "read_regular",
    "refuse_link",
]

JSON_LIMIT = 1 << 30  # bytes of a JSON file jaxinit reads (a manifest lists every seed)
JSON_DEPTH = 100  # levels of nesting; jaxinit's files have a handful

_LINKS = "jaxinit follows no links inside the directories it reads and writes"


class FileRefused(ValueError):
    """A path jaxinit will not read or write: a link, a special file, a file too large."""


def refuse_link(path: str | os.PathLike) -> None:
    """A FileRefused if ``path`` is a symbolic link."""
    if os.path.islink(path):
        raise FileRefused(
            f"{path} is a symbolic link; {_LINKS}: remove it, or use another directory"
        )


def make_dirs(root: str | os.PathLike, *parts: str) -> pathlib.Path:
    """``root/parts[0]/parts[1]/...``, each folder made where missing and refused where it
    is a link or not a folder; ``root`` itself must exist."""
    path = pathlib.Path(root)
    for part in parts:
        path = path / part
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
        refuse_link(path)
        if not path.is_dir():
            raise FileRefused(f"{path} is not a directory; remove it, or use another directory")
    return path


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def open_regular(path: str | os.PathLike, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """A descriptor of ``path`` opened with ``flags``, without following a link and without
    blocking (a FIFO), once it is known to be a regular file; FileRefused otherwise."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(path):
            refuse_link(path)
        if e.errno == errno.ENXIO:  # a FIFO opened for writing, with no reader
            raise FileRefused(f"{path} is not a regular file (a FIFO)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(
                f"{path} is not a regular file ({_kind(st.st_mode)}); jaxinit reads and "
                "writes regular files only: remove it, or use another directory"
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _too_large(path: str | os.PathLike, size: int, limit: int) -> FileRefused:
    return FileRefused(
        f"{path} is {size} bytes, over the limit of {limit} for this kind of file; it is not "
        "one jaxinit wrote"
    )


@contextlib.contextmanager
def open_limited(path: str | os.PathLike, *, limit: int) -> Iterator[BinaryIO]:
    """The regular file ``path`` (no link, no special file) open for reading while the block
    runs, refused if it has more than ``limit`` bytes."""
    with os.fdopen(open_regular(path), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise _too_large(path, size, limit)
        yield f


def read_regular(path: str | os.PathLike, *, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (no link, no special file), at most ``limit``
    of them: a larger file is refused before it is read."""
    with open_limited(path, limit=limit) as f:
        data = f.read(os.fstat(f.fileno()).st_size)
        while len(data) <= limit:  # a file growing meanwhile: up to the limit
            more = f.read(min(1 << 20, limit + 1 - len(data)))
            if not more:
                break
            data += more
    if len(data) > limit:
        raise _too_large(path, len(data), limit)
    return data


def _depth(value: Any) -> int:
    """How deep lists and objects nest in a parsed JSON value (iteratively)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            todo.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in ``path``, read by :func:`read_regular` (at most ``JSON_LIMIT``
    bytes). FileRefused names the path; content that is not UTF-8 JSON, or nests deeper
    than ``JSON_DEPTH`` levels, is a ValueError (UnicodeDecodeError, JSONDecodeError)
    that callers report with the path."""
    text = read_regular(path, limit=JSON_LIMIT).decode("utf-8")
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"it nests deeper than {JSON_DEPTH} levels") from None
    if _depth(value) > JSON_DEPTH:
        raise ValueError(f"it nests deeper than {JSON_DEPTH} levels")
    return value


class Npz:
    """The arrays of an ``.npz`` file open as ``file`` (:func:`open_limited`): every member's
    shape and dtype are read from its ``.npy`` header first (:attr:`headers`), and an array
    only when asked (:meth:`read`), while the file is open. Damage (a bad archive, an
    unsupported or encrypted member, bad deflate data, a short file) is a ValueError
    naming the file, or an OSError; an object array, or arrays declaring more than
    ``budget`` bytes in all, a FileRefused."""

    # what zipfile and numpy raise on a damaged archive or member (besides ValueError)
    DAMAGE = (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, zlib.error)

    def __init__(self, path: str | os.PathLike, file: BinaryIO, *, budget: int):
        self.path = path
        try:
            self._headers(file, budget)
        except self.DAMAGE as e:
            raise ValueError(f"{path} is damaged: {type(e).__name__}: {e}") from None

    def _headers(self, file: BinaryIO, budget: int) -> None:
        path = self.path
        self._zip = zipfile.ZipFile(file)
        self.headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for name in self._zip.namelist():
            if not name.endswith(".npy"):
                raise ValueError(f"member {name!r} is not a .npy array")
            with self._zip.open(name) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"member {name!r} has .npy format {version}")
            if dtype.hasobject:
                raise FileRefused(f"{path} holds an object array ({name}); jaxinit wrote none")
            self.headers[name.removesuffix(".npy")] = (tuple(shape), dtype)
        total = sum(math.prod(s) * d.itemsize for s, d in self.headers.values())
        if total > budget:
            raise FileRefused(
                f"{path} declares {total} bytes of arrays, over the {budget} bytes (part of this "
                "host's memory) that jaxinit reads; it is not a file jaxinit wrote here"
            )

    def read(self, name: str) -> np.ndarray:
        """The array ``name``, as its header declared it."""
        try:
            with self._zip.open(f"{name}.npy") as f:
                array = np.lib.format.read_array(f, allow_pickle=False)
        except self.DAMAGE as e:
            raise ValueError(f"{self.path} is damaged ({name}): {type(e).__name__}: {e}") from None
        if (array.shape, array.dtype) != self.headers[name]:  # pragma: no cover - numpy's own
            raise ValueError(f"member {name!r} is not what its header declares")
        return array


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


@contextlib.contextmanager
def naming_the_path(path: Any, what: str) -> Iterator[None]:
    """Adds ``path`` to an OSError raised without one inside (a full disk's ENOSPC from a
    write names no file), so that the message says where: ``[Errno 28] No space left on
    device (writing the sweep's checkpoint): 'out/sweep'``."""
    try:
        yield
    except OSError as e:
        if e.filename is not None or e.errno is None:
            raise
        raise type(e)(e.errno, f"{e.strerror} (writing {what})", str(path)) from e
