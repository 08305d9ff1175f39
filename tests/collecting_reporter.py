"""A run reporter that keeps what a run said, for tests of the run functions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class CountingTask:
    def __init__(self) -> None:
        self.completed, self.total = 0, None

    def advance(self, steps: int = 1) -> None:
        self.completed += steps

    def update(self, completed: int, total: int | None = None) -> None:
        self.completed, self.total = completed, total


class CollectingReporter:
    """Notes, warnings and each task (label, declared total, the task's counter)."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.tasks: list[tuple[str, int | None, CountingTask]] = []

    def note(self, text: str) -> None:
        self.notes.append(text)

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    @contextlib.contextmanager
    def task(self, label: str, total: int | None = None,
             completed: int = 0) -> Iterator[CountingTask]:
        counter = CountingTask()
        counter.completed = completed
        self.tasks.append((label, total, counter))
        yield counter
