"""``promed traces``: list, show, export and import recorded consultations.

case -> consultation graph -> **trace in SQL** -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation
"""


from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from promed_agents.atomic_file import STANDARD_OUTPUT, check_output_path
from promed_agents.cli.config_options import config_command
from promed_agents.cli.listing import FormatOption, ListFormat, print_rows
from promed_agents.cli.options import (
    DbOption,
    console,
    err_console,
    open_store,
    reports_errors,
    shown,
)
from promed_agents.cli.progress_bar import ConsoleReporter, progress_bar
from promed_agents.runs.import_run import ImportCommandConfig, run_import

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

traces_app = typer.Typer(help="Inspect, export and import consultation traces.",
                         no_args_is_help=True)


def _experiment_id(store: TraceStore, experiment: str | None) -> int | None:
    return None if experiment is None else store.experiment_id(experiment)


@traces_app.command("list")
@reports_errors
def traces_list(
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    case: Annotated[str | None, typer.Option(help="Only this case id.")] = None,
    status: Annotated[str | None, typer.Option(
        help="Only this status: running, completed, timeout or failed.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most N rows.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip the first N.")] = 0,
    fmt: FormatOption = ListFormat.TABLE,
    db: DbOption = None,
) -> None:
    """List recorded consultations, oldest first."""
    with open_store(db, create=False) as store:
        experiment_id = _experiment_id(store, experiment)
        total = store.count_episodes(experiment_id=experiment_id, case_id=case, status=status)
        episodes = store.list_episodes(experiment_id=experiment_id, case_id=case,
                                       status=status, limit=limit, offset=offset)
        names = {e.id: e.name for e in store.list_experiments()}
    rows = [(ep.id, names.get(ep.experiment_id), ep.case_id, ep.mode, ep.status,
             ep.num_questions, ",".join(ep.final_answer or []) or None,
             None if ep.correct is None else ("yes" if ep.correct else "no"))
            for ep in episodes]
    shown_to = f"{offset + 1}-{offset + len(rows)}" if rows and offset else str(len(rows))
    print_rows(("id", "experiment", "case", "mode", "status", "questions", "answer",
                "correct"), rows, fmt, f"{shown_to} of {total} episode(s)",
               wide="experiment")


@traces_app.command("show")
@reports_errors
def traces_show(episode_id: Annotated[int, typer.Argument(help="Episode id.")],
                db: DbOption = None) -> None:
    """Show one consultation turn by turn."""
    with open_store(db, create=False) as store:
        ep = store.get_episode(episode_id)
    console.print(f"[bold]episode {ep.id}[/]: case {shown(ep.case_id)}, graph "
                  f"{shown(ep.graph)}, mode {ep.mode.value}, policy {ep.partial_policy.value}, "
                  f"status {ep.status.value}"
                  + (f" ({shown(ep.failure_reason)})" if ep.failure_reason else ""),
                  highlight=False)
    console.print(f"doctor {shown(ep.doctor_spec)}; patient {shown(ep.patient_spec or '-')}; "
                  f"evaluator {shown(ep.evaluator_spec or '-')}; known facts at start "
                  f"{ep.known_fact_ids}", highlight=False)
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
        console.print(f"[bold]{turn.index:>2} {turn.role.value}:[/] {shown(turn.text)}{note}",
                      highlight=False)
    verdict = "-" if ep.correct is None else ("correct" if ep.correct else "wrong")
    if ep.verdict is not None:
        verdict += f" (judged by {ep.verdict.judge}, score {ep.verdict.score:.3f})"
    if ep.tests_ordered is not None:
        verdict += f"; tests ordered {ep.tests_ordered}"
    console.print(f"final answer {shown(','.join(ep.final_answer or []) or '-')}: "
                  f"{shown(verdict)}", highlight=False)


class ExportFormat(str, Enum):
    JSONL = "jsonl"


@traces_app.command("export", short_help="Export consultations as JSON Lines.")
@reports_errors
def traces_export(
    out: Annotated[str, typer.Argument(
        help="Output file (a regular file), or - for standard output.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] =
    ExportFormat.JSONL,
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    status: Annotated[str | None, typer.Option(help="Only episodes with this status.")] = None,
    with_tokens: Annotated[bool, typer.Option(help="Include token ids and log-probs.")] =
    False,
    db: DbOption = None,
) -> None:
    """Export consultations as JSON Lines: the doctor's prompt, the chat, the turns and
    the metadata, one episode a line (loadable with datasets.load_dataset('json', ...))."""
    from promed_agents.storage.trace_export import export_traces

    target = out if out == STANDARD_OUTPUT else check_output_path(out)
    with open_store(db, create=False) as store:
        experiment_id = _experiment_id(store, experiment)
        with progress_bar(err_console) as progress:
            task = progress.add_task("exporting", total=store.count_episodes(
                experiment_id=experiment_id, status=status))
            count = export_traces(store, target, experiment_id=experiment_id, status=status,
                                 with_tokens=with_tokens,
                                 progress=lambda n: progress.advance(task, n))
    (err_console if out == "-" else console).print(
        f"wrote {count} episode(s) to {'standard output' if out == '-' else shown(out)}",
        highlight=False)


@traces_app.command("import", short_help="Import dialogues recorded elsewhere as traces.")
@reports_errors
@config_command(ImportCommandConfig)
def traces_import(settings: ImportCommandConfig,
                  file: Annotated[Path, typer.Argument(
                      help="JSON Lines of dialogues (docs/training_from_traces.md), or a "
                           "traces export.")],
                  db: DbOption = None) -> None:
    """Import consultations recorded elsewhere (human logs, another framework's rollouts,
    a traces export) as one run: each dialogue is replayed through the consultation graph
    for its turn kinds, acquired facts and SIG; a bad record is an error naming its
    line, and nothing is written. Train on them with promed train sft --from NAME."""
    with open_store(db) as store:
        run_import(store, file, settings, ConsoleReporter(console, err_console))
