"""``promed shapley``: estimate, store and show the Shapley values of cases' facts.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO

The commands behind the CLI entries: run :func:`promed_agents.runs.shapley_run.run_shapley`
with a progress bar (cases already stored for the scorer and method are skipped, so a
rerun resumes), and print a case's facts with value, weight and standard error.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from promed_agents.cli.config_options import config_command
from promed_agents.cli.options import (
    DEFAULT_DOCTOR,
    DbOption,
    RenamedFloat,
    console,
    err_console,
    open_store,
    renamed,
    reports_errors,
    shown,
)
from promed_agents.cli.progress_bar import ConsoleReporter
from promed_agents.errors import NotFoundError
from promed_agents.runs.shapley_run import ShapleyCommandConfig, run_shapley

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

__all__ = ["ShapleyCommandConfig", "run_shapley", "shapley_app", "show"]


def show(store: TraceStore, case_id: str, scorer: str, method: str | None,
         console: Console) -> None:
    case = store.get_case(case_id)
    record = store.get_shapley(case_id, scorer, method)
    if record is None:
        raise NotFoundError(f"no Shapley values for case {case_id!r} under scorer {scorer!r}"
                            f"{f' and method {method!r}' if method else ''}; compute them "
                            f"with 'promed shapley --case-ids {case_id} --scorer "
                            f"{scorer}'")
    table = Table(title=shown(f"{case_id}: Shapley values ({record.method}, "
                               f"{record.scorer_spec}, softmax T={record.temperature:g}, "
                               f"{record.samples} samples)", one_line=True))
    for column in ("#", "fact", "value", "weight", "std. error"):
        table.add_column(column, justify="left" if column == "fact" else "right")
    for i, fact in enumerate(case.facts):
        error = record.std_errors[i]
        table.add_row(str(i), shown(fact), f"{record.values[i]:+.4f}",
                      f"{record.weights[i]:.3f}", "-" if error is None else f"{error:.4f}")
    console.print(table)


# -- the CLI entries ---------------------------------------------------------------------

shapley_app = typer.Typer(help="Shapley values of case facts (the weights behind SIG).")


@shapley_app.callback(invoke_without_command=True)
@reports_errors
@config_command(ShapleyCommandConfig)
def shapley_compute(settings: ShapleyCommandConfig, ctx: typer.Context, db: DbOption = None,
                    temperature: RenamedFloat = None) -> None:
    """Estimate and store fact Shapley values (cases already stored are skipped);
    `promed shapley show CASE` prints them."""
    if ctx.invoked_subcommand is not None:
        return
    if settings.method not in ("kernel", "exact", "permutation", "auto"):
        raise typer.BadParameter(f"{settings.method!r}: use kernel, exact, permutation or "
                                 "auto", param_hint="--method")
    if settings.target not in ("text", "letter-text"):
        raise typer.BadParameter(f"{settings.target!r}: use text or letter-text",
                                 param_hint="--target")
    settings = replace(settings, weight_temperature=renamed(
        "--temperature", temperature, "--weight-temperature", settings.weight_temperature))
    with open_store(db) as store:
        run_shapley(store, settings, ConsoleReporter(console, err_console))


@shapley_app.command("show")
@reports_errors
def shapley_show(
    case_id: Annotated[str, typer.Argument(help="Case id.")],
    scorer: Annotated[str, typer.Option(help="Scorer model spec.")] = DEFAULT_DOCTOR,
    method: Annotated[str | None, typer.Option(help="kernel, exact, permutation, ... "
                                               "[default: the latest stored]")] = None,
    db: DbOption = None,
) -> None:
    """Print a case's facts with Shapley value, weight and standard error."""
    with open_store(db, create=False) as store:
        show(store, case_id, scorer, method, console)
