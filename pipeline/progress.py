"""Progress of long stages: lines in a log the caller gives (a flow passes its Prefect run logger; the
default is the ``pipeline`` logger) and, when the CLI has installed them, rich progress bars.

Stages call ``track(stage, total, unit, log)`` and ``advance()`` on what it returns; nothing else to know.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

_bars = None  # a rich.progress.Progress while the CLI shows bars


class Tracker:
    def __init__(self, stage: str, total: int, unit: str, log=None, log_every: float = 0.1):
        self.stage, self.total, self.unit, self.done = stage, total, unit, 0
        self._log = log or logging.getLogger("pipeline")
        self._step = max(1, int(total * log_every))
        self._next = self._step
        self._task = _bars.add_task(stage, total=total) if _bars is not None else None

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if self._task is not None:
            _bars.update(self._task, advance=n)
        if self.done >= self._next or self.done == self.total:
            self._log.info(
                "%s: %d/%d %s%s", self.stage, self.done, self.total, self.unit, note and f" ({note})"
            )
            while self._next <= self.done:
                self._next += self._step


def track(stage: str, total: int, unit: str, log=None) -> Tracker:
    """A progress tracker; ``log`` is any logging.Logger-like object (info(msg, *args))."""
    return Tracker(stage, total, unit, log)


@contextmanager
def bars(console=None):
    """Show rich progress bars for every ``track`` made inside this block."""
    global _bars
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        _bars = progress
        try:
            yield progress
        finally:
            _bars = None
