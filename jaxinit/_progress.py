"""One progress mechanism for sweeps and training runs: a bar, and one hook with one record.

``sweep(grid, on_update=fn)`` and ``train(grid, data, on_update=fn)`` call ``fn`` with an
:class:`Update` after each chunk (a sweep) or logging step (a training run), once that
chunk's or step's checkpoint is written: a hook that raises stops the run with its error,
and the same call resumes from the checkpoint. ``progress=`` (True, False, or None: only
when someone watches) draws the same bar in both. :func:`jsonl_writer` is a hook for
either that appends every record as a JSON line.
"""

from __future__ import annotations

import html
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from jaxinit._io import jsonable

__all__ = ["KINDS", "ProgressBar", "Records", "Reporter", "Update", "interactive", "jsonl_writer"]

KINDS = ("sweep", "train")  # the runs that report, as Update.kind names them


class Records(Sequence):
    """An update's records, made on first use: a hook that reads only ``done`` and
    ``total`` costs the run nothing (a sweep's records are one dict per combination and
    layer of its chunk). A sequence of dicts, equal to a list of the same dicts."""

    __slots__ = ("_make", "_rows")
    __hash__ = None  # type: ignore[assignment]  # equal to lists, as mutable as they are

    def __init__(self, make: Callable[[], list[dict[str, Any]]]):
        self._make, self._rows = make, None

    def _list(self) -> list[dict[str, Any]]:
        if self._rows is None:
            self._rows, self._make = list(self._make()), None
        return self._rows

    def __len__(self) -> int:
        return len(self._list())

    def __getitem__(self, index):
        return self._list()[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._list())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Records | list | tuple):
            return self._list() == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Records({self._list()!r})"


class Update(NamedTuple):
    """What ``on_update`` receives, the same for :func:`jaxinit.sweep` and :func:`jaxinit.train`.

    Fields:
      kind: ``"sweep"`` or ``"train"``.
      done: a sweep's chunks done (computed, or read back from a checkpoint) or a training
        run's steps done (0: the models as initialized, before any step).
      total: the chunks of the sweep, or the training run's ``grid.steps``.
      records: flat dicts, each with its labels by dim name and its values. A sweep's: one
        per (combination, layer) of the chunk, as :meth:`jaxinit.Result.to_records` gives
        them. A training run's: one per model, its labels (``grid.dims``), ``step``,
        ``loss`` (the mean training loss of the steps since the previous update; NaN at
        step 0), ``test_loss`` and ``test_accuracy`` where evaluated at this step, and the
        per-layer statistics (lists, layer 1 first) where recorded at this step. Made on
        first use (:class:`Records`).
    """

    kind: str
    done: int
    total: int
    records: Sequence[dict[str, Any]]


def interactive() -> bool:
    """Whether someone watches: stderr is a terminal, or this is a Jupyter kernel."""
    return sys.stderr.isatty() or _kernel()


def _kernel() -> bool:
    """Whether this process is a Jupyter kernel: ipykernel loaded, and IPython's shell has a
    kernel attached (a kernel imports both before any user code runs)."""
    ipython = sys.modules.get("IPython")
    if "ipykernel" not in sys.modules or ipython is None:
        return False
    return getattr(ipython.get_ipython(), "kernel", None) is not None


class ProgressBar:
    """``with ProgressBar("sweep", total, enabled) as bar: bar.update(done)``.

    ``enabled=None`` shows the bar only when :func:`interactive`; a disabled bar does
    nothing. In a Jupyter kernel the bar is one HTML output (:class:`_NotebookBar`, no
    ipywidgets needed) that ends as a line saying what finished and in how long, so a saved
    notebook shows the finished run, not a bar stuck at its last frame. On a terminal rich
    (which comes with flax) draws it on stderr, transient: it leaves nothing in a log.
    """

    def __init__(self, what: str, total: int, enabled: bool | None = None):
        self._what, self._total = what, total
        self._enabled = interactive() if enabled is None else bool(enabled)
        self._bar = self._task = None

    def __enter__(self) -> ProgressBar:
        if self._enabled and _kernel():
            self._bar = _NotebookBar(self._what, self._total)
        elif self._enabled:
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(self._what, total=self._total)
            self._bar.start()
        return self

    def update(self, completed: float, note: str | None = None) -> None:
        """Sets how many of ``total`` are done: a fraction moves the bar within a unit (a
        sweep's chunk: per compiled program of it). ``note`` (say ``"compiling"``) is shown
        beside the name until the next update."""
        if self._bar is not None:
            what = self._what if not note else f"{self._what} · {note}"
            self._bar.update(self._task, completed=completed, description=what)

    def __exit__(self, *exc) -> None:
        if isinstance(self._bar, _NotebookBar):
            self._bar.stop(failed=exc[0] is not None)
        elif self._bar is not None:
            self._bar.stop()


class _NotebookBar:
    """A progress bar as one updatable HTML display in a notebook cell: an HTML
    ``<progress>`` element and ``done/total`` while it runs (redrawn at most every
    ``INTERVAL`` seconds), then one line, ``sweep: 8/8 in 3.2 s`` (or ``stopped at 5/8``)."""

    INTERVAL = 0.2

    def __init__(self, what: str, total: int):
        from IPython.display import display

        self._what, self._total, self._done = what, total, 0
        self._description = what
        self._start = self._last = time.perf_counter()
        self._handle = display(self._html(), display_id=True)

    def _html(self, final: str | None = None):
        from IPython.display import HTML

        done, total = self._done, self._total
        if final is not None:
            return HTML(f"<pre>{html.escape(self._what)}: {final}</pre>")
        # a fraction (within a chunk) as a percentage; whole units as done/total
        count = f"{done}/{total}" if float(done).is_integer() else f"{100 * done / total:.0f}%"
        return HTML(
            f'<pre><progress value="{done:g}" max="{max(total, 1)}" style="width:20em"></progress>'
            f" {html.escape(self._description)} {count}</pre>"
        )

    def update(self, task: Any = None, *, completed: float, description: str | None = None) -> None:
        self._done = int(completed) if float(completed).is_integer() else completed
        changed = description is not None and description != self._description
        self._description = self._description if description is None else description
        now = time.perf_counter()
        if changed or now - self._last >= self.INTERVAL:
            self._last = now
            self._handle.update(self._html())

    def stop(self, *, failed: bool = False) -> None:
        seconds = time.perf_counter() - self._start
        done = self._done if isinstance(self._done, int) else f"{self._done:.2f}"
        line = (
            f"stopped at {done}/{self._total} after {seconds:.1f} s"
            if failed
            else f"{self._done}/{self._total} in {seconds:.1f} s"
        )
        self._handle.update(self._html(line))


class Reporter:
    """A run's bar and hook: ``with Reporter("sweep", total, progress, on_update) as report:
    report(done, make_records)`` moves the bar to ``done`` and calls ``on_update`` with an
    :class:`Update` whose records ``make_records()`` makes when first read."""

    def __init__(
        self,
        kind: str,
        total: int,
        progress: bool | None,
        on_update: Callable[[Update], None] | None,
    ):
        self.kind, self.total, self.on_update = kind, total, on_update
        self._bar = ProgressBar(kind, total, progress)

    def __enter__(self) -> Reporter:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def show(self, done: float, note: str | None = None) -> None:
        """Moves the bar only, with no update for the hook: a resumed run's starting point,
        or a fraction of the way through a unit (a sweep's chunk), with an optional ``note``
        beside the name (``"compiling"``)."""
        self._bar.update(done, note)

    def __call__(self, done: int, make_records: Callable[[], list[dict[str, Any]]]) -> None:
        self._bar.update(done)
        if self.on_update is not None:
            self.on_update(Update(self.kind, done, self.total, Records(make_records)))


def check_hook(who: str, name: str, hook: Any, takes: str) -> None:
    """A TypeError naming ``who``'s argument ``name`` unless ``hook`` is None or callable."""
    if hook is not None and not callable(hook):
        raise TypeError(f"{who}: {name} must be a function {takes} or None; got {hook!r}")


def deprecated_hook(
    who: str, name: str, hook: Any, takes: str, adapt: Callable[[Any], Callable[[Update], None]]
) -> Callable[[Update], None] | None:
    """``hook``, a deprecated argument ``name`` of ``who`` that takes ``takes``, as an
    ``on_update`` hook (``adapt(hook)``), with a DeprecationWarning at the caller of ``who``;
    None for None. A hook that is not callable is a TypeError, before any warning."""
    if hook is None:
        return None
    check_hook(who, name, hook, takes)
    warnings.warn(
        f"{who}({name}=...) is deprecated and will be removed in the next release; use "
        f"{who}(on_update=fn): fn(update) gets a jaxinit.Update (kind, done, total, records)",
        DeprecationWarning,
        stacklevel=4,  # deprecated_hook <- the entry point's hook adapter <- the entry point
    )
    return adapt(hook)


def chain(*hooks: Callable[[Update], None] | None) -> Callable[[Update], None] | None:
    """One hook calling each of ``hooks`` (None skipped) in order; None for none."""
    given = [h for h in hooks if h is not None]
    if len(given) <= 1:
        return given[0] if given else None

    def each(update: Update) -> None:
        for hook in given:
            hook(update)

    return each


def jsonl_writer(
    path: str | os.PathLike, dims: Sequence[str] | None = None
) -> Callable[[Update], None]:
    """An ``on_update`` hook, for a sweep or a training run, that appends each record of every
    :class:`Update` to ``path`` as one line of strict JSON (NaN and infinities as null), and
    flushes and fsyncs it, so a killed run keeps every line written before it::

        {"init": "he_normal", "seed": 0, "step": 200, "loss": 0.41, "test_accuracy": 0.9, ...}

    Args:
      path: the file, appended to (its directory is made).
      dims: deprecated: records name their labels. Given (``grid.dims``), the writer also
        takes the deprecated ``train(callback=...)`` call ``(step, metrics)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if dims is not None:
        warnings.warn(
            "jsonl_writer(path, dims) is deprecated and will be removed in the next release; "
            "records name their labels: use on_update=jsonl_writer(path)",
            DeprecationWarning,
            stacklevel=2,
        )
        dims = tuple(dims)

    def write(update: Update | int, metrics: dict | None = None) -> None:
        if metrics is None:
            rows = update.records
        elif dims is None:
            raise TypeError(
                "jsonl_writer(path) is an on_update hook and takes an Update; the deprecated "
                "(step, metrics) call needs jsonl_writer(path, dims)"
            )
        else:
            rows = [
                {**dict(zip(dims, labels, strict=True)), "step": int(update), **values}
                for labels, values in metrics.items()
            ]
        text = "".join(json.dumps(jsonable(r, strict=True), allow_nan=False) + "\n" for r in rows)
        with open(path, "a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return write
