"""Shared pieces of the ``promed`` command line: consoles, ``--db``, error reporting.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

Used by :mod:`promed_agents.cli` and the command modules that define their own sub-apps
(:mod:`promed_agents.shapley_command`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from promed_agents.errors import PromedError

console = Console(soft_wrap=True, emoji=False)
err_console = Console(stderr=True, soft_wrap=True, emoji=False)

DbOption = Annotated[str | None, typer.Option(
    "--db", envvar="PROMED_DB", show_envvar=True,
    help="Database URL or SQLite path [default: sqlite:///promed.db].")]

DEMO_DB = "sqlite:///promed-demo.db"

# Which stored cases a command works on (with select_cases in consult_command).
CasesOption = Annotated[int | None, typer.Option(min=1, help="The first N stored cases.")]
CaseIdsOption = Annotated[str | None, typer.Option(help="Comma-separated case ids.")]
SplitOption = Annotated[str | None, typer.Option(help="Only cases of this split.")]
DemonstrationOption = Annotated[bool, typer.Option(
    help="Show the doctor a worked example consultation first (small models need it to "
         "follow the turn format).")]


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


def without_password(where: str | None) -> str | None:
    """A location as it may be stored or printed: a database URL with its password
    masked; a file path unchanged."""
    if not where or "://" not in where:
        return where
    from sqlalchemy.engine import make_url

    return make_url(where).render_as_string(hide_password=True)


def open_store(db: str | None) -> Any:
    from promed_agents.storage import TraceStore

    return TraceStore(db)
