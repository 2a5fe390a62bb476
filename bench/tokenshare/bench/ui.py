"""Progress of a benchmark run with rich: one bar over every run of every measure."""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class Ui:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None

    def start(self, steps: int) -> None:
        self.progress.start()
        self._task = self.progress.add_task("starting", total=steps)

    def step(self, description: str) -> None:
        """What is running now (shown next to the bar)."""
        if self._task is None:
            self.console.log(description)
            return
        self.progress.update(self._task, description=description)

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self.progress.advance(self._task, steps)

    def show(self, renderable: RenderableType) -> None:
        self.progress.console.print(renderable)

    def stop(self) -> None:
        self.progress.stop()
        self._task = None
