"""A search run: SIG-guided MCTS over consultations, recorded and resumable.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> **MCTS** -> SFT -> evaluation

:func:`run_search` picks cases as every run does, builds the doctor, patient and SIG
evaluator from their specs, and runs :func:`promed_agents.trainers.mcts_search.run_mcts`.
Running it again with the same ``experiment`` resumes the search: finished iterations
are in the store, the dialogue states in the LangGraph checkpoints (``checkpoints``, by
default a SQLite file beside a SQLite store, or the PostgreSQL store itself). ``promed
mcts`` runs it and prints the per-case table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from promed_agents.agents.doctor import doctor_sampling
from promed_agents.agents.evaluator import Evaluator
from promed_agents.agents.judge import resolve_judge
from promed_agents.agents.measurement import resolve_measurement
from promed_agents.agents.patient_spec import resolve_patient
from promed_agents.agents.reference_doctors import known_cases, resolve_doctor
from promed_agents.backends import resolve_chat_model
from promed_agents.errors import ConsultationError, NotFoundError, TraceError
from promed_agents.graphs import ConsultationContext
from promed_agents.graphs.checkpointer import check_checkpointer, checkpointer
from promed_agents.knob import knob, knob_from
from promed_agents.partial_view import PartialInfoPolicy
from promed_agents.redaction import without_password
from promed_agents.runs.run_inputs import refuse_store_file, select_cases
from promed_agents.runs.run_knobs import (
    case_ids_knob,
    cases_knob,
    demonstration_knob,
    doctor_knob,
    judge_knob,
    max_new_tokens_knob,
    max_questions_knob,
    measurement_knob,
    patient_knob,
    policy_knob,
    split_knob,
)
from promed_agents.runs.run_lifecycle import recorded_run
from promed_agents.runs.run_reporter import RunReporter, reporter_or_default
from promed_agents.runs.shared_job import (
    lease_knob,
    run_job,
    shared_knob,
    work_through,
    worker_name,
)
from promed_agents.trainers.mcts_search import (
    ConsultationEnvironment,
    MCTSConfig,
    SearchReport,
    run_mcts,
)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from promed_agents.case import Case
    from promed_agents.storage import TraceStore

__all__ = ["MCTSCommandConfig", "SEARCHED_SIMILAR", "default_checkpoints", "run_search"]

KIND = "mcts"


@dataclass(frozen=True)
class MCTSCommandConfig:
    """What a search runs (``promed mcts``); each field is the option of the same name."""

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
    policy: PartialInfoPolicy = policy_knob()
    judge: str = judge_knob()
    measurement: str = measurement_knob()
    proposer: str | None = knob(
        "bank", help="Who writes candidate turns besides the doctor: bank (the question "
                     "bank in its best order, no model call), bank:similar (the bank ranked "
                     "for each case by the searched cases most like it), a model spec (a "
                     "stronger searcher), or none (the doctor only).")
    proposer_ratio: float = knob_from(MCTSConfig, "proposer_ratio", min=0.0, max=1.0)
    seed: int = knob_from(MCTSConfig, "seed")
    shared: bool = shared_knob()
    lease: float = lease_knob()


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


def _experiment(store: TraceStore, settings: MCTSCommandConfig, reporter: RunReporter
                ) -> tuple[int, list[Any]]:
    """The experiment to run (created, or resumed when it exists) and its cases."""
    try:
        experiment_id, saved = store.experiment_config(settings.experiment)
    except NotFoundError:
        cases = select_cases(store, reporter, settings.cases, settings.case_ids,
                             settings.split)
        config = {**asdict(settings), "case_ids": [c.id for c in cases], "kind": KIND,
                  "checkpoints": without_password(settings.checkpoints)}
        try:
            made = store.create_experiment(settings.experiment, KIND, config,
                                           status="running")
            store.clear_work(run_job(KIND, made))  # a new search starts an empty queue
            return made, cases
        except TraceError:  # another worker of a shared search made it first
            experiment_id, saved = store.experiment_config(settings.experiment)
    done = store.search_progress(experiment_id)
    reporter.note(f"resuming search {settings.experiment}: {len(done)} of "
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


def run_search(store: TraceStore, settings: MCTSCommandConfig,
               reporter: RunReporter | None = None) -> list[SearchReport]:
    """Run (or resume) the search ``settings`` describe; returns the per-case reports.

    Args:
        store: where the cases are read and the trees recorded.
        settings: the search, named by ``experiment`` (a stored one is resumed).
        reporter: where notes, warnings and progress go [default: the logger].

    A case whose search failed has its report's ``error`` set (and a warning); the run is
    recorded ``incomplete``, or ``failed`` where every case failed. With ``shared``,
    workers given the same search share its cases out (whole cases per claim), each
    reports the cases it searched, and the trees of all are in the store
    (:mod:`promed_agents.runs.shared_job`)."""
    from promed_agents.storage import StoredWeights

    reporter = reporter_or_default(reporter)

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
    judge = resolve_judge(settings.judge)
    measurement = resolve_measurement(settings.measurement)
    refuse_store_file(store, settings.checkpoints)
    # The real URL (with its password) is used, never printed; an unusable location
    # fails before the store changes.
    where = settings.checkpoints or default_checkpoints(
        store.engine.url.render_as_string(hide_password=False))
    _check_kind(store, settings.experiment)  # before the checkpoints file is made
    check_checkpointer(where)
    experiment_id, cases = _experiment(store, settings, reporter)
    proposer = _proposer(store, settings.proposer, cases)
    store.finish_experiment(experiment_id, "running")
    scorer = settings.sig_scorer or settings.doctor
    weights = StoredWeights(store, scorer, temperature=settings.weight_temperature)
    with_values = sum(weights.has_values(case) for case in cases)
    reporter.note(f"SIG from stored Shapley values ({without_password(scorer)}, T="
                  f"{settings.weight_temperature:g}) for {with_values} of {len(cases)} "
                  "cases; uniform weights for the rest")
    context = ConsultationContext(
        doctor=doctor, patient=resolve_patient(settings.patient), measurement=measurement,
        evaluator=Evaluator(weights=weights, name=f"sig:{scorer}", judge=judge),
        max_questions=settings.max_questions, demonstration=settings.demonstration,
        doctor_kwargs=doctor_sampling(doctor, max_new_tokens=settings.max_new_tokens,
                                      temperature=settings.temperature))
    done = store.search_progress(experiment_id)
    started = time.perf_counter()
    with recorded_run(store, experiment_id, settings.experiment,
                      "run the same command again to resume it"), \
            reporter.task(f"MCTS ({settings.doctor})", total=len(cases) * settings.iterations,
                          completed=sum(min(done.get(c.id, 0), settings.iterations)
                                        for c in cases)) as progress:

        async def search(batch: list[Any]) -> list[SearchReport]:
            async with checkpointer(where) as saver:
                env = ConsultationEnvironment(
                    context, saver, config, experiment_id=experiment_id, proposer=proposer,
                    policy=settings.policy,
                    proposer_kwargs=None if proposer is None else doctor_sampling(
                        proposer, max_new_tokens=settings.max_new_tokens,
                        temperature=settings.temperature))
                return await run_mcts(batch, env, store, experiment_id, config,
                                      settings.concurrency,
                                      on_iteration=lambda _: progress.advance())

        if settings.shared:  # whole cases per claim; each worker reports its own
            reports: list[SearchReport] = []
            # a job per iteration target: resuming with more iterations is new work
            job = f"{run_job(KIND, experiment_id)}:{settings.iterations}"
            by_id, worker = {c.id: c for c in cases}, worker_name()

            def search_claimed(claimed: list[str]) -> None:
                for report in asyncio.run(search([by_id[c] for c in claimed])):
                    reports.append(report)
                    store.finish_work(job, report.case_id, worker)

            work_through(store, job, list(by_id), search_claimed,
                         limit=settings.concurrency, lease_s=settings.lease)
        else:
            reports = asyncio.run(search(cases))
        failed = [r for r in reports if r.error]
        ended_elsewhere = settings.shared and not failed and \
            store.experiment(settings.experiment).status != "running"
        if not ended_elsewhere:  # (another worker recorded a failure of its cases)
            store.finish_experiment(
                experiment_id, "complete" if not failed else
                "failed" if len(failed) == len(reports) else "incomplete",
                f"{len(failed)} of {len(reports)} cases failed; the first: "
                f"{failed[0].error}" if failed else None)
    reporter.note(f"MCTS {settings.experiment}: {len(reports) - len(failed)} of "
                  f"{len(reports)} case(s) searched in {time.perf_counter() - started:.0f} s")
    for report in failed:
        reporter.warn(f"case {report.case_id} failed: {report.error}; rerun the command "
                      "to resume it")
    return reports
