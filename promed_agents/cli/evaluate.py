"""``promed eval``: a doctor on a case set, per mode and seed, with confidence intervals.

case -> consultation graph -> trace in SQL -> ... -> checkpoint -> **evaluation**

``promed eval --doctor SPEC --cases N --modes proactive,reactive --seeds K --experiment
NAME`` runs :func:`promed_agents.runs.evaluation_run.run_evaluation`: every case K times
in each mode, recorded as one evaluation run per mode (experiments ``NAME-proactive``,
``NAME-reactive``, kind ``eval``). It prints accuracy, questions per episode, fact recall,
mean SIG and format validity with 95% bootstrap intervals over cases
(:mod:`promed_agents.evaluation`), and, with both modes, the relative accuracy gain of
proactive over reactive. ``promed eval compare RUN_A RUN_B`` compares any two stored runs
on their shared cases (B minus A, paired by case).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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
from promed_agents.errors import ConsultationError
from promed_agents.evaluation import (
    LABELS,
    Estimate,
    judging,
    paired_difference,
    per_case,
    recorded_status,
    relative_gain,
    shown_metrics,
    sig_weighting,
    summarize,
)
from promed_agents.runs.evaluation_run import EvalCommandConfig, run_evaluation

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

__all__ = ["EvalCommandConfig", "compare_runs", "comparison_table", "eval_app",
           "results_table", "run_evaluation"]


def results_table(runs: dict[str, dict[str, dict[str, float]]], title: str,
                  weighting: str | None = None) -> Table:
    """Each metric under its full label, then one row per run: mean and 95% CI. Three
    columns, so the table stays readable at 80 columns whatever the number of runs;
    ``weighting`` names the SIG's fact weights
    (:func:`~promed_agents.evaluation.sig_weighting`)."""
    table = Table(title=title)
    table.add_column("metric / run")
    table.add_column("mean", justify="right")
    table.add_column("95% CI", justify="right")
    summaries = {name: summarize(figures) for name, figures in runs.items()}
    failed = getattr(runs, "failed", {})
    table.add_row("[bold]cases[/]", "", "")
    for name, figures in runs.items():
        left_out = failed.get(name, 0)
        table.add_row(f"  {shown(name)}", str(len(figures)),
                      f"{left_out} failed (left out)" if left_out else "")
    for metric in shown_metrics(*runs.values()):
        table.add_row(f"[bold]{_label(metric, weighting)}[/]", "", "", end_section=False)
        for name, summary in summaries.items():
            estimate = summary[metric]
            mean, _, interval = estimate.text().partition(" ")
            table.add_row(f"  {shown(name)}", mean, escape(interval))
    return table


def _label(metric: str, weighting: str | None) -> str:
    if metric == "sig" and weighting:
        return f"{LABELS[metric]} ({shown(weighting)} weights)"
    return LABELS[metric]


def comparison_table(base: str, other: str, difference: dict[str, Estimate],
                     gain: Estimate | None, cases: int, weighting: str | None = None,
                     metrics: tuple[str, ...] | None = None) -> Table:
    table = Table(title=shown(f"{other} minus {base} ({cases} shared cases, paired)",
                              one_line=True))
    table.add_column("metric")
    table.add_column("difference [95% CI]", justify="right")
    for metric in metrics or shown_metrics():
        table.add_row(_label(metric, weighting), escape(difference[metric].text("+.3f")))
    table.add_row("relative accuracy gain", "undefined (base accuracy 0)" if gain is None
                  else escape(gain.text("+.1%")))
    return table


def _comparable(store: TraceStore, name: str, episodes: list[Any],
                figures: dict[str, Any]) -> None:
    """Refuse a run with no finished consultation; warn (stderr) about one that did not
    finish, whose cases are compared as far as they got."""
    stored = store.experiment(name)
    status, reason = recorded_status(stored.status, stored.status_reason, episodes)
    if not figures:
        raise ConsultationError(
            f"run {name!r} has no finished consultation to compare (it is {status}"
            + (f": {reason}" if reason else "") + "); run it again first")
    if status in ("incomplete", "interrupted", "running"):
        err_console.print(f"[yellow]warning:[/] run {shown(name)} is {status} "
                          f"({len(figures)} cases with figures)"
                          + (f": {shown(reason)}" if reason else "")
                          + "; compared on the cases it finished", highlight=False)


def compare_runs(store: TraceStore, base: str, other: str, console: Console) -> None:
    episodes = [list(store.iter_episodes(store.experiment_id(name))) for name in (base, other)]
    figures = [per_case(run) for run in episodes]
    for name, run, figure in zip((base, other), episodes, figures, strict=True):
        _comparable(store, name, run, figure)
    shared = set(figures[0]) & set(figures[1])
    if not shared:
        raise ConsultationError(f"runs {base!r} and {other!r} share no case; compare runs "
                                "made on the same cases")
    judges = [judging(run) for run in episodes]
    if judges[0] and judges[1] and judges[0] != judges[1]:
        raise ConsultationError(
            f"runs {base!r} and {other!r} were judged differently ({judges[0]} vs "
            f"{judges[1]}): their accuracies are not comparable; evaluate both with the "
            "same --judge")
    weightings = {sig_weighting(run) for run in episodes}
    console.print(comparison_table(base, other, paired_difference(*figures),
                                   relative_gain(*figures), len(shared),
                                   " vs ".join(sorted(weightings)), shown_metrics(*figures)))


eval_app = typer.Typer(help="Evaluate doctors with confidence intervals; compare runs.")


@eval_app.callback(invoke_without_command=True)
@reports_errors
@config_command(EvalCommandConfig)
def evaluate(settings: EvalCommandConfig, ctx: typer.Context, db: DbOption = None) -> None:
    """Consult every case in each mode and seed; print the figures with 95% intervals
    and the relative gain of proactive over reactive."""
    if ctx.invoked_subcommand is not None:
        return
    if not settings.experiment and not settings.shared:  # shared runs must be named
        settings = replace(settings, experiment=f"eval-{time.strftime('%Y%m%d-%H%M%S')}")
    with open_store(db) as store:
        runs = run_evaluation(store, settings, ConsoleReporter(console, err_console))
    judged = f", diagnoses judged by {runs.judging()}" if runs.judging() else ""
    console.print(results_table(runs, shown(f"{settings.experiment}: {settings.doctor}, "
                                             f"{settings.seeds} seed(s), 95% bootstrap CI"
                                             f"{judged}"),
                                runs.weighting()))
    if len(runs) == 2:
        gain = relative_gain(runs[f"{settings.experiment}-reactive"],
                             runs[f"{settings.experiment}-proactive"])
        console.print("relative accuracy gain of proactive over reactive: " + (
            "undefined (reactive accuracy 0)" if gain is None else
            escape(gain.text("+.1%"))))


@eval_app.command("compare", short_help="Compare two runs, paired.")
@reports_errors
def compare(
    run_a: Annotated[str, typer.Argument(help="The base run (experiment name).")],
    run_b: Annotated[str, typer.Argument(help="The run compared with it.")],
    db: DbOption = None,
) -> None:
    """RUN_B minus RUN_A on their shared cases, with paired 95% intervals, and B's
    relative accuracy gain over A."""
    with open_store(db, create=False) as store:
        compare_runs(store, run_a, run_b, console)
