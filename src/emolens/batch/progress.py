"""The one progress bar of a batch: inputs done of all, analysed frames per second, time left, errors."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


class BatchProgress:
    """Work is counted in analysed frames (a photo counts as one; a video's frames are added
    once it is planned), so the time left weighs long videos as they weigh."""

    def __init__(self, console: Console | None = None, enabled: bool = True):
        self.inputs = self.done = self.errors = self.frames = 0
        self.started = time.perf_counter()
        self._bar = Progress(TextColumn("[bold]batch[/]"), BarColumn(), TextColumn("{task.fields[counts]}"),
                             TimeRemainingColumn(), console=console or Console(stderr=True), transient=True,
                             disable=not enabled)
        self._task = self._bar.add_task("batch", total=None, counts="")

    def __enter__(self) -> "BatchProgress":
        self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    @property
    def frames_per_second(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.frames / elapsed if elapsed > 0 else 0.0

    def _refresh(self, advance: float = 0.0) -> None:
        counts = (f"{self.done}/{self.inputs} inputs  {self.frames_per_second:.1f} frames/s  "
                  f"{self.errors} error{'s' if self.errors != 1 else ''}")
        self._bar.update(self._task, advance=advance, counts=counts)

    def add_work(self, inputs: int = 0, frames: float = 0.0) -> None:
        """More inputs, or more frames to analyse (a video once its length is known)."""
        task = self._bar.tasks[0]
        self.inputs += inputs
        self._bar.update(self._task, total=(task.total or 0) + frames)
        self._refresh()

    def advance(self, frames: int = 0, done: int = 0, errors: int = 0, work: float | None = None) -> None:
        """``frames`` analysed (``work``: what they count against the total, default the same), ``done``
        inputs finished, of which ``errors`` failed."""
        self.frames += frames
        self.done += done
        self.errors += errors
        self._refresh(advance=frames if work is None else work)

    def print(self, text: str) -> None:
        self._bar.console.print(text, highlight=False, soft_wrap=True)
