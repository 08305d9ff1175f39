"""``promed consult``: run consultations on stored cases and record every episode.

case -> **consultation graph** -> **trace in SQL** -> Shapley/SIG -> training -> evaluation

The command runs :func:`promed_agents.runs.consult_run.run_consult` with a progress bar
and prints the run's summary table.
"""


from __future__ import annotations

from collections.abc import Sequence

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
from promed_agents.evaluation import judging
from promed_agents.runs.consult_run import ConsultCommandConfig, run_consult
from promed_agents.trace import EpisodeRecord, EpisodeStatus

__all__ = ["ConsultCommandConfig", "consult_command", "summary_table"]


def summary_table(episodes: Sequence[EpisodeRecord], seconds: float, title: str) -> Table:
    done = [e for e in episodes if e.status is not EpisodeStatus.FAILED]
    judged = judging(done)
    table = Table(title=title + (f"; diagnoses judged by {judged}" if judged else ""))
    open_ended = any(e.tests_ordered is not None for e in done)
    for column in ("episodes", "done", "timeout", "failed", "accuracy", "questions",
                   *(("tests",) if open_ended else ()), "recall", "SIG", "format", "ep/s"):
        table.add_column(column, justify="right")

    def mean(values: list[float]) -> str:
        return f"{sum(values) / len(values):.3f}" if values else "-"

    table.add_row(
        str(len(episodes)),
        str(sum(e.status is EpisodeStatus.COMPLETED for e in episodes)),
        str(sum(e.status is EpisodeStatus.TIMEOUT for e in episodes)),
        str(sum(e.status is EpisodeStatus.FAILED for e in episodes)),
        mean([1.0 if e.correct else 0.0 for e in done]),
        mean([float(e.num_questions) for e in done]),
        *((mean([float(e.tests_ordered or 0) for e in done]),) if open_ended else ()),
        mean([e.fact_recall or 0.0 for e in done]),
        mean([e.information_gain or 0.0 for e in done]),
        mean([e.format_score or 0.0 for e in done]),
        f"{len(episodes) / seconds:.2f}" if seconds > 0 else "-")
    return table


# -- the CLI entry -----------------------------------------------------------------------

@reports_errors
@config_command(ConsultCommandConfig)
def consult_command(settings: ConsultCommandConfig, db: DbOption = None) -> None:
    """Run consultations on stored cases; every episode is recorded with its turns."""
    with open_store(db) as store:
        result = run_consult(store, settings, ConsoleReporter(console, err_console))
    console.print(summary_table(result.episodes, result.seconds, shown(
        f"experiment {result.experiment}: {settings.mode.value}, doctor {settings.doctor}, "
        f"patient {settings.patient}", one_line=True)))
