"""One progress bar for sweeps and training runs: a terminal or a Jupyter notebook, or none."""

from __future__ import annotations

import sys

__all__ = ["ProgressBar", "interactive"]


def interactive() -> bool:
    """Whether someone watches: stderr is a terminal, or this is a Jupyter kernel."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


class ProgressBar:
    """``with ProgressBar("sweep", total, enabled) as bar: bar.update(done)``.

    ``enabled=None`` shows the bar only when :func:`interactive`; a disabled bar
    does nothing. rich (which comes with flax) draws it on stderr, or in the
    notebook's output; it is transient, so it leaves nothing in a log.
    """

    def __init__(self, what: str, total: int, enabled: bool | None = None):
        self._what, self._total = what, total
        self._enabled = interactive() if enabled is None else bool(enabled)
        self._bar = self._task = None

    def __enter__(self) -> ProgressBar:
        if self._enabled:
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(self._what, total=self._total)
            self._bar.start()
        return self

    def update(self, completed: int) -> None:
        """Sets how many of ``total`` are done."""
        if self._bar is not None:
            self._bar.update(self._task, completed=completed)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
