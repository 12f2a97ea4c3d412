"""Checkpoint directories shared by ``sweep(out=)`` and ``train(out=)``.

A :class:`Store` is one directory holding:

- ``<kind>.json``, the manifest: the format version, the run's *fingerprint*
  (a SHA-256 of its canonical description) and that description
  (:meth:`Store.read_spec` reads it back before a run opens the store);
- data files (``.npz``), each carrying the fingerprint of the run that wrote it
  and a SHA-256 of its own arrays, so a file from another run, or one damaged
  or edited by hand, is detected before a number of it is used: a sweep's chunks,
  ``chunks/<name>.npz`` (:meth:`Store.save_chunk`, :meth:`Store.load_chunk`,
  :meth:`Store.chunk_names`), and a training run's ``checkpoint.npz``;
- ``result/``, the finished run's result (:attr:`Store.result_path`);
- ``.lock``, held with ``fcntl.flock`` for as long as the store is open, with
  the holder's PID and kind of run in it. A second process is refused at once; the
  kernel drops the lock of a process that died, so a killed run never blocks the next.
  The processes of one multi-process run (``processes > 1``) share ``.lock``
  and each holds ``.lock-<process>`` alone: a one-process run is refused while
  they run, and so is a second job's process of the same index.

Every write goes through :func:`jaxinit._io.atomic_write` (temporary file,
fsync, rename), and the temporary files of the store's own writes that a kill left
behind (``.<name>.<random>.tmp`` beside a file the store writes, in the store's own
folders) are removed on open; in a multi-process run, where another process may be
writing at that moment, only when the caller says nothing else writes
(:meth:`Store.clean_temporaries`). Nothing else in the directory is touched.

A store reads and writes only inside its directory: it follows no symbolic link in
it (the lock, the manifest, data files, its folders and ``result``), reads regular
files only, each within a size limit (:mod:`jaxinit._io`), and checks a data file's
array names, shapes and dtypes against the layout its caller expects before reading
them. A directory holding a run of the other kind (a sweep's for a training run, and
back) is refused, naming it. Every damaged or foreign file raises a ValueError that
names it and says what to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import pathlib
import re
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxinit._host import memory_limit
from jaxinit._io import (
    FileRefused,
    Npz,
    atomic_write,
    make_dirs,
    naming_the_path,
    open_limited,
    open_regular,
    read_json,
    refuse_link,
)

__all__: list[str] = []  # internal: used by jaxinit.sweeping and jaxinit.training

_FINGERPRINT, _CHECKSUM = "_fingerprint", "_sha256"
# the kinds of run a directory holds, by their manifests
WHAT = {"sweep": "sweep", "train": "training run"}
A_WHAT = {"sweep": "a sweep", "train": "a training run"}
# a multi-process training run's directory: one training run per block of seeds
BLOCKS = "seeds-*-*"
# the name of a temporary file of atomic_write(".../<target>") (tempfile's 8 random
# characters), given the target's pattern
_TEMPORARY = r"\.({})\.[a-z0-9_]{{8}}\.tmp"
_DATA = r"[A-Za-z0-9_-]+\.npz"
# the layout of a store's directory: every path below is built here and nowhere else
CHUNKS = "chunks"  # a sweep's chunks: chunks/<name>.npz
CHECKPOINT = "checkpoint.npz"  # a training run's checkpoint
RESULT = "result"  # the finished run's result (jaxinit.Result.save)

Layout = Mapping[str, tuple[tuple[int, ...], np.dtype]]


def other_run(root: pathlib.Path, kind: str) -> str | None:
    """What in ``root`` says it holds a run of another kind than ``kind`` (``"sweep"``,
    ``"train"`` or ``"blocks"``, a multi-process training run's root): ``"a sweep
    (sweep.json)"``, or None."""
    for other in WHAT:
        if other != kind and os.path.lexists(root / f"{other}.json"):
            return f"{A_WHAT[other]} ({other}.json)"
    if kind != "blocks":
        for block in blocks_in(root)[:1]:
            manifest = Store.manifest_path(block, "train")
            return f"a training run of several processes ({manifest.relative_to(root)})"
    return None


def blocks_in(root: pathlib.Path) -> list[pathlib.Path]:
    """The training runs of a training run of several processes in ``root`` (its blocks of
    seeds, ``seeds-<first>-<last>``, each holding a training run's manifest), sorted."""
    return sorted(p.parent for p in root.glob(f"{BLOCKS}/train.json"))


def refuse_other_run(root: pathlib.Path, kind: str, what: str) -> None:
    """A ValueError if ``root`` holds a run of another kind than ``kind`` (``what``)."""
    there = other_run(root, kind)
    if there:
        raise ValueError(
            f"{root} holds {there}; {what} cannot share its directory (it would replace "
            f"{root / 'result'}): use another directory"
        )


def fingerprint(spec: Any) -> str:
    """SHA-256 of the canonical JSON of ``spec``."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


class StoreBusy(RuntimeError):
    """Another process holds the directory's lock."""


class Store:
    """An open checkpoint directory of one run; use as a context manager (or call close)."""

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        kind: str,
        schema: int,
        spec: dict,
        process: int = 0,
        processes: int = 1,
        chunks: bool = False,
    ):
        """``chunks``: whether the run saves chunks (a sweep: ``chunks/<name>.npz``)."""
        self.root = pathlib.Path(root)
        self.process, self.processes = process, processes
        self.kind, self.folders = kind, (CHUNKS,) if chunks else ()
        self.what = WHAT[kind]
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"out={str(self.root)!r} is a file, not a directory; give a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(
                f"cannot create the directory out={str(self.root)!r}: {e.strerror}"
            ) from None
        refuse_other_run(self.root, kind, A_WHAT[kind])
        for name in (*self.folders, RESULT):  # before any work: they are written last
            refuse_link(self.root / name)
        self._lock = self._acquire()
        try:
            if processes == 1:  # another process of the run may be writing now
                self.clean_temporaries()
            self.fingerprint = fingerprint(spec)
            self._open_manifest(schema, spec)
        except BaseException:
            self.close()
            raise

    # -- lock ---------------------------------------------------------------------
    def _acquire(self) -> list:
        """Locks: ``.lock`` alone (one process), or shared plus ``.lock-<process>`` alone."""
        if self.processes == 1:
            return [self._flock(".lock", fcntl.LOCK_EX)]
        shared = self._flock(".lock", fcntl.LOCK_SH)
        try:
            return [shared, self._flock(f".lock-{self.process}", fcntl.LOCK_EX)]
        except BaseException:
            shared.close()
            raise

    def _flock(self, name: str, how: int):
        path = self.root / name
        try:  # never through a link, never a FIFO or a device: the file is written
            fd = open_regular(path, os.O_RDWR | os.O_CREAT)
        except OSError as e:
            raise ValueError(f"cannot write the lock file {path}: {e.strerror}") from None
        f = os.fdopen(fd, "r+", errors="replace")  # a damaged lock file is still read
        try:
            fcntl.flock(f, how | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid, _, kind = f.read(200).strip().partition(" ")
            f.close()
            holder = f"another {self.what}" if kind in ("", self.kind) else A_WHAT.get(kind, kind)
            mine = "" if self.processes == 1 else f" (process {self.process} of {self.processes})"
            raise StoreBusy(
                f"{self.root} is in use by {holder} (process {pid or 'unknown'}){mine}; wait "
                "for it to finish, or use another directory"
            ) from None
        except OSError as e:  # a file system without locks (ENOLCK), ...
            f.close()
            raise ValueError(f"cannot lock {path}: {e.strerror}") from None
        if how == fcntl.LOCK_EX:  # a shared lock's file keeps the last exclusive holder's PID
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()} {self.kind}")
            f.flush()
        return f

    def close(self) -> None:
        for f in reversed(getattr(self, "_lock", None) or ()):
            with contextlib.suppress(OSError):
                fcntl.flock(f, fcntl.LOCK_UN)
            f.close()
        self._lock = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def clean_temporaries(self) -> None:
        """Removes the temporary files of the store's own writes that a kill interrupted
        (of its manifest and data files, in its directory and folders); call it only while
        no other process writes into the store."""
        manifest = re.escape(f"{self.kind}.json")
        ours = re.compile(_TEMPORARY.format(f"{manifest}|{_DATA}"))
        for folder in (self.root, *(self.root / name for name in self.folders)):
            if folder.is_symlink() or not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                if ours.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    # -- manifest -----------------------------------------------------------------
    @staticmethod
    def manifest_path(root: str | os.PathLike, kind: str) -> pathlib.Path:
        """Where a run of ``kind`` (``"sweep"``, ``"train"``) in ``root`` keeps its manifest."""
        return pathlib.Path(root) / f"{kind}.json"

    @classmethod
    def read_spec(cls, root: str | os.PathLike, kind: str) -> dict | None:
        """The description that the manifest of a run of ``kind`` in ``root`` records, read
        without opening the store (no lock): None where there is none, or it is unreadable or
        not a store's (opening the store then says what is wrong). A manifest that is a link,
        a special file or too large raises :class:`jaxinit._io.FileRefused`, naming it."""
        try:
            spec = read_json(cls.manifest_path(root, kind))["spec"]
        except FileRefused:
            raise
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return spec if isinstance(spec, dict) else None

    def _open_manifest(self, schema: int, spec: dict) -> None:
        path = self.manifest_path(self.root, self.kind)
        if not os.path.lexists(path):
            body = {"schema_version": schema, "fingerprint": self.fingerprint, "spec": spec}
            atomic_write(path, json.dumps(body, indent=1, default=str).encode())
            return
        try:
            old = read_json(path)
            old_schema, old_print = old["schema_version"], old["fingerprint"]
        except FileRefused:
            raise
        except (OSError, ValueError, KeyError, TypeError) as e:  # ValueError: its content
            why = f": {e}" if isinstance(e, ValueError) else ""
            raise ValueError(
                f"{path} is damaged (not a {self.kind} manifest of this jaxinit{why}); delete "
                "the directory to start over, or use another directory"
            ) from None
        if old_schema != schema:
            raise ValueError(
                f"{self.root} holds a {self.what} checkpoint in format {old_schema!r}, written "
                f"by another jaxinit version; this one reads format {schema} only. Delete the "
                "directory to rerun from the start, or use another out= directory (or finish "
                "that run with the version that started it)"
            )
        if old_print != self.fingerprint:
            before = old.get("spec", {}) if isinstance(old.get("spec"), dict) else {}
            changed = sorted(k for k in set(spec) | set(before) if before.get(k) != spec.get(k))
            raise ValueError(
                f"{self.root} holds a checkpoint of a different {self.what} "
                f"({', '.join(changed) or 'its description'} differ); resume with the same "
                "settings, or use another directory"
            )

    # -- data files ---------------------------------------------------------------
    def save(self, relpath: str, arrays: dict[str, np.ndarray]) -> None:
        """Writes ``arrays`` atomically to ``relpath``, with this run's fingerprint and a checksum."""
        path = self.root / relpath
        make_dirs(self.root, *pathlib.PurePath(relpath).parent.parts)
        body = {k: np.asarray(v) for k, v in arrays.items()}
        body[_FINGERPRINT] = np.frombuffer(self.fingerprint.encode(), np.uint8)
        body[_CHECKSUM] = np.frombuffer(_checksum(body).encode(), np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **body)
        atomic_write(path, buffer.getvalue())

    def load(self, relpath: str, layout: Layout | None = None) -> dict[str, np.ndarray] | None:
        """The arrays at ``relpath``, None if absent; ValueError naming the file if damaged,
        foreign, or (given ``layout``, name -> (shape, dtype) of every array the caller
        wrote) not of that layout. The layout is checked on the arrays' headers, after the
        fingerprint and before any other array is read; the checksum then covers what was
        read."""
        path = self.root / relpath
        for k in range(1, len(pathlib.PurePath(relpath).parts)):  # its folders: no links
            refuse_link(self.root.joinpath(*pathlib.PurePath(relpath).parts[:k]))
        if not os.path.lexists(path):
            return None
        budget = memory_limit()
        with open_limited(path, limit=budget) as file:
            return self._read(path, file, budget, layout)

    def _read(self, path, file, budget: int, layout: Layout | None) -> dict:
        fix = "delete it to recompute it"
        try:
            npz = Npz(path, file, budget=budget)
        except FileRefused:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
            raise ValueError(f"{path} is damaged ({type(e).__name__}); {fix}") from None
        signature = ((64,), np.dtype(np.uint8))  # hexadecimal SHA-256 digests
        if any(npz.headers.get(k) != signature for k in (_FINGERPRINT, _CHECKSUM)):
            raise ValueError(
                f"{path} has no fingerprint or checksum (not written by this jaxinit); {fix}"
            )
        try:
            stored_print = npz.read(_FINGERPRINT).tobytes().decode()
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path} is damaged ({type(e).__name__}); {fix}") from None
        if stored_print != self.fingerprint:
            raise ValueError(f"{path} was written by a different {self.what} than this one; {fix}")
        names = {k: v for k, v in npz.headers.items() if k not in (_FINGERPRINT, _CHECKSUM)}
        if layout is not None:
            self._check_layout(path, names, layout, fix)
        try:
            arrays = {k: npz.read(k) for k in names}
            stored_sum = npz.read(_CHECKSUM).tobytes().decode()
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path} is damaged ({type(e).__name__}); {fix}") from None
        if (
            _checksum({**arrays, _FINGERPRINT: np.frombuffer(stored_print.encode(), np.uint8)})
            != stored_sum
        ):
            raise ValueError(f"{path} fails its checksum (damaged or edited); {fix}")
        return arrays

    def _check_layout(self, path, names, layout: Layout, fix: str) -> None:
        extra = sorted(set(names) - set(layout))
        if extra:
            raise ValueError(
                f"{path} holds arrays {extra} that {A_WHAT[self.kind]} never writes; {fix}"
            )
        missing = sorted(set(layout) - set(names))
        if missing:
            raise ValueError(f"{path} lacks the arrays {missing} of this {self.what}; {fix}")
        for k, (shape, dtype) in names.items():
            want_shape, want_dtype = layout[k]
            if shape != tuple(want_shape) or dtype != np.dtype(want_dtype):
                raise ValueError(
                    f"{path} holds {k} of shape {shape} and dtype {dtype}; this {self.what} "
                    f"writes shape {tuple(want_shape)} and dtype {np.dtype(want_dtype)}; {fix}"
                )

    def refuse(self, relpath: str, why: str) -> None:
        """A ValueError naming the data file ``relpath``: it ``why``, and what to do."""
        raise ValueError(f"{self.root / relpath} {why}; delete it to recompute it")

    # -- the layout: chunks, checkpoint, result -----------------------------------
    @staticmethod
    def chunks_in(root: str | os.PathLike) -> list[str]:
        """The names of the chunk files in the sweep checkpoint ``root`` (``chunks/<name>.npz``),
        sorted, listed without opening the store: [] where there are none."""
        folder = pathlib.Path(root) / CHUNKS
        if folder.is_symlink() or not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.npz"))

    def chunk_path(self, name: str) -> pathlib.Path:
        """Where chunk ``name`` is saved: ``<root>/chunks/<name>.npz``."""
        return self.root / self._chunk(name)

    def chunk_names(self) -> list[str]:
        """The names of the chunk files this store holds, sorted."""
        return self.chunks_in(self.root)

    def save_chunk(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        """Saves chunk ``name``'s ``arrays`` (:meth:`save`)."""
        self.save(self._chunk(name), arrays)

    def load_chunk(self, name: str, layout: Layout) -> dict[str, np.ndarray] | None:
        """Chunk ``name``'s arrays, None if it was not saved (:meth:`load`, with the
        ``layout`` of every array the run saves in it)."""
        return self.load(self._chunk(name), layout)

    def refuse_chunk(self, name: str, why: str) -> None:
        """A ValueError naming chunk ``name``'s file: it ``why``, and what to do."""
        self.refuse(self._chunk(name), why)

    def _chunk(self, name: str) -> str:
        if CHUNKS not in self.folders:
            raise ValueError(f"this {self.what}'s store saves no chunks (Store(chunks=True))")
        if not re.fullmatch(_DATA, f"{name}.npz"):  # a name, never a path
            raise ValueError(f"a chunk's name is letters, digits, _ and -; got {name!r}")
        return f"{CHUNKS}/{name}.npz"

    @property
    def checkpoint_path(self) -> pathlib.Path:
        """A training run's checkpoint: ``<root>/checkpoint.npz``."""
        return self.root / CHECKPOINT

    def save_checkpoint(self, arrays: dict[str, np.ndarray]) -> None:
        """Saves a training run's checkpoint (:meth:`save`), replacing the previous one."""
        self.save(CHECKPOINT, arrays)

    def load_checkpoint(self, layout: Layout | None = None) -> dict[str, np.ndarray] | None:
        """A training run's checkpoint, None if none was saved yet (:meth:`load`)."""
        return self.load(CHECKPOINT, layout)

    def refuse_checkpoint(self, why: str) -> None:
        """A ValueError naming the checkpoint's file: it ``why``, and what to do."""
        self.refuse(CHECKPOINT, why)

    @property
    def result_path(self) -> pathlib.Path:
        """Where the finished run's result is saved: ``<root>/result``."""
        return self.root / RESULT

    def save_result(self, result: Any, what: str) -> None:
        """Saves ``result`` (a :class:`jaxinit.Result`) to :attr:`result_path`; an OSError
        without a path (a full disk) names it, as writing ``what``."""
        with naming_the_path(self.result_path, what):
            result.save(self.result_path)
