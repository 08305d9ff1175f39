"""``promed report``: the store's runs as one self-contained HTML file.

case -> consultation graph -> trace in SQL -> ... -> evaluation -> **report.html**

``promed report [--experiment NAME ...] --out report.html`` writes
:func:`promed_agents.report.build_report` for the named runs (every run without
``--experiment``; a run named twice is shown once), atomically (a temporary file renamed
into place), or to standard output with ``--out -``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from promed_agents.atomic_file import STANDARD_OUTPUT, atomic_writer, check_output_path
from promed_agents.cli.options import DbOption, console, open_store, reports_errors, shown
from promed_agents.errors import NotFoundError


@reports_errors
def report(
    out: Annotated[str, typer.Option(
        help="The HTML file to write (a regular file), or - for standard output.")] =
    "report.html",
    experiment: Annotated[list[str] | None, typer.Option(
        help="A run to include (repeatable) [default: every run].")] = None,
    episodes: Annotated[int, typer.Option(min=0, help="Consultations shown per run.")] = 3,
    db: DbOption = None,
) -> None:
    """Write the results table, training curves and a consultation viewer to one HTML
    file that opens in any browser."""
    from promed_agents.report import build_report
    from promed_agents.storage import StoredWeights

    if out != STANDARD_OUTPUT:
        check_output_path(out)  # before the work: a device or a link is never replaced
    with open_store(db, create=False) as store:
        if not experiment and not store.list_experiments():
            raise NotFoundError(f"the store {store.url} has no runs yet; run promed consult, "
                                "eval, mcts or train first")
        html = build_report(store, list(dict.fromkeys(experiment or ())), episodes,
                            weights_for=lambda spec: StoredWeights(store, spec))
    if out == STANDARD_OUTPUT:
        console.file.write(html)
        return
    with atomic_writer(out) as handle:
        handle.write(html)
    console.print(f"report: {shown(str(Path(out).resolve()))}")
