"""How a command's run is recorded from its start to its end, a signal included.

case -> consultation graph -> **trace in SQL (the run's status)** -> ... -> evaluation

A run starts ``running``. :func:`recorded_run` records how it ended: the command's own
``complete``/``incomplete``/``failed`` where it reached its end, ``failed`` with the
reason where an error stopped it (a full disk, a backend gone), ``interrupted`` with how
to resume where SIGINT (Ctrl-C) or SIGTERM did. A run killed outright (SIGKILL, a power
cut) stays ``running``, which the report and ``eval compare`` show as not finished.
:func:`check_run_status` turns how a run ended into what its caller sees: a failed run is
an error, never a result; an incomplete one a warning. :func:`signals_as_interrupts`
makes SIGTERM stop a run the way Ctrl-C does (the command line wraps every command in
it); :func:`interruption_message` is the one line and exit status (130, 143) the user
sees.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from promed_agents.errors import ConsultationError

if TYPE_CHECKING:
    from promed_agents.runs.run_reporter import RunReporter
    from promed_agents.storage import TraceStore


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program was (as SIGINT raises KeyboardInterrupt)."""


class RunInterrupted(KeyboardInterrupt):
    """A signal stopped a recorded run; the message says how to resume it."""

    def __init__(self, message: str, signal_name: str) -> None:
        super().__init__(message)
        self.signal_name = signal_name


def signal_name(exc: BaseException) -> str:
    if isinstance(exc, RunInterrupted):
        return exc.signal_name
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"


def interruption_message(exc: KeyboardInterrupt) -> tuple[str, int]:
    """The line to print for ``exc`` and the exit status (128 + the signal's number)."""
    name = signal_name(exc)
    code = 128 + (signal.SIGTERM if name == "SIGTERM" else signal.SIGINT)
    text = str(exc) if isinstance(exc, RunInterrupted) else \
        f"stopped by {name}; nothing after that point was recorded"
    return text, int(code)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises :class:`Terminated`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def recorded_run(store: TraceStore, experiment_id: int, name: str,
                 how_to_resume: str) -> Iterator[None]:
    """Record the end of run ``experiment_id`` (``name``) however the block ends.

    The block records its own final status; where it ends normally without one, the run
    is ``complete``. An exception records ``failed`` with its reason and goes on; a
    signal records ``interrupted`` and becomes a :class:`RunInterrupted` whose message
    says ``how_to_resume`` (e.g. "run the same command again to resume it")."""
    try:
        yield
    except KeyboardInterrupt as exc:
        stopped = signal_name(exc)
        reason = f"stopped by {stopped}; {how_to_resume}"
        _record(store, experiment_id, "interrupted", reason)
        raise RunInterrupted(f"run {name} was stopped by {stopped}; {how_to_resume}",
                             stopped) from None
    except BaseException as exc:
        _record(store, experiment_id, "failed", f"{type(exc).__name__}: {exc}"[:2000])
        raise
    if store.experiment(name).status == "running":
        store.finish_experiment(experiment_id, "complete")


def _record(store: TraceStore, experiment_id: int, status: str, reason: str) -> None:
    """Best effort: the store itself may be what failed (a full disk)."""
    with contextlib.suppress(Exception):
        store.finish_experiment(experiment_id, status, reason)


def check_run_status(run: str, status: str, reason: str | None,
                     reporter: RunReporter) -> None:
    """How a run ended, said where the user looks: an incomplete run is a warning; a run
    whose every consultation failed is an error, never a result."""
    if status == "failed":
        raise ConsultationError(f"run {run} failed: {reason}; fix the cause and run the "
                                "same command again (it replaces the failed run)")
    if status == "incomplete":
        reporter.warn(f"run {run} is incomplete: {reason}; its figures leave these "
                      "consultations out")
