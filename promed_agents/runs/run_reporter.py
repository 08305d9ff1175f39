"""What a recorded run tells its caller while it works: notes, warnings and progress.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation
(what every stage's run says on the way)

A run function (:mod:`promed_agents.runs`) prints nothing itself. It says what it is
doing to a :class:`RunReporter`: a note ("resuming search X"), a warning ("run X is
incomplete"), and the progress of a counted task (cases, iterations, training steps).
The command line passes one that prints and draws a progress bar; the default,
:class:`LoggingReporter`, sends notes and warnings to the ``promed_agents`` logger and
draws nothing, so that a script or a notebook sees them only where it configured logging.

A reporter of your own is any object with these three methods::

    class Collected:
        def __init__(self): self.lines = []
        def note(self, text): self.lines.append(text)
        def warn(self, text): self.lines.append("warning: " + text)
        def task(self, label, total=None, completed=0): return contextlib.nullcontext(SILENT)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

__all__ = ["LoggingReporter", "RunReporter", "SILENT", "TaskProgress", "reporter_or_default",
           "training_callback"]

logger = logging.getLogger("promed_agents")


@runtime_checkable
class TaskProgress(Protocol):
    """The progress of one counted task."""

    def advance(self, steps: int = 1) -> None:
        """``steps`` more units of the task are done."""

    def update(self, completed: int, total: int | None = None) -> None:
        """``completed`` units are done (of ``total``, where it is known only now)."""


@runtime_checkable
class RunReporter(Protocol):
    """Where a run's notes, warnings and progress go (plain text: no markup)."""

    def note(self, text: str) -> None:
        """What the run is doing or did (a resumed run, how many cases have weights)."""

    def warn(self, text: str) -> None:
        """Something the user should look at; the run goes on."""

    def task(self, label: str, total: int | None = None,
             completed: int = 0) -> AbstractContextManager[TaskProgress]:
        """A counted task, for as long as the block runs."""


class _Silent:
    def advance(self, steps: int = 1) -> None:
        pass

    def update(self, completed: int, total: int | None = None) -> None:
        pass


SILENT: TaskProgress = _Silent()
"""A task whose progress goes nowhere."""


class LoggingReporter:
    """Notes as ``INFO`` and warnings as ``WARNING`` records of the ``promed_agents``
    logger; no progress."""

    def note(self, text: str) -> None:
        logger.info("%s", text)

    def warn(self, text: str) -> None:
        logger.warning("%s", text)

    @contextlib.contextmanager
    def task(self, label: str, total: int | None = None,
             completed: int = 0) -> Iterator[TaskProgress]:
        yield SILENT


def reporter_or_default(reporter: RunReporter | None) -> RunReporter:
    return LoggingReporter() if reporter is None else reporter


def training_callback(progress: TaskProgress) -> Any:
    """A transformers ``TrainerCallback`` that reports each optimizer step to
    ``progress`` (transformers is imported only when training)."""
    from transformers import TrainerCallback

    class StepProgress(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            progress.update(state.global_step, state.max_steps)

    return StepProgress()
