"""``promed cases``: import benchmark case files into the store, list and show cases.

**case** -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation
"""


from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from promed_agents.cli.listing import FormatOption, ListFormat, print_rows
from promed_agents.cli.options import (
    DbOption,
    console,
    err_console,
    open_store,
    reports_errors,
    shown,
)
from promed_agents.cli.progress_bar import progress_bar
from promed_agents.errors import CaseConflictError, CaseFormatError
from promed_agents.loader import CaseFormat, iter_located_cases
from promed_agents.partial_view import DEFAULT_POLICY, PartialInfoPolicy, partial_view

cases_app = typer.Typer(help="Import and inspect benchmark cases.", no_args_is_help=True)


def import_file(path: Path, fmt: CaseFormat, split: str | None, limit: int | None,
                db: str | None, source: str | None = None) -> tuple[int, int]:
    """Validate every case of ``path``, then store them in one transaction."""
    located = list(iter_located_cases(path, fmt, split=split, limit=limit, source=source))
    if not located and limit != 0:
        raise CaseFormatError(path, None, None, "no cases in the file (it is empty or holds "
                              "only blank lines); nothing imported")
    where = {case.id: location for location, case in located}
    store = open_store(db)
    try:
        with progress_bar(err_console) as progress:
            task = progress.add_task(f"importing {path.name}", total=len(located))
            report = store.import_cases((case for _, case in located),
                                        progress=lambda n: progress.advance(task, n))
    except CaseConflictError as exc:
        raise CaseConflictError(f"{path}:{where.get(exc.case_id, '?')}: {exc}") from None
    finally:
        store.close()
    return report.added, report.unchanged


@cases_app.command("import")
@reports_errors
def cases_import(
    path: Annotated[Path, typer.Argument(help="Case file (JSON Lines or JSON array).")],
    fmt: Annotated[CaseFormat, typer.Option("--format", help="File format.")] = CaseFormat.AUTO,
    split: Annotated[str | None, typer.Option(help="Split name to record, e.g. dev.")] = None,
    limit: Annotated[int | None, typer.Option(min=0, help="Import only the first N.")] = None,
    source: Annotated[str | None, typer.Option(
        help="Benchmark name recorded as the cases' source and id prefix (SOURCE-<id>), "
             "e.g. craftmd for MediQ's iCraft-MD [default: from the file: imedqa, craftmd "
             "when the name mentions craft, medqa or cmb].")] = None,
    db: DbOption = None,
) -> None:
    """Import a case file. All or nothing; re-importing the same file changes nothing."""
    added, unchanged = import_file(path, fmt, split, limit, db, source)
    console.print(f"imported {added} new case(s) from {path} "
                  f"({unchanged} already stored unchanged)")


@cases_app.command("list")
@reports_errors
def cases_list(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    split: Annotated[str | None, typer.Option(help="Only this split.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most N rows.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Skip the first N.")] = 0,
    fmt: FormatOption = ListFormat.TABLE,
    db: DbOption = None,
) -> None:
    """List stored cases."""
    with open_store(db, create=False) as store:
        total = store.count_cases(source=source, split=split)
        cases = store.list_cases(source=source, split=split, limit=limit, offset=offset)
    rows = [(case.id, case.split, len(case.facts),
             case.diagnosis if case.open_ended else ",".join(case.answer), case.question)
            for case in cases]
    shown_to = f"{offset + 1}-{offset + len(rows)}" if rows and offset else str(len(rows))
    print_rows(("id", "split", "facts", "answer", "question"), rows, fmt,
               f"{shown_to} of {total} case(s)", wide="question")


@cases_app.command("show")
@reports_errors
def cases_show(
    case_id: Annotated[str, typer.Argument(help="Case id, e.g. imedqa-0.")],
    policy: Annotated[PartialInfoPolicy, typer.Option(
        help="Partial-information policy to show.")] = DEFAULT_POLICY,
    db: DbOption = None,
) -> None:
    """Show one case, marking the facts the doctor knows at the start."""
    with open_store(db, create=False) as store:
        case = store.get_case(case_id)
    show_case(case, policy)


def show_case(case: Any, policy: PartialInfoPolicy) -> None:
    view = partial_view(case, policy)
    console.print(f"[bold]{shown(case.id)}[/] ({shown(case.source)}, {shown(case.language)}, "
                  f"split {shown(case.split or '-')})")
    console.print(f"[bold]Question:[/] {shown(case.question)}")
    for letter, text in case.options.items():
        mark = "[green]*[/]" if letter in case.answer else " "
        console.print(f" {mark} {shown(letter)}. {shown(text)}", highlight=False)
    if case.open_ended:
        console.print(f"[bold]Diagnosis:[/] {shown(case.diagnosis or '')}", highlight=False)
        if case.recommendation:
            console.print(f"[bold]Recommendation:[/] {shown(case.recommendation)}",
                          highlight=False)
    if view.given_text is not None:
        console.print(f"[bold]Given at start ({policy.value}):[/] {shown(view.given_text)}")
    table = Table(title=f"facts ({len(view.known_fact_ids)} of {len(case.facts)} known "
                        f"at start, policy {policy.value})")
    table.add_column("#", justify="right")
    table.add_column("known")
    if case.fact_sources:
        table.add_column("from")
    table.add_column("fact")
    known = set(view.known_fact_ids)
    for i, fact in enumerate(case.facts):
        source = [shown(f"{case.fact_sources[i].kind}: {case.fact_sources[i].path or '-'}")] \
            if case.fact_sources else []
        table.add_row(str(i), "yes" if i in known else "", *source, shown(fact))
    console.print(table)
