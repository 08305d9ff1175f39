"""``promed mcts``: search consultations with SIG-guided MCTS and store the trees.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> **MCTS** -> SFT -> evaluation

``promed mcts`` runs :func:`promed_agents.runs.search_run.run_search` with a progress bar
and prints a table of the cases searched. Running the same command again with the same
``--experiment`` resumes the search: finished iterations are in the store, the dialogue
states in the LangGraph checkpoints (``--checkpoints``, by default a SQLite file beside a
SQLite store, or the PostgreSQL store itself). ``promed mcts show CASE --experiment
NAME`` prints a case's tree.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from promed_agents.cli.config_options import config_command
from promed_agents.cli.options import (
    DbOption,
    console,
    err_console,
    open_store,
    reports_errors,
    shown,
)
from promed_agents.cli.progress_bar import ConsoleReporter
from promed_agents.errors import NotFoundError
from promed_agents.runs.search_run import MCTSCommandConfig, default_checkpoints, run_search

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

__all__ = ["MCTSCommandConfig", "default_checkpoints", "mcts_app", "report_table",
           "run_search", "show_tree"]


def report_table(reports: Sequence[Any], seconds: float, experiment: str) -> Table:
    table = Table(title=shown(f"MCTS {experiment} ({seconds:.0f} s)", one_line=True))
    for column in ("case", "iterations", "nodes", "leaves", "best reward", "best correct"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for r in reports:
        table.add_row(shown(r.case_id), str(r.iterations), str(r.nodes), str(r.leaves),
                      f"{r.best_reward:.3f}",
                      "failed" if r.error else {True: "yes", False: "no", None: "-"}[
                          r.best_correct])
    return table


def show_tree(store: TraceStore, case_id: str, experiment: str, console: Console) -> None:
    experiment_id = store.experiment_id(experiment)
    root = store.load_search_tree(experiment_id, case_id)
    if root is None:
        raise NotFoundError(f"experiment {experiment!r} has no search tree for case "
                            f"{case_id!r}; see `promed mcts --experiment {experiment}`")

    def label(node: Any) -> str:
        stats = f"[dim]visits {node.visits:g}, Q {node.value:.3f}[/]"
        if node.parent is None:
            return f"[bold]{shown(case_id)}[/] {stats}"
        sig = f"SIG {node.sig:.3f}, " if node.sig is not None else ""
        end = ""
        if node.terminal:
            end = " [green]correct[/]" if node.correct else " [red]wrong[/]"
            end += f" (path reward {node.path_reward():.3f})"
        return f"{shown(node.turn_text or '')} [dim]({sig}{node.turn_kind})[/]{end} {stats}"

    def grow(branch: Tree, node: Any) -> None:
        for child in node.children:
            grow(branch.add(label(child)), child)

    tree = Tree(label(root))
    grow(tree, root)
    console.print(tree)


# -- the CLI entries ---------------------------------------------------------------------

mcts_app = typer.Typer(help="SIG-guided MCTS over consultations (stage 1 of ProMed).")


@mcts_app.callback(invoke_without_command=True)
@reports_errors
@config_command(MCTSCommandConfig)
def mcts_search(settings: MCTSCommandConfig, ctx: typer.Context, db: DbOption = None) -> None:
    """Search consultations and store the trees; rerun with the same --experiment to
    resume. `promed mcts show CASE --experiment NAME` prints a tree."""
    if ctx.invoked_subcommand is not None:
        return
    if not settings.experiment:  # a usage error, before the store is made
        raise typer.BadParameter("name the search, so that it can be resumed and trained "
                                 "from", param_hint="--experiment")
    started = time.perf_counter()
    with open_store(db) as store:
        reports = run_search(store, settings, ConsoleReporter(console, err_console))
    console.print(report_table(reports, time.perf_counter() - started, settings.experiment))
    if any(r.error for r in reports):
        raise typer.Exit(1)


@mcts_app.command("show", short_help="Print a case's search tree.")
@reports_errors
def mcts_show(
    case_id: Annotated[str, typer.Argument(help="Case id.")],
    experiment: Annotated[str, typer.Option(help="Name of the search.")],
    db: DbOption = None,
) -> None:
    """Print a case's search tree: each doctor turn with SIG, visits and value."""
    with open_store(db, create=False) as store:
        show_tree(store, case_id, experiment, console)
