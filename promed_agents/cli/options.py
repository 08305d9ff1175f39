"""Shared pieces of the ``promed`` command line: consoles, ``--db``, error reporting.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

Used by :mod:`promed_agents.cli` and the command modules that define their own sub-apps
(:mod:`promed_agents.cli.shapley`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from promed_agents.agents.doctor import DOCTOR_TURN_TOKENS
from promed_agents.agents.evaluator import Evaluator
from promed_agents.case import Case
from promed_agents.cli.config_options import knob
from promed_agents.display_text import without_controls
from promed_agents.errors import ConsultationError, OutputError, PromedError
from promed_agents.graphs.checkpointer import POSTGRES_PREFIXES
from promed_agents.graphs.consultation import DEFAULT_MAX_QUESTIONS
from promed_agents.loader import SAMPLE_SPLIT, bundled_sample
from promed_agents.redaction import without_password

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
DEFAULT_DOCTOR = "local:smollm2"
"""The doctor every command runs unless told: the embedded SmolLM2-135M-Instruct."""
DEFAULT_PATIENT = "fact-select"

# Which stored cases a command works on (see select_cases).
CasesOption = Annotated[int | None, typer.Option(min=1, help="The first N stored cases.")]
CaseIdsOption = Annotated[str | None, typer.Option(help="Comma-separated case ids.")]
SplitOption = Annotated[str | None, typer.Option(help="Only cases of this split.")]
# What every consultation command takes (each command's config holds the default).
PatientOption = Annotated[str, typer.Option(help="fact-select or llm:MODEL_SPEC.")]
MaxQuestionsOption = Annotated[int, typer.Option(min=0, help="Question budget.")]
MaxNewTokensOption = Annotated[int, typer.Option(min=1, help="Tokens per doctor turn.")]
DemonstrationOption = Annotated[bool, typer.Option(
    help="Show the doctor a worked example consultation first (small models need it to "
         "follow the turn format).")]




# The same knobs as config fields (see config_options); each returns a fresh field.
def cases_knob() -> Any:
    return knob(None, help="The first N stored cases.", min=1)


def case_ids_knob() -> Any:
    return knob((), help="Comma-separated case ids.", parse=case_id_list)


def split_knob() -> Any:
    return knob(None, help="Only cases of this split.")


def doctor_knob(help: str = "Doctor model spec.") -> Any:  # noqa: A002
    return knob(DEFAULT_DOCTOR, help=help)


def patient_knob() -> Any:
    return knob(DEFAULT_PATIENT, help="fact-select or llm:MODEL_SPEC.")


def max_questions_knob() -> Any:
    return knob(DEFAULT_MAX_QUESTIONS, help="Question budget.", min=0)


def max_new_tokens_knob() -> Any:
    return knob(DOCTOR_TURN_TOKENS, help="Tokens per doctor turn.", min=1)


def demonstration_knob() -> Any:
    return knob(False, help="Show the doctor a worked example consultation first (small "
                            "models need it to follow the turn format).")


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


def case_id_list(text: str | None, flag: str = "--case-ids") -> list[str]:
    """``--case-ids a, b`` (or another comma-separated ``flag``) as a list; given, it must
    name at least one."""
    if text is None:
        return []
    ids = [c.strip() for c in text.split(",") if c.strip()]
    twice = sorted({c for c in ids if ids.count(c) > 1})
    if twice:
        raise ConsultationError(f"{flag} names {', '.join(map(repr, twice))} more than once; "
                                "name each once")
    if not ids:
        example = "imedqa-0,imedqa-1 (see `promed cases list`)" if flag == "--case-ids" \
            else "NAME1,NAME2"
        raise ConsultationError(f"{flag} {text!r} names nothing; give comma-separated "
                                f"names, e.g. {flag} {example}")
    return ids


def budget_range(text: str | None) -> tuple[int, int] | None:
    """``--dynamic-budget LOW-HIGH`` (doctor turns, both included) as a pair."""
    if text is None:
        return None
    parts = text.replace(" ", "").split("-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or \
            not 1 <= int(parts[0]) <= int(parts[1]) <= 100:
        raise PromedError(f"--dynamic-budget {text!r}: give the fewest and most doctor "
                          "turns as LOW-HIGH with 1 <= LOW <= HIGH <= 100, e.g. 2-10")
    return int(parts[0]), int(parts[1])


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
        from promed_agents.cli.run_lifecycle import interruption_message, signals_as_interrupts

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


def report_status(run: str, status: str, reason: str | None) -> None:
    """How a run ended, said where the user looks: an incomplete run warns on stderr; a
    run whose every consultation failed is an error (exit status 1), never a result."""
    if status == "failed":
        raise ConsultationError(f"run {run} failed: {reason}; fix the cause and run the "
                                "same command again (it replaces the failed run)")
    if status == "incomplete":
        err_console.print(f"[yellow]warning:[/] run {shown(run)} is incomplete: "
                          f"{shown(reason)}; its figures leave these consultations out",
                          highlight=False)


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


def select_cases(store: TraceStore, console: Console, count: int | None = None,
                 case_ids: Sequence[str] = (), split: str | None = None) -> list[Case]:
    """The cases a command names: by id, else the first ``count`` stored (of ``split``).
    An empty store first gets the bundled sample."""
    if case_ids and (count is not None or split is not None):
        given = "--cases" if count is not None else "--split"
        raise ConsultationError(f"--case-ids and {given} both choose cases; give one of "
                                "them (--case-ids picks cases by id, --cases the first N "
                                "stored, --split those of one split)")
    if case_ids:
        return [store.get_case(case_id) for case_id in case_ids]
    if store.count_cases() == 0:
        sample = bundled_sample()
        if count is not None and count > len(sample):  # refused before the import
            raise ConsultationError(f"--cases {count}: the store is empty and the bundled "
                                    f"sample holds {len(sample)} cases; give --cases "
                                    f"{len(sample)} or fewer, or import more first "
                                    "(`promed cases import FILE`)")
        report = store.import_cases(sample)
        console.print(f"the store was empty: imported the bundled sample ({report.added} "
                      f"iMedQA {SAMPLE_SPLIT} cases, CC BY 4.0)")
    cases = store.list_cases(split=split, limit=count)
    if not cases:
        raise ConsultationError(f"no stored cases match (split {split!r}); see "
                                "`promed cases list`")
    if count is not None and len(cases) < count:
        of = f" of split {split!r}" if split else ""
        raise ConsultationError(f"--cases {count}: the store holds {len(cases)} case(s){of}; "
                                f"give --cases {len(cases)} or fewer, or import more "
                                "(`promed cases import FILE`)")
    return cases


def refuse_store_file(store: TraceStore, where: str | None) -> None:
    """LangGraph's SQLite checkpoints may not share the SQLite store's file: the store
    would wait for the saver's write lock inside the event loop that must release it."""
    url = store.engine.url
    if not where or url.get_backend_name() != "sqlite" or not url.database or \
            where.startswith(POSTGRES_PREFIXES):
        return
    if Path(where).expanduser().resolve() == Path(url.database).expanduser().resolve():
        raise ConsultationError(f"--checkpoints {where} is the store's own SQLite file; "
                                "give LangGraph's checkpoints a file of their own (or keep "
                                "both in PostgreSQL)")


def check_sig_scorer(store: TraceStore, scorer: str | None) -> None:
    """Refuse a ``--sig-scorer`` with no Shapley values stored at all (commands call this
    before they write anything)."""
    if scorer is None:
        return
    stored = store.shapley_scorers()
    if without_password(scorer) not in stored:
        raise ConsultationError(
            f"--sig-scorer {scorer}: no Shapley values are stored for this scorer "
            f"(stored: {', '.join(stored) if stored else 'none'}); compute them with "
            f"`promed shapley --scorer {scorer}`, or leave out --sig-scorer")


def evaluator_for(store: TraceStore, scorer: str | None, default: str, cases: Sequence[Case],
                  console: Console, require_shapley: bool = False) -> Evaluator:
    """The SIG evaluator from the stored Shapley values of ``scorer`` (``--sig-scorer``),
    else of ``default`` (the doctor's model)
    (:func:`promed_agents.storage.sig_evaluator`), with a line saying how many cases
    have them. A ``--sig-scorer`` with no values stored at all is an error."""
    from promed_agents.storage import sig_evaluator

    check_sig_scorer(store, scorer)
    made = sig_evaluator(store, scorer or default, cases, require_shapley=require_shapley)
    console.print(f"SIG from stored Shapley values ({shown(scorer or default)}) for "
                  f"{made.with_values} of {made.cases} cases; uniform weights for the rest")
    return made.evaluator
