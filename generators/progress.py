"""A progress bar for generation: samples done, records/s and completion tokens/s."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text


class _RatesColumn(ProgressColumn):
    def render(self, task) -> Text:
        elapsed = max(time.monotonic() - task.fields["started"], 1e-9)
        return Text(f"{task.completed / elapsed:,.1f} rec/s  {task.fields['tokens'] / elapsed:,.0f} tok/s")


class GenerationProgress:
    """`with GenerationProgress(title, total) as bar: bar.advance(records, tokens)`. Silent when disabled."""

    def __init__(self, title: str, total: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tokens = 0
        self.records = 0
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RatesColumn(),
            TimeRemainingColumn(),
            disable=not enabled,
            transient=False,
        )
        self._task = self._progress.add_task(title, total=total, tokens=0, started=time.monotonic())

    def __enter__(self) -> GenerationProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def advance(self, records: int, tokens: int) -> None:
        self.records += records
        self.tokens += tokens
        self._progress.update(self._task, advance=records, tokens=self.tokens)
