"""Shared pieces of the ``promed`` command line: consoles, ``--db``, error reporting.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

Used by :mod:`promed_agents.cli` and the command modules that define their own sub-apps
(:mod:`promed_agents.cli.shapley`). What the runs themselves share (their common knobs,
case selection, the SIG evaluator) is in :mod:`promed_agents.runs`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from promed_agents.display_text import without_controls
from promed_agents.errors import ConsultationError, OutputError, PromedError
from promed_agents.redaction import without_password
from promed_agents.runs.run_knobs import DEFAULT_DOCTOR

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

def _silence(stream: Any) -> None:
    """Point a stream that cannot be written (a full device, a closed pipe) at the null
    device, so that Python's flush at exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no descriptor (a test's capture)
        pass


class _PasswordMasking:
    """A text stream that masks every URL's password in what is written to it."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(without_password(text))
        except OSError as exc:  # a full device, a closed pipe
            _silence(self._stream)
            where = "standard error" if self._stream is sys.__stderr__ else "standard output"
            raise OutputError(f"cannot write to {where}: {exc.strerror or exc}; send it "
                              "to a file with room, or a reader that keeps reading") from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            _silence(self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class MaskingConsole(Console):
    """A rich console that never prints a password: whatever is printed (a message, a
    table, a log line, a progress bar naming a model spec) passes through
    :func:`~promed_agents.redaction.without_password` on its way out."""

    @property
    def file(self) -> Any:
        return _PasswordMasking(Console.file.fget(self))  # type: ignore[attr-defined]

    @file.setter
    def file(self, new_file: Any) -> None:
        Console.file.fset(self, new_file)  # type: ignore[attr-defined]


console = MaskingConsole(soft_wrap=True, emoji=False)
err_console = MaskingConsole(stderr=True, soft_wrap=True, emoji=False)

DbOption = Annotated[str | None, typer.Option(
    "--db", envvar="PROMED_DB", show_envvar=True,
    help="Database URL or SQLite path [default: sqlite:///promed.db].")]

DEMO_DB = "sqlite:///promed-demo.db"
__all__ = ["DEFAULT_DOCTOR", "DEMO_DB", "DbOption", "MaskingConsole", "RenamedFloat",
           "check_numbers", "console", "err_console", "open_store", "renamed",
           "reports_errors", "shown"]


# A flag's old name, kept hidden for one release (CHANGELOG.md lists them).
RenamedFloat = Annotated[float | None, typer.Option(hidden=True)]


def renamed(old_flag: str, old_value: Any, new_flag: str, new_value: Any) -> Any:
    """``new_value``, or ``old_value`` (with a warning) where the old flag was given."""
    if old_value is None:
        return new_value
    err_console.print(f"warning: {old_flag} is now {new_flag}; the old name goes in the "
                      "next release", highlight=False)
    return old_value


def shown(text: object, *, one_line: bool = False) -> str:
    """Stored or user text as the terminal should show it: rich markup escaped, control
    characters (terminal escape sequences among them) written out as ``\\xNN``; with
    ``one_line`` (a name, an id, a title) line breaks too."""
    return escape(without_controls(text, one_line=one_line))


F = TypeVar("F", bound=Callable[..., Any])
INT_MAX = 2**63 - 1
"""The largest integer a command takes (what SQLite and PostgreSQL's BIGINT hold)."""


def check_numbers(arguments: dict[str, Any]) -> None:
    """Refuse numbers no command can use: infinite or NaN floats, integers beyond 64 bits
    (the option parser lets both through)."""
    for name, value in arguments.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            raise PromedError(f"{flag} {value}: give a finite number")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_MAX:
            raise PromedError(f"{flag} {value}: the largest number it takes is {INT_MAX}")


@contextlib.contextmanager
def _ignoring_abandoned_coroutines() -> Iterator[None]:
    """A run stopped by an error or a signal abandons its event loop's queued
    consultations, and Python warns about each; the one line about why says it all."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="coroutine .* was never awaited",
                                category=RuntimeWarning)
        yield


def reports_errors(func: F) -> F:
    """Turn ProMed errors into one red line on stderr and exit status 1, and a signal
    (SIGINT, SIGTERM) into one line saying what was stopped and how to resume it, with
    exit status 130 or 143."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from promed_agents.runs.run_lifecycle import interruption_message, signals_as_interrupts

        try:
            with signals_as_interrupts(), _ignoring_abandoned_coroutines():
                check_numbers(kwargs)
                return func(*args, **kwargs)
        except PromedError as exc:
            err_console.print(f"[bold red]error:[/] {shown(exc, one_line=True)}",
                              highlight=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM (signals_as_interrupts)
            message, code = interruption_message(exc)
            with _ignoring_abandoned_coroutines():
                gc.collect()  # abandoned coroutines warn when collected
            err_console.print(f"[bold red]error:[/] {shown(message, one_line=True)}",
                              highlight=False)
            raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]


def open_store(db: str | None, *, create: bool = True) -> TraceStore:
    """The store at ``db``; commands that only read pass ``create=False``, so a mistyped
    SQLite path is an error rather than a new empty database."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from promed_agents.storage import TraceStore
    from promed_agents.storage.database import resolve_url

    try:
        url = make_url(resolve_url(db))
    except (ArgumentError, ValueError):
        url = None  # the store says what is wrong with it
    if url is not None and url.get_backend_name() == "sqlite" and \
            url.database in (None, "", ":memory:") and not url.query.get("uri"):
        raise ConsultationError(f"--db {without_password(db)}: an in-memory database keeps "
                                "nothing after the command ends; give a file, e.g. --db "
                                "sqlite:///promed.db")
    return TraceStore(db, create=create)
