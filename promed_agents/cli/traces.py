"""``promed traces``: list, show and export the recorded consultations.

case -> consultation graph -> **trace in SQL** -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation
"""


from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from promed_agents.cli.options import (
    DbOption,
    console,
    err_console,
    open_store,
    reports_errors,
)
from promed_agents.cli.progress_bar import progress_bar

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

traces_app = typer.Typer(help="Inspect and export consultation traces.", no_args_is_help=True)


def _experiment_id(store: TraceStore, experiment: str | None) -> int | None:
    return None if experiment is None else store.experiment_id(experiment)


@traces_app.command("list")
@reports_errors
def traces_list(
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    case: Annotated[str | None, typer.Option(help="Only this case id.")] = None,
    status: Annotated[str | None, typer.Option(help="completed, timeout, failed...")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most N rows.")] = 50,
    db: DbOption = None,
) -> None:
    """List recorded consultations."""
    with open_store(db) as store:
        episodes = store.list_episodes(experiment_id=_experiment_id(store, experiment),
                                       case_id=case, status=status, limit=limit)
    table = Table(title=f"{len(episodes)} episode(s)")
    for column in ("id", "case", "graph", "mode", "policy", "status", "questions",
                   "answer", "correct"):
        table.add_column(column)
    for ep in episodes:
        table.add_row(str(ep.id), ep.case_id, ep.graph, ep.mode, ep.partial_policy, ep.status,
                      str(ep.num_questions), ",".join(ep.final_answer or []) or "-",
                      "-" if ep.correct is None else ("yes" if ep.correct else "no"))
    console.print(table)


@traces_app.command("show")
@reports_errors
def traces_show(episode_id: Annotated[int, typer.Argument(help="Episode id.")],
                db: DbOption = None) -> None:
    """Show one consultation turn by turn."""
    with open_store(db) as store:
        ep = store.get_episode(episode_id)
    console.print(f"[bold]episode {ep.id}[/]: case {ep.case_id}, graph {ep.graph}, mode "
                  f"{ep.mode.value}, policy {ep.partial_policy.value}, status {ep.status.value}"
                  + (f" ({ep.failure_reason})" if ep.failure_reason else ""))
    console.print(f"doctor {ep.doctor_spec}; patient {ep.patient_spec or '-'}; evaluator "
                  f"{ep.evaluator_spec or '-'}; known facts at start {ep.known_fact_ids}")
    for turn in ep.turns:
        extra = []
        if turn.kind:
            extra.append(turn.kind.value)
        if turn.disclosed_fact_ids:
            extra.append(f"facts {turn.disclosed_fact_ids}")
        if turn.sig is not None:
            extra.append(f"SIG {turn.sig:.3f}")
        if turn.reward is not None:
            extra.append(f"reward {turn.reward:.3f}")
        note = f" [dim]({'; '.join(extra)})[/]" if extra else ""
        console.print(f"[bold]{turn.index:>2} {turn.role.value}:[/] {escape(turn.text)}{note}",
                      highlight=False)
    verdict = "-" if ep.correct is None else ("correct" if ep.correct else "wrong")
    console.print(f"final answer {','.join(ep.final_answer or []) or '-'}: {verdict}")


class ExportFormat(str, Enum):
    JSONL = "jsonl"


@traces_app.command("export")
@reports_errors
def traces_export(
    out: Annotated[Path, typer.Argument(help="Output file.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] =
    ExportFormat.JSONL,
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    status: Annotated[str | None, typer.Option(help="Only episodes with this status.")] = None,
    with_tokens: Annotated[bool, typer.Option(help="Include token ids and log-probs.")] =
    False,
    db: DbOption = None,
) -> None:
    """Export consultations (loadable with datasets.load_dataset('json', ...))."""
    from promed_agents.storage.trace_export import export_traces

    with open_store(db) as store:
        experiment_id = _experiment_id(store, experiment)
        with progress_bar(err_console) as progress:
            task = progress.add_task("exporting", total=store.count_episodes(
                experiment_id=experiment_id, status=status))
            count = export_traces(store, out, experiment_id=experiment_id, status=status,
                                 with_tokens=with_tokens,
                                 progress=lambda n: progress.advance(task, n))
    console.print(f"wrote {count} episode(s) to {out}")
