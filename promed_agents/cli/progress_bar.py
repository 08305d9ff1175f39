"""The progress bar and the notes of long CLI work (imports, exports, consultations,
training).

:func:`progress_bar` is shown on a terminal only; silent when output is piped or captured
(CI, tests). :class:`ConsoleReporter` is the command line's
:class:`~promed_agents.runs.run_reporter.RunReporter`: a run's notes on standard output,
its warnings on standard error, its tasks as progress bars.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from promed_agents.display_text import without_controls
from promed_agents.runs.run_reporter import TaskProgress


def progress_bar(console: Console) -> Progress:
    """A transient bar; its label is plain text (a model spec such as
    ``fake:question: ...`` must not turn into markup or an emoji)."""
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True,
                    disable=not console.is_terminal)


class _BarTask:
    def __init__(self, progress: Progress, task: Any) -> None:
        self._progress, self._task = progress, task

    def advance(self, steps: int = 1) -> None:
        self._progress.advance(self._task, steps)

    def update(self, completed: int, total: int | None = None) -> None:
        self._progress.update(self._task, completed=completed, total=total)


class ConsoleReporter:
    """A run's notes on ``console``, its warnings (``warning: ...``) and progress bars on
    ``progress_console``; stored and user text is shown as text, never as markup or
    terminal escapes."""

    def __init__(self, console: Console, progress_console: Console) -> None:
        self.console, self.progress_console = console, progress_console

    def note(self, text: str) -> None:
        self.console.print(without_controls(text), markup=False, highlight=False)

    def warn(self, text: str) -> None:
        self.progress_console.print("[yellow]warning:[/] ", end="", highlight=False)
        self.progress_console.print(without_controls(text), markup=False, highlight=False)

    @contextlib.contextmanager
    def task(self, label: str, total: int | None = None,
             completed: int = 0) -> Iterator[TaskProgress]:
        with progress_bar(self.progress_console) as progress:
            yield _BarTask(progress, progress.add_task(label, total=total, completed=completed))
