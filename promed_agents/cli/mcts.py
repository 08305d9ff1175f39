"""``promed mcts``: search consultations with SIG-guided MCTS and store the trees.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> **MCTS** -> SFT -> evaluation

The commands behind the CLI entries: pick cases as ``promed consult`` does, build the
doctor, patient and SIG evaluator from their specs, and run
:func:`promed_agents.trainers.mcts_search.run_mcts` with a progress bar. Running the same
command again with the same ``--experiment`` resumes the search: finished iterations are
in the store, the dialogue states in the LangGraph checkpoints (``--checkpoints``, by
default a SQLite file beside a SQLite store, or the PostgreSQL store itself).
``promed mcts show CASE --experiment NAME`` prints a case's tree.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from promed_agents.agents.doctor import doctor_sampling
from promed_agents.agents.evaluator import Evaluator
from promed_agents.agents.patient_spec import resolve_patient
from promed_agents.agents.reference_doctors import known_cases, resolve_doctor
from promed_agents.backends import resolve_chat_model
from promed_agents.cli.config_options import config_command, knob, knob_from
from promed_agents.cli.options import (
    DbOption,
    case_ids_knob,
    cases_knob,
    console,
    demonstration_knob,
    doctor_knob,
    err_console,
    max_new_tokens_knob,
    max_questions_knob,
    open_store,
    patient_knob,
    refuse_store_file,
    reports_errors,
    select_cases,
    shown,
    split_knob,
)
from promed_agents.cli.progress_bar import progress_bar
from promed_agents.cli.run_lifecycle import recorded_run
from promed_agents.errors import ConsultationError, NotFoundError
from promed_agents.graphs import ConsultationContext
from promed_agents.graphs.checkpointer import check_checkpointer, checkpointer
from promed_agents.redaction import without_password
from promed_agents.trainers.mcts_search import ConsultationEnvironment, MCTSConfig, run_mcts

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from promed_agents.case import Case
    from promed_agents.storage import TraceStore

KIND = "mcts"


@dataclass(frozen=True)
class MCTSCommandConfig:
    """What ``promed mcts`` runs; each field is the option of the same name."""

    experiment: str | None = knob(
        None, help="Name of the search; an existing one is resumed.")
    cases: int | None = cases_knob()
    case_ids: Sequence[str] = case_ids_knob()
    split: str | None = split_knob()
    doctor: str = doctor_knob()
    patient: str = patient_knob()
    iterations: int = knob_from(MCTSConfig, "iterations", min=1)
    width: int = knob_from(MCTSConfig, "width", min=1)
    exploration: float = knob_from(MCTSConfig, "exploration", min=0.0)
    decay: float = knob_from(MCTSConfig, "decay", min=1e-6, max=1.0)
    correct_bonus: float = knob_from(MCTSConfig, "correct_bonus")
    temperature: float = knob(1.0, help="Doctor sampling temperature.", min=0.0)
    max_new_tokens: int = max_new_tokens_knob()
    max_questions: int = max_questions_knob()
    concurrency: int = knob(8, help="Cases searched at once.", min=1)
    weight_temperature: float = knob(
        1.0, help="Softmax temperature of the SIG weights (reference: 1.0 in MCTS).",
        min=1e-6)
    sig_scorer: str | None = knob(
        None, help="Whose stored Shapley values weigh facts [default: the doctor].")
    checkpoints: str | None = knob(
        None, help="LangGraph checkpoints (SQLite path or postgresql:// URL) [default: "
                   "beside the store].")
    demonstration: bool = demonstration_knob()
    proposer: str | None = knob(
        "bank", help="Who writes candidate turns besides the doctor: bank (the question "
                     "bank in its best order, no model call), bank:similar (the bank ranked "
                     "for each case by the searched cases most like it), a model spec (a "
                     "stronger searcher), or none (the doctor only).")
    proposer_ratio: float = knob_from(MCTSConfig, "proposer_ratio", min=0.0, max=1.0)
    seed: int = knob_from(MCTSConfig, "seed")


def default_checkpoints(store_url: str) -> str:
    """Where a search keeps its LangGraph checkpoints unless told: the PostgreSQL store
    itself, or a SQLite file beside the SQLite store."""
    from sqlalchemy.engine import make_url

    url = make_url(store_url)
    if url.get_backend_name() == "postgresql":
        return store_url
    path = url.database
    if not path or path == ":memory:":
        raise ConsultationError("an in-memory store cannot keep a resumable search; give "
                                "--checkpoints PATH or a database file")
    return f"{path.rsplit('.', 1)[0] if path.endswith('.db') else path}.mcts-checkpoints.sqlite"


def _check_kind(store: TraceStore, name: str) -> None:
    """Refuse a run of that name that is not a search."""
    try:
        _, saved = store.experiment_config(name)
    except NotFoundError:
        return
    if saved.get("kind") != KIND:
        raise ConsultationError(f"experiment {name!r} exists and is not an MCTS search; "
                                "choose another --experiment name")


def _experiment(store: TraceStore, settings: MCTSCommandConfig, console: Console
                ) -> tuple[int, list[Any]]:
    """The experiment to run (created, or resumed when it exists) and its cases."""
    try:
        experiment_id, saved = store.experiment_config(settings.experiment)
    except NotFoundError:
        cases = select_cases(store, console, settings.cases, settings.case_ids,
                             settings.split)
        config = {**asdict(settings), "case_ids": [c.id for c in cases], "kind": KIND,
                  "checkpoints": without_password(settings.checkpoints)}
        return store.create_experiment(settings.experiment, KIND, config,
                                       status="running"), cases
    done = store.search_progress(experiment_id)
    console.print(f"resuming search {shown(settings.experiment)}: {len(done)} of "
                  f"{len(saved['case_ids'])} cases started")
    return experiment_id, [store.get_case(case_id) for case_id in saved["case_ids"]]


SEARCHED_SIMILAR = "bank:similar"
"""The proposer that ranks the bank for each case by the searched cases most like it."""


def _proposer(store: TraceStore, spec: str | None, cases: Sequence[Case]
              ) -> BaseChatModel | None:
    """The search's proposer: none, or a doctor spec; plain ``bank:similar`` reads the
    searched cases (each case without itself), ``bank:similar:SPLIT`` a store split."""
    if not spec or spec == "none":
        return None
    known = cases if spec == SEARCHED_SIMILAR else known_cases(store, spec)
    return resolve_doctor(spec, known=known)


def search(store: TraceStore, settings: MCTSCommandConfig, console: Console,
           progress_console: Console) -> list[Any]:
    """Run (or resume) the search ``settings`` describe; returns the per-case reports."""
    from promed_agents.storage import StoredWeights

    if not settings.experiment:
        raise ConsultationError("name the search with --experiment NAME, so that it can be "
                                "resumed and trained from")
    config = MCTSConfig(iterations=settings.iterations, width=settings.width,
                        exploration=settings.exploration, decay=settings.decay,
                        correct_bonus=settings.correct_bonus,
                        proposer_ratio=settings.proposer_ratio, seed=settings.seed)
    doctor = resolve_chat_model(settings.doctor)  # bad specs fail before the store changes
    if settings.proposer != SEARCHED_SIMILAR:  # bad specs fail before the store changes
        _proposer(store, settings.proposer, [])
    resolve_patient(settings.patient)
    refuse_store_file(store, settings.checkpoints)
    # The real URL (with its password) is used, never printed; an unusable location
    # fails before the store changes.
    where = settings.checkpoints or default_checkpoints(
        store.engine.url.render_as_string(hide_password=False))
    _check_kind(store, settings.experiment)  # before the checkpoints file is made
    check_checkpointer(where)
    experiment_id, cases = _experiment(store, settings, console)
    proposer = _proposer(store, settings.proposer, cases)
    store.finish_experiment(experiment_id, "running")
    scorer = settings.sig_scorer or settings.doctor
    weights = StoredWeights(store, scorer, temperature=settings.weight_temperature)
    with_values = sum(weights.has_values(case) for case in cases)
    console.print(f"SIG from stored Shapley values ({shown(scorer)}, T="
                  f"{settings.weight_temperature:g}) for {with_values} of {len(cases)} "
                  "cases; uniform weights for the rest")
    context = ConsultationContext(
        doctor=doctor, patient=resolve_patient(settings.patient),
        evaluator=Evaluator(weights=weights, name=f"sig:{scorer}"),
        max_questions=settings.max_questions, demonstration=settings.demonstration,
        doctor_kwargs=doctor_sampling(doctor, max_new_tokens=settings.max_new_tokens,
                                      temperature=settings.temperature))
    done = store.search_progress(experiment_id)
    started = time.perf_counter()
    with recorded_run(store, experiment_id, settings.experiment,
                      "run the same command again to resume it"), \
            progress_bar(progress_console) as progress:
        task = progress.add_task(f"MCTS ({settings.doctor})",
                                 total=len(cases) * settings.iterations,
                                 completed=sum(min(done.get(c.id, 0), settings.iterations)
                                               for c in cases))

        async def run() -> list[Any]:
            async with checkpointer(where) as saver:
                env = ConsultationEnvironment(
                    context, saver, config, experiment_id=experiment_id, proposer=proposer,
                    proposer_kwargs=None if proposer is None else doctor_sampling(
                        proposer, max_new_tokens=settings.max_new_tokens,
                        temperature=settings.temperature))
                return await run_mcts(cases, env, store, experiment_id, config,
                                      settings.concurrency,
                                      on_iteration=lambda _: progress.advance(task))

        reports = asyncio.run(run())
        failed = [r for r in reports if r.error]
        store.finish_experiment(
            experiment_id, "complete" if not failed else
            "failed" if len(failed) == len(reports) else "incomplete",
            f"{len(failed)} of {len(reports)} cases failed; the first: {failed[0].error}"
            if failed else None)
    console.print(report_table(reports, time.perf_counter() - started, settings.experiment))
    failed = [r for r in reports if r.error]
    for report in failed:
        err_console.print(f"[red]case {shown(report.case_id)} failed:[/] "
                          f"{shown(report.error or '')}; rerun the command to resume it")
    return reports


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
    with open_store(db) as store:
        reports = search(store, settings, console, err_console)
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
