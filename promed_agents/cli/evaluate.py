"""``promed eval``: a doctor on a case set, per mode and seed, with confidence intervals.

case -> consultation graph -> trace in SQL -> ... -> checkpoint -> **evaluation**

``promed eval --doctor SPEC --cases N --modes proactive,reactive --seeds K --experiment
NAME`` runs every case K times in each mode (seed s passed to the doctor's sampler) and
records the consultations as one evaluation run per mode (experiments ``NAME-proactive``,
``NAME-reactive``, kind ``eval``). It prints accuracy, questions per episode, fact recall,
mean SIG and format validity with 95% bootstrap intervals over cases
(:mod:`promed_agents.evaluation`), and, with both modes, the relative accuracy gain of
proactive over reactive. ``promed eval compare RUN_A RUN_B`` compares any two stored runs
on their shared cases (B minus A, paired by case).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from promed_agents.agents.abstention import DEFAULT_THRESHOLD
from promed_agents.agents.doctor import doctor_sampling
from promed_agents.agents.patient_spec import resolve_patient
from promed_agents.agents.reference_doctors import known_cases, resolve_doctor
from promed_agents.backends.model_pool import shared_pool
from promed_agents.cli.config_options import config_command, knob
from promed_agents.cli.options import (
    DbOption,
    case_ids_knob,
    cases_knob,
    check_sig_scorer,
    console,
    demonstration_knob,
    doctor_knob,
    err_console,
    evaluator_for,
    max_new_tokens_knob,
    max_questions_knob,
    open_store,
    patient_knob,
    report_status,
    reports_errors,
    select_cases,
    shown,
    split_knob,
)
from promed_agents.cli.progress_bar import progress_bar
from promed_agents.cli.run_lifecycle import recorded_run
from promed_agents.errors import ConsultationError
from promed_agents.evaluation import (
    LABELS,
    SHOWN,
    Estimate,
    paired_difference,
    per_case,
    recorded_status,
    relative_gain,
    run_status,
    sig_weighting,
    summarize,
)
from promed_agents.graphs import (
    ConsultationContext,
    abstaining_consultation_graph,
    arun_consultations,
)
from promed_agents.trace import ConsultationMode, EpisodeStatus

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

KIND = "eval"


def _modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in {mode.value for mode in ConsultationMode}]
    if not modes or bad or len(set(modes)) < len(modes):
        raise ConsultationError(f"--modes {text!r}: give proactive, reactive or both "
                                "(comma-separated, each once)")
    return modes


@dataclass(frozen=True)
class EvalCommandConfig:
    """What ``promed eval`` runs; each field is the option of the same name."""

    experiment: str | None = knob(
        None, help="Run name; each mode is stored as NAME-MODE [default: eval-TIME].")
    doctor: str = doctor_knob(
        "Doctor model spec, or a reference doctor: bank:random, bank:fixed, bank:similar "
        "(reads the train split's cases), oracle.")
    cases: int | None = cases_knob()
    case_ids: Sequence[str] = case_ids_knob()
    split: str | None = split_knob()
    modes: Sequence[str] = knob(("proactive", "reactive"), help="proactive, reactive or both.",
                                parse=_modes, show_default="proactive,reactive")
    seeds: int = knob(1, help="Runs per case and mode.", min=1)
    patient: str = patient_knob()
    max_questions: int = max_questions_knob()
    temperature: float = knob(0.0, help="Doctor sampling temperature.", min=0.0)
    max_new_tokens: int = max_new_tokens_knob()
    concurrency: int = knob(8, help="Consultations at once.", min=1)
    sig_scorer: str | None = knob(
        None, help="Whose stored Shapley values weigh facts [default: --doctor].")
    demonstration: bool = demonstration_knob()
    abstain: str | None = knob(
        None, help="MediQ's abstaining doctor: before each turn the doctor rates its "
                   "confidence (numerical or scale) and asks only below "
                   "--abstain-threshold.")
    abstain_threshold: float = knob(
        DEFAULT_THRESHOLD, help="Confidence at which an abstaining doctor answers.",
        min=0.0, max=1.0)


def _graph(settings: EvalCommandConfig) -> Any:
    """The consultation graph, with MediQ's abstention before the doctor when asked."""
    if settings.abstain is None:
        return None
    try:
        return abstaining_consultation_graph(settings.abstain, settings.abstain_threshold)
    except ValueError as exc:
        raise ConsultationError(f"--abstain/--abstain-threshold: {exc}") from None


class RunFigures(dict[str, dict[str, dict[str, float]]]):
    """Per-case figures by run name, and (``weightings``) how each run's SIG weighed
    facts."""

    def __init__(self) -> None:
        super().__init__()
        self.weightings: dict[str, str] = {}
        self.failed: dict[str, int] = {}
        """Failed consultations by run name (left out of the figures)."""

    def weighting(self) -> str:
        return " / ".join(sorted(set(self.weightings.values()))) or "unrecorded"


def run_evaluation(store: TraceStore, settings: EvalCommandConfig, console: Console,
                   progress_console: Console) -> RunFigures:
    """Run and record every mode and seed; returns per-case figures by run name."""
    from promed_agents.storage.trace_recorder import TraceRecorder

    known = known_cases(store, settings.doctor)
    resolve_doctor(settings.doctor, known=known)  # bad specs fail before the store changes
    resolve_patient(settings.patient)
    graph = _graph(settings)
    check_sig_scorer(store, settings.sig_scorer)
    cases = select_cases(store, console, settings.cases, settings.case_ids, settings.split)
    doctor = resolve_doctor(settings.doctor, known)
    evaluator = evaluator_for(store, settings.sig_scorer, settings.doctor, cases, console)
    runs = RunFigures()
    with progress_bar(progress_console) as progress:
        for mode in settings.modes:
            name = f"{settings.experiment}-{mode}"
            experiment_id = store.create_experiment(name, KIND, {
                **asdict(settings), "mode": mode, "kind": KIND,
                "case_ids": [c.id for c in cases], "evaluator": evaluator.name},
                replace_unfinished=True, status="running")
            recorder = TraceRecorder(store, experiment_id)
            task = progress.add_task(f"{mode} ({settings.doctor})",
                                     total=len(cases) * settings.seeds)
            episodes = []

            def on_episode(episode: Any, recorder: Any = recorder, task: Any = task) -> None:
                recorder(episode)
                progress.advance(task)

            with recorded_run(store, experiment_id, name,
                              "run the same command again (--experiment "
                              f"{settings.experiment}) to replace it"):
                for seed in range(settings.seeds):
                    context = ConsultationContext(
                        doctor=doctor, patient=resolve_patient(settings.patient),
                        mode=ConsultationMode(mode), evaluator=evaluator,
                        max_questions=settings.max_questions,
                        demonstration=settings.demonstration,
                        doctor_kwargs={**doctor_sampling(
                            doctor, max_new_tokens=settings.max_new_tokens,
                            temperature=settings.temperature), "seed": seed})
                    episodes += asyncio.run(arun_consultations(
                        cases, context, concurrency=settings.concurrency, graph=graph,
                        experiment_id=experiment_id, on_episode=on_episode))
                status, reason = run_status(episodes)
                store.finish_experiment(experiment_id, status, reason)
            report_status(name, status, reason)  # a failed run stops the evaluation
            runs[name] = per_case(episodes)
            runs.weightings[name] = sig_weighting(episodes)
            runs.failed[name] = sum(e.status is EpisodeStatus.FAILED for e in episodes)
    if settings.doctor.startswith("local:"):  # loaded again (0.1 s) if used again
        shared_pool().release(settings.doctor)  # an evaluated doctor's weights go with it
    return runs


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
    for metric in SHOWN:
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
                     gain: Estimate | None, cases: int, weighting: str | None = None) -> Table:
    table = Table(title=shown(f"{other} minus {base} ({cases} shared cases, paired)",
                              one_line=True))
    table.add_column("metric")
    table.add_column("difference [95% CI]", justify="right")
    for metric in SHOWN:
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
    weightings = {sig_weighting(run) for run in episodes}
    console.print(comparison_table(base, other, paired_difference(*figures),
                                   relative_gain(*figures), len(shared),
                                   " vs ".join(sorted(weightings))))


eval_app = typer.Typer(help="Evaluate doctors with confidence intervals; compare runs.")


@eval_app.callback(invoke_without_command=True)
@reports_errors
@config_command(EvalCommandConfig)
def evaluate(settings: EvalCommandConfig, ctx: typer.Context, db: DbOption = None) -> None:
    """Consult every case in each mode and seed; print the figures with 95% intervals
    and the relative gain of proactive over reactive."""
    if ctx.invoked_subcommand is not None:
        return
    if not settings.experiment:
        settings = replace(settings, experiment=f"eval-{time.strftime('%Y%m%d-%H%M%S')}")
    with open_store(db) as store:
        runs = run_evaluation(store, settings, console, err_console)
    console.print(results_table(runs, shown(f"{settings.experiment}: {settings.doctor}, "
                                             f"{settings.seeds} seed(s), 95% bootstrap CI"),
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
