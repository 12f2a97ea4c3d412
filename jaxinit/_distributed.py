"""Several processes on one run (``jax.distributed``): who computes what, and waiting for the
others' work without hanging on a process that died.

After ``jax.distributed.initialize(...)`` every process runs the same call. Work
item ``i`` (a sweep's chunk) belongs to process ``i mod count``: a fixed rule,
so that the processes agree without talking, and a restarted job gives every
process the same share again. Items are exchanged through the run's checkpoint
directory, which every process sees; no collective runs.

While it works, each process keeps a *heartbeat* file ``.process-<index>`` in
that directory up to date (a line rewritten every second or so, by a daemon
thread), and says ``done`` or ``failed <error>`` there when it stops. A process
waiting for another's items reads it: an item owner that stopped without
writing them, or whose heartbeat has not changed for ``timeout`` seconds (by
the waiting process's own clock, so hosts' clocks need not agree), raises
:class:`ProcessLost` naming the process and what was waited for.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import threading
import time
from collections.abc import Callable, Iterator

import jax

from jaxinit._checks import check_real
from jaxinit._io import open_regular, read_regular

__all__: list[str] = []  # internal: used by jaxinit.sweeping

DEFAULT_PROCESS_TIMEOUT = 60.0  # s without a sign of life before a waited-on process is dead
POLL_SECONDS = 0.1  # between looks for the others' items
HEARTBEAT_SECONDS = 1.0  # between heartbeats (or timeout / 5, if less)
HEARTBEAT_LIMIT = 1 << 16  # bytes of a heartbeat file read (a line of at most ~600)


class ProcessLost(RuntimeError):
    """A process whose work this one waits for died, stopped, or stopped answering."""


def processes() -> tuple[int, int]:
    """``(this process's index, number of processes)``: ``(0, 1)`` without jax.distributed."""
    return jax.process_index(), jax.process_count()


def owner(item: int, count: int) -> int:
    """The process that computes work item ``item`` of a run over ``count`` processes."""
    return item % count


def check_timeout(timeout: float, who: str) -> float:
    """``process_timeout`` in seconds: a finite number > 0."""
    return check_real(f"{who}: process_timeout (seconds)", timeout, low=0.0, strict=True)


def _path(root: pathlib.Path, process: int) -> pathlib.Path:
    return root / f".process-{process}"


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:500]


@contextlib.contextmanager
def heartbeat(root: pathlib.Path, process: int, timeout: float) -> Iterator[None]:
    """Keeps ``root/.process-<process>`` changing while the block runs; then writes ``done``,
    or ``failed <error>`` if the block raised."""
    path, pid, stop = _path(root, process), os.getpid(), threading.Event()

    def write(status: str, note: str = "") -> None:
        line = f"{status} pid={pid} t={time.time():.3f} {note}".rstrip() + "\n"
        # a missed beat is no error, the next one comes; a link or a FIFO is never written
        with contextlib.suppress(OSError, ValueError):
            fd = open_regular(path, os.O_WRONLY | os.O_CREAT)
            with os.fdopen(fd, "w") as f:
                f.truncate()
                f.write(line)

    def beat() -> None:
        while not stop.wait(min(HEARTBEAT_SECONDS, timeout / 5)):
            write("alive")

    write("alive")
    thread = threading.Thread(target=beat, name=f"jaxinit-heartbeat-{process}", daemon=True)
    thread.start()
    try:
        yield
    except BaseException as e:
        stop.set()
        thread.join()
        write("failed", _one_line(e))
        raise
    stop.set()
    thread.join()
    write("done")


def snapshot(root: pathlib.Path, count: int) -> dict[int, tuple[str, float]]:
    """Every process's heartbeat line now, and now: what :func:`arrivals` counts changes from.
    Taken when a run starts, it makes a process that failed meanwhile known at once."""
    return {p: (_read(root, p), time.monotonic()) for p in range(count)}


def arrivals(
    root: pathlib.Path,
    pending: dict[str, int],
    ready: Callable[[str], bool],
    *,
    process: int,
    count: int,
    timeout: float,
    what: str,
    seen: dict[int, tuple[str, float]] | None = None,
) -> Iterator[str]:
    """Yields each name of ``pending`` (name -> owning process) as soon as ``ready(name)``.

    Raises ProcessLost when an owner of a pending name wrote ``done`` or
    ``failed`` without it, or showed no change of heartbeat for ``timeout``
    seconds since ``seen`` (a :func:`snapshot`; None: one taken now). ``what``
    names the items in messages (``"sweep chunks"``).
    """
    pending = dict(pending)
    seen = dict(snapshot(root, count) if seen is None else seen)
    while pending:
        got = [name for name in pending if ready(name)]
        for name in got:
            del pending[name]
            yield name
        if got or not pending:
            continue
        now = time.monotonic()
        for p in sorted(set(pending.values())):
            text = _read(root, p)
            waited = sorted(n for n, o in pending.items() if o == p)
            if text and text != seen[p][0]:
                seen[p] = (text, now)
                if text.startswith(("done", "failed")) and not all(ready(n) for n in waited):
                    raise ProcessLost(_lost(root, p, process, count, waited, what, text))
            elif now - seen[p][1] > timeout:
                raise ProcessLost(_lost(root, p, process, count, waited, what, text, timeout))
        time.sleep(POLL_SECONDS)


def _read(root: pathlib.Path, process: int) -> str:
    try:  # a line; never through a link, never a FIFO (it would block)
        return read_regular(_path(root, process), limit=HEARTBEAT_LIMIT).decode().strip()
    except (OSError, ValueError):
        return ""


def _lost(
    root,
    p: int,
    me: int,
    count: int,
    waited: list[str],
    what: str,
    text: str,
    timeout: float | None = None,
) -> str:
    names = ", ".join(waited[:3]) + (f", … ({len(waited)} in all)" if len(waited) > 3 else "")
    if timeout is None:
        why = f"stopped without writing them (its heartbeat file says: {text})"
    else:
        last = f"its last word: {text!r}" if text else "it has written none"
        why = (
            f"showed no sign of life for {timeout:g} s (heartbeat file {_path(root, p)}; "
            f"{last}): it has died, hangs, or never started"
        )
    return (
        f"process {me} of {count} waited for process {p}'s {what} ({names}) in {root}, and "
        f"process {p} {why}. Restart every process with the same command: finished work is "
        "kept (process_timeout=, or --process-timeout, sets how long to wait)"
    )
