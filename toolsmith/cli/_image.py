"""The sandbox image build as people see it: a one-time note, then each step with a spinner and
its elapsed time, then how long the whole build took.

The image is built only when the engine lacks the one the current ``sandbox_images/`` describe,
so this display appears on a machine's first build (and after the image inputs change), never
on later ones. On a terminal the steps are live; elsewhere (CI logs, pipes) rich prints the
finished steps once, after the note.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.status import Status
from rich.text import Text

NOTE = (
    "First use of this sandbox image: building it now, offline (about a minute). It is built "
    "once, reused until sandbox_images/ changes, and not counted in any attempt's time."
)


class ImageBuildDisplay:
    """Shows image build steps on ``console``; ``status``, a live spinner already on screen, is
    paused while the steps show (rich allows one live display at a time)."""

    def __init__(self, console: Console, status: Status | None = None) -> None:
        self._console = console
        self._status = status
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._started = 0.0

    def step(self, text: str) -> None:
        """A new step began: the previous one is done."""
        if self._progress is None:
            if self._status is not None:
                self._status.stop()
            self._console.print(Text(NOTE, style="yellow"), soft_wrap=True)
            self._started = time.monotonic()
            self._progress = Progress(
                SpinnerColumn(finished_text="[green]✓[/green]"),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self._console,
            )
            self._progress.start()
        self._finish_step()
        self._task = self._progress.add_task(escape(text), total=1)

    def done(self, tag: str) -> None:
        """The image ``tag`` is built: close the steps and say how long it took."""
        if self._progress is None:
            return
        self._finish_step()
        self._progress.stop()
        self._progress = None
        self._console.print(
            f"sandbox image {tag} ready in {time.monotonic() - self._started:.0f} s",
            highlight=False,
        )
        if self._status is not None:
            self._status.start()

    def _finish_step(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=1)
            self._task = None
