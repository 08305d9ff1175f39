"""The ``promed`` command line: the user's entry to every stage of the data path.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

Every command takes ``--db URL`` (or ``$PROMED_DB``; default ``sqlite:///promed.db``).
Storage is imported inside the commands, so ``import promed_agents`` stays light. This is
the only module that configures logging.
"""

from __future__ import annotations

import logging
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from promed_agents.cli_options import (
    DEMO_DB,
    CaseIdsOption,
    CasesOption,
    DbOption,
    DemonstrationOption,
    SplitOption,
    case_id_list,
    console,
    err_console,
    open_store,
    reports_errors,
)
from promed_agents.demo_pipeline import DemoPlan
from promed_agents.errors import CaseConflictError, CaseFormatError
from promed_agents.eval_command import eval_app
from promed_agents.loader import CaseFormat, bundled_sample_path, iter_located_cases
from promed_agents.mcts_command import mcts_app
from promed_agents.partial_view import DEFAULT_POLICY, PartialInfoPolicy, partial_view
from promed_agents.progress_bar import progress_bar
from promed_agents.report_command import report
from promed_agents.shapley_command import shapley_app
from promed_agents.trace import ConsultationMode
from promed_agents.train_command import train_app

app = typer.Typer(help="ProMed Agents: teach medical LLMs to ask before they answer.",
                  no_args_is_help=True, add_completion=False)
cases_app = typer.Typer(help="Import and inspect benchmark cases.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
traces_app = typer.Typer(help="Inspect and export consultation traces.", no_args_is_help=True)
app.add_typer(cases_app, name="cases")
app.add_typer(db_app, name="db")
app.add_typer(traces_app, name="traces")
app.add_typer(shapley_app, name="shapley")
app.add_typer(mcts_app, name="mcts")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.command("report")(report)

@app.callback()
def _main(verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                               help="More log output (-vv for debug).")] = 0
          ) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False)])


# -- cases -------------------------------------------------------------------------------

def import_file(path: Path, fmt: CaseFormat, split: str | None, limit: int | None,
                db: str | None) -> tuple[int, int]:
    """Validate every case of ``path``, then store them in one transaction."""
    located = list(iter_located_cases(path, fmt, split=split, limit=limit))
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
    db: DbOption = None,
) -> None:
    """Import a case file. All or nothing; re-importing the same file changes nothing."""
    added, unchanged = import_file(path, fmt, split, limit, db)
    console.print(f"imported {added} new case(s) from {path} "
                  f"({unchanged} already stored unchanged)")


@cases_app.command("list")
@reports_errors
def cases_list(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    split: Annotated[str | None, typer.Option(help="Only this split.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most N rows.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Skip the first N.")] = 0,
    db: DbOption = None,
) -> None:
    """List stored cases."""
    with open_store(db) as store:
        total = store.count_cases(source=source, split=split)
        cases = store.list_cases(source=source, split=split, limit=limit, offset=offset)
    table = Table(title=f"{len(cases)} of {total} case(s)")
    for column in ("id", "split", "facts", "answer", "question"):
        table.add_column(column, overflow="ellipsis", no_wrap=column != "question")
    for case in cases:
        table.add_row(case.id, case.split or "-", str(len(case.facts)), ",".join(case.answer),
                      escape(case.question))
    console.print(table)


@cases_app.command("show")
@reports_errors
def cases_show(
    case_id: Annotated[str, typer.Argument(help="Case id, e.g. imedqa-0.")],
    policy: Annotated[PartialInfoPolicy, typer.Option(
        help="Partial-information policy to show.")] = DEFAULT_POLICY,
    db: DbOption = None,
) -> None:
    """Show one case, marking the facts the doctor knows at the start."""
    with open_store(db) as store:
        case = store.get_case(case_id)
    show_case(case, policy)


def show_case(case: Any, policy: PartialInfoPolicy) -> None:
    view = partial_view(case, policy)
    console.print(f"[bold]{case.id}[/] ({case.source}, {case.language}, split "
                  f"{case.split or '-'})")
    console.print(f"[bold]Question:[/] {escape(case.question)}")
    for letter, text in case.options.items():
        mark = "[green]*[/]" if letter in case.answer else " "
        console.print(f" {mark} {letter}. {escape(text)}", highlight=False)
    if view.given_text is not None:
        console.print(f"[bold]Given at start ({policy.value}):[/] {escape(view.given_text)}")
    table = Table(title=f"facts ({len(view.known_fact_ids)} of {len(case.facts)} known "
                        f"at start, policy {policy.value})")
    table.add_column("#", justify="right")
    table.add_column("known")
    table.add_column("fact")
    known = set(view.known_fact_ids)
    for i, fact in enumerate(case.facts):
        table.add_row(str(i), "yes" if i in known else "", escape(fact))
    console.print(table)


# -- db ----------------------------------------------------------------------------------

@db_app.command("upgrade")
@reports_errors
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
               db: DbOption = None) -> None:
    """Apply the schema migrations (the store also does this when it opens)."""
    from promed_agents.storage.database import make_engine, upgrade

    engine = make_engine(db)
    try:
        reached = upgrade(engine, revision)
    finally:
        engine.dispose()
    console.print(f"{engine.url.render_as_string(hide_password=True)} is at revision {reached}")


@db_app.command("current")
@reports_errors
def db_current(db: DbOption = None) -> None:
    """Print the schema revision of the database and the newest one known."""
    from promed_agents.storage.database import current_revision, head_revision, make_engine

    engine = make_engine(db)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    console.print(f"current: {current or '(empty database)'}; newest: {head_revision()}")


# -- traces ------------------------------------------------------------------------------

def _experiment_id(store: Any, experiment: str | None) -> int | None:
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
    from promed_agents.storage.trace_export import export_jsonl

    with open_store(db) as store:
        experiment_id = _experiment_id(store, experiment)
        with progress_bar(err_console) as progress:
            task = progress.add_task("exporting", total=store.count_episodes(
                experiment_id=experiment_id, status=status))
            count = export_jsonl(store, out, experiment_id=experiment_id, status=status,
                                 with_tokens=with_tokens,
                                 progress=lambda n: progress.advance(task, n))
    console.print(f"wrote {count} episode(s) to {out}")


# -- consult -------------------------------------------------------------------------------

@app.command("consult")
@reports_errors
def consult_command(
    cases: CasesOption = None,
    case_ids: CaseIdsOption = None,
    split: SplitOption = None,
    mode: Annotated[ConsultationMode, typer.Option(help="Ask first, or answer at once.")] =
    ConsultationMode.PROACTIVE,
    doctor: Annotated[str, typer.Option(help="Doctor model spec.")] = "local:smollm2",
    patient: Annotated[str, typer.Option(help="fact-select or llm:MODEL_SPEC.")] =
    "fact-select",
    max_questions: Annotated[int, typer.Option(min=0, help="Question budget.")] = 10,
    concurrency: Annotated[int, typer.Option(min=1, help="Consultations at once.")] = 8,
    experiment: Annotated[str | None, typer.Option(help="Experiment name (new).")] = None,
    policy: Annotated[PartialInfoPolicy, typer.Option(help="Partial-information policy.")] =
    DEFAULT_POLICY,
    temperature: Annotated[float, typer.Option(min=0.0, help="Doctor sampling.")] = 0.0,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Per doctor turn.")] = 64,
    checkpoints: Annotated[str | None, typer.Option(
        help="LangGraph checkpoints (makes the run resumable): a SQLite file, or a "
             "postgresql:// URL (postgres extra).")] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue --experiment from --checkpoints: finished cases are kept, "
             "interrupted ones resume (the same command with --experiment and "
             "--checkpoints resumes an existing run too).")] = False,
    sig_scorer: Annotated[str | None, typer.Option(
        help="Weigh facts by this scorer's stored Shapley values (SIG) [default: the "
             "doctor's model]; cases without values get uniform weights.")] = None,
    demonstration: DemonstrationOption = False,
    db: DbOption = None,
) -> None:
    """Run consultations on stored cases; every episode is recorded with its turns."""
    from promed_agents.consult_command import ConsultSettings, consult

    settings = ConsultSettings(
        cases=cases, case_ids=case_id_list(case_ids), split=split, mode=mode, doctor=doctor,
        patient=patient, max_questions=max_questions,
        concurrency=concurrency, experiment=experiment, policy=policy,
        temperature=temperature, max_new_tokens=max_new_tokens, checkpoints=checkpoints,
        resume=resume, sig_scorer=sig_scorer, demonstration=demonstration)
    with open_store(db) as store:
        consult(store, settings, console, err_console)


# -- demo --------------------------------------------------------------------------------

CHANCE_NOTE = (
    "Accuracy is at chance: SmolLM2-135M cannot use case information (option-likelihood "
    "accuracy 0.28 with all facts, 0.29 with none, 80 unseen iMedQA cases), so the demo "
    "shows asking (answerable share, facts acquired, SIG); accuracy gains need a stronger "
    "doctor and scorer (docs/scaling_out.md).")

@app.command("demo")
@reports_errors
def demo(
    doctor: Annotated[str, typer.Option(help="Doctor model spec; 'none' skips consulting.")]
    = "local:smollm2",
    cases: Annotated[int, typer.Option(min=1, help="Held-out cases evaluated.")] =
    DemoPlan.eval_cases,
    train_cases: Annotated[int, typer.Option(min=1, help="Cases searched and trained on.")]
    = DemoPlan.train_cases,
    max_questions: Annotated[int, typer.Option(min=0, help="Question budget.")] =
    DemoPlan.max_questions,
    sft_steps: Annotated[int, typer.Option(min=1, help="SFT steps.")] = DemoPlan.sft_steps,
    grpo_steps: Annotated[int, typer.Option(min=1, help="SIG-GRPO steps.")] =
    DemoPlan.grpo_steps,
    models: Annotated[Path, typer.Option(help="Where the trained models go.")] =
    Path("promed-demo-models"),
    report_file: Annotated[Path, typer.Option(
        "--report", help="Where the HTML report goes.")] = Path("promed-demo-report.html"),
    db: DbOption = None,
) -> None:
    """The whole pipeline, small, on the embedded model: import the bundled sample,
    Shapley values, proactive and reactive baselines, MCTS then SFT, SIG-GRPO, evaluation
    of the trained doctor, and an HTML report.

    Uses its own database, promed-demo.db, unless --db or PROMED_DB says otherwise."""
    db = db or DEMO_DB
    sample = bundled_sample_path()
    added, unchanged = import_file(sample, CaseFormat.AUTO, "sample", None, db)
    console.print(f"bundled sample: {added} case(s) added, {unchanged} already stored "
                  "(iMedQA from MediQ, CC BY 4.0)")
    with open_store(db) as store:
        groups = store.case_groups()
        first = store.list_cases(source="imedqa", split="sample", limit=1)
    table = Table(title=f"cases in {db}")
    for column in ("source", "split", "language", "cases", "facts", "facts/case"):
        table.add_column(column)
    for g in groups:
        table.add_row(g.source, g.split or "-", g.language, str(g.cases), str(g.facts),
                      f"{g.facts / g.cases:.1f}" if g.cases else "-")
    console.print(table)
    if first:
        show_case(first[0], PartialInfoPolicy.HALF_FACTS)
    if doctor == "none":
        return
    from promed_agents.atomic_file import atomic_writer
    from promed_agents.demo_pipeline import run_demo
    from promed_agents.eval_command import results_table
    from promed_agents.evaluation import relative_gain
    from promed_agents.report import build_report
    from promed_agents.storage import StoredWeights

    plan = DemoPlan(doctor=doctor, train_cases=train_cases, eval_cases=cases,
                    max_questions=max_questions, sft_steps=sft_steps, grpo_steps=grpo_steps,
                    models=models)
    started = time.perf_counter()
    with open_store(db) as store:
        result = run_demo(store, plan, console, err_console)
        with atomic_writer(report_file) as out:
            out.write(build_report(store, [*result.runs, *result.training_runs],
                                   weights_for=lambda spec: StoredWeights(store, spec)))
    runs, prefix = result.runs, f"{result.name}-"
    table = results_table({n.removeprefix(prefix): f for n, f in runs.items()}, escape(
        f"{result.name}: held-out cases, 95% bootstrap CI "
        f"({time.perf_counter() - started:.0f} s)"), runs.weighting())
    if doctor == "local:smollm2":
        table.caption = CHANCE_NOTE
    console.print(table)
    gain = relative_gain(runs[f"{prefix}base-reactive"], runs[f"{prefix}base-proactive"])
    console.print("relative accuracy gain of proactive over reactive (base): " + (
        "undefined (reactive accuracy 0)" if gain is None else
        f"{gain.mean:+.1%} [{gain.low:+.1%}, {gain.high:+.1%}]"))
    console.print(f"report: {escape(str(report_file.resolve()))}")


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
