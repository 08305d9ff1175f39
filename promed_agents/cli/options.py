"""Shared pieces of the ``promed`` command line: consoles, ``--db``, error reporting.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

Used by :mod:`promed_agents.cli` and the command modules that define their own sub-apps
(:mod:`promed_agents.cli.shapley`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from promed_agents.agents.evaluator import Evaluator
from promed_agents.case import Case
from promed_agents.errors import ConsultationError, PromedError
from promed_agents.graphs.checkpointer import POSTGRES_PREFIXES
from promed_agents.loader import bundled_sample_path, load_cases

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

console = Console(soft_wrap=True, emoji=False)
err_console = Console(stderr=True, soft_wrap=True, emoji=False)

DbOption = Annotated[str | None, typer.Option(
    "--db", envvar="PROMED_DB", show_envvar=True,
    help="Database URL or SQLite path [default: sqlite:///promed.db].")]

DEMO_DB = "sqlite:///promed-demo.db"

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


# A flag's old name, kept hidden for one release (CHANGELOG.md lists them).
RenamedFloat = Annotated[float | None, typer.Option(hidden=True)]


def renamed(old_flag: str, old_value: Any, new_flag: str, new_value: Any) -> Any:
    """``new_value``, or ``old_value`` (with a warning) where the old flag was given."""
    if old_value is None:
        return new_value
    err_console.print(f"warning: {old_flag} is now {new_flag}; the old name goes in the "
                      "next release", highlight=False)
    return old_value


def case_id_list(text: str | None) -> list[str]:
    """``--case-ids a, b`` as a list."""
    return [c.strip() for c in text.split(",") if c.strip()] if text else []


F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn ProMed errors into one red line on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PromedError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def open_store(db: str | None) -> TraceStore:
    from promed_agents.storage import TraceStore

    return TraceStore(db)


def select_cases(store: TraceStore, console: Console, count: int | None = None,
                 case_ids: Sequence[str] = (), split: str | None = None) -> list[Case]:
    """The cases a command names: by id, else the first ``count`` stored (of ``split``).
    An empty store first gets the bundled sample."""
    if case_ids:
        return [store.get_case(case_id) for case_id in case_ids]
    if store.count_cases() == 0:
        report = store.import_cases(load_cases(bundled_sample_path(), split="sample"))
        console.print(f"the store was empty: imported the bundled sample ({report.added} "
                      "iMedQA cases, CC BY 4.0)")
    cases = store.list_cases(split=split, limit=count)
    if not cases:
        raise ConsultationError(f"no stored cases match (split {split!r}); see "
                                "`promed cases list`")
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


def evaluator_for(store: TraceStore, scorer: str, cases: Sequence[Case], console: Console,
                  require_shapley: bool = False) -> Evaluator:
    """The SIG evaluator from ``scorer``'s stored Shapley values
    (:func:`promed_agents.storage.sig_evaluator`), with a line saying how many cases
    have them."""
    from promed_agents.storage import sig_evaluator

    made = sig_evaluator(store, scorer, cases, require_shapley=require_shapley)
    console.print(f"SIG from stored Shapley values ({escape(scorer)}) for {made.with_values} "
                  f"of {made.cases} cases; uniform weights for the rest")
    return made.evaluator
