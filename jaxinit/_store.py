"""Checkpoint directories shared by ``sweep(out=)`` and ``train(out=)``.

A :class:`Store` is one directory holding:

- ``<kind>.json``, the manifest: the format version, the run's *fingerprint*
  (a SHA-256 of its canonical description) and that description;
- data files (``.npz``), each carrying the fingerprint of the run that wrote it
  and a SHA-256 of its own arrays, so a file from another run, or one damaged
  or edited by hand, is detected before a number of it is used;
- ``.lock``, held with ``fcntl.flock`` for as long as the store is open, with
  the holder's PID in it. A second process is refused at once; the kernel
  drops the lock of a process that died, so a killed run never blocks the next.
  The processes of one multi-process run (``processes > 1``) share ``.lock``
  and each holds ``.lock-<process>`` alone: a one-process run is refused while
  they run, and so is a second job's process of the same index.

Every write goes through :func:`jaxinit._io.atomic_write` (temporary file,
fsync, rename), and temporary files a kill left behind are removed on open; in
a multi-process run, where another process may be writing at that moment, only
when the caller says nothing else writes (:meth:`Store.clean_temporaries`).
Every damaged or foreign file raises a ValueError that names it and says what
to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import pathlib
import zipfile
from typing import Any

import numpy as np

from jaxinit._io import atomic_write

__all__: list[str] = []  # internal: used by jaxinit.sweeping and jaxinit.training

_FINGERPRINT, _CHECKSUM = "_fingerprint", "_sha256"


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
    ):
        self.root = pathlib.Path(root)
        self.process, self.processes = process, processes
        self.kind = kind
        self.what = {"train": "training run"}.get(kind, kind)
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"out={str(self.root)!r} is a file, not a directory; give a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(
                f"cannot create the directory out={str(self.root)!r}: {e.strerror}"
            ) from None
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
        try:
            f = open(path, "a+")  # noqa: SIM115 - held open for the store's lifetime
        except OSError as e:
            raise ValueError(f"cannot write the lock file {path}: {e.strerror}") from None
        try:
            fcntl.flock(f, how | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            mine = "" if self.processes == 1 else f" (process {self.process} of {self.processes})"
            raise StoreBusy(
                f"{self.root} is in use by another {self.what} (process {holder}){mine}; wait "
                "for it to finish, or use another directory"
            ) from None
        if how == fcntl.LOCK_EX:  # a shared lock's file keeps the last exclusive holder's PID
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
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
        """Removes the temporary files of writes a kill interrupted; call it only while no
        other process writes into the store."""
        for tmp in self.root.rglob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    # -- manifest -----------------------------------------------------------------
    def _open_manifest(self, schema: int, spec: dict) -> None:
        path = self.root / f"{self.kind}.json"
        if not path.exists():
            body = {"schema_version": schema, "fingerprint": self.fingerprint, "spec": spec}
            atomic_write(path, json.dumps(body, indent=1, default=str).encode())
            return
        if not path.is_file():
            raise ValueError(f"{path} is not a file; remove it or use another directory")
        try:
            old = json.loads(path.read_text())
            old_schema, old_print = old["schema_version"], old["fingerprint"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            raise ValueError(
                f"{path} is damaged (not a {self.kind} manifest of this jaxinit); delete the "
                "directory to start over, or use another directory"
            ) from None
        if old_schema != schema:
            raise ValueError(
                f"{self.root} holds a checkpoint in format {old_schema!r}, written by another "
                f"jaxinit version; this one reads format {schema}. Use another directory, or "
                "finish that run with the version that started it"
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
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {k: np.asarray(v) for k, v in arrays.items()}
        body[_FINGERPRINT] = np.frombuffer(self.fingerprint.encode(), np.uint8)
        body[_CHECKSUM] = np.frombuffer(_checksum(body).encode(), np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **body)
        atomic_write(path, buffer.getvalue())

    def load(self, relpath: str) -> dict[str, np.ndarray] | None:
        """The arrays at ``relpath``, None if absent; ValueError naming the file if damaged or foreign."""
        path = self.root / relpath
        if not path.exists():
            return None
        fix = "delete it to recompute it"
        if not path.is_file():
            raise ValueError(f"{path} is not a file; {fix}")
        try:
            raw = path.read_bytes()  # np.load of a path leaks its file when the zip is damaged
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
            raise ValueError(f"{path} is damaged ({type(e).__name__}); {fix}") from None
        try:
            stored_print = arrays.pop(_FINGERPRINT).tobytes().decode()
            stored_sum = arrays.pop(_CHECKSUM).tobytes().decode()
        except (KeyError, UnicodeDecodeError):
            raise ValueError(
                f"{path} has no fingerprint or checksum (not written by this jaxinit); {fix}"
            ) from None
        if stored_print != self.fingerprint:
            raise ValueError(f"{path} was written by a different {self.what} than this one; {fix}")
        if (
            _checksum({**arrays, _FINGERPRINT: np.frombuffer(stored_print.encode(), np.uint8)})
            != stored_sum
        ):
            raise ValueError(f"{path} fails its checksum (damaged or edited); {fix}")
        return arrays

    def files(self, pattern: str) -> list[pathlib.Path]:
        return sorted(self.root.glob(pattern))
