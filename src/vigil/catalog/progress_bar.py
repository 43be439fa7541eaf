"""Layer-by-layer progress of a catalog run (an OCI layout read or a registry pull) as rich bars.

The bars go to the console given (the CLIs pass stderr, so a document on stdout stays clean) and
vanish when the run ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

from vigil.catalog.model import LayerRecord


class LayerProgressBar:
    """A ``vigil.catalog.scan.Progress``: one bar a layer, then a line naming the cataloger at work."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[int, TaskID] = {}
        self.stage = progress.add_task("", total=None, visible=False)

    def layer_started(self, index: int, total: int | None, media_type: str, size: int | None) -> None:
        label = f"layer {index + 1}" + (f"/{total}" if total else "")
        self.tasks[index] = self.progress.add_task(label, total=size or None)

    def layer_advanced(self, index: int, read: int) -> None:
        self.progress.update(self.tasks[index], completed=read)

    def layer_finished(self, record: LayerRecord) -> None:
        self.progress.update(self.tasks[record.index], completed=record.size, total=record.size)

    def cataloging(self, cataloger: str) -> None:
        self.progress.update(self.stage, description=f"cataloging: {cataloger}", visible=True)


@contextmanager
def layer_progress_bar(console: Console) -> Iterator[LayerProgressBar]:
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        yield LayerProgressBar(bar)
