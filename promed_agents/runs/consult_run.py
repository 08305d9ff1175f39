"""A consult run: consultations of stored cases, every episode recorded.

case -> **consultation graph** -> **trace in SQL** -> Shapley/SIG -> training -> evaluation

:func:`run_consult` picks cases from the store (importing the bundled sample into an
empty store), builds the models from their specs, runs the graph with bounded
concurrency, records each episode in its own transaction, and returns them. With
``checkpoints``, running the same settings again (same ``experiment``) resumes it:
finished consultations are kept, interrupted ones go on from their last checkpoint; with
``shared``, workers on one store share the cases out. ``promed consult`` runs it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from promed_agents.agents.doctor import doctor_sampling
from promed_agents.agents.judge import resolve_judge
from promed_agents.agents.measurement import resolve_measurement
from promed_agents.agents.patient_spec import resolve_patient
from promed_agents.agents.reference_doctors import known_cases, resolve_doctor
from promed_agents.errors import ConsultationError
from promed_agents.evaluation import run_status
from promed_agents.graphs import ConsultationContext, arun_consultations
from promed_agents.graphs.checkpointer import check_checkpointer, checkpointer
from promed_agents.knob import knob
from promed_agents.partial_view import PartialInfoPolicy
from promed_agents.redaction import redacted, without_password
from promed_agents.runs.run_inputs import (
    check_sig_scorer,
    evaluator_for,
    refuse_store_file,
    select_cases,
)
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
from promed_agents.runs.run_lifecycle import check_run_status, recorded_run
from promed_agents.runs.run_reporter import RunReporter, reporter_or_default
from promed_agents.runs.shared_job import (
    join_or_create,
    lease_knob,
    run_job,
    shared_knob,
    work_through,
    worker_name,
)
from promed_agents.trace import ConsultationMode, EpisodeRecord

if TYPE_CHECKING:
    from promed_agents.case import Case
    from promed_agents.graphs.consultation_runner import EpisodeSink
    from promed_agents.storage import TraceStore

__all__ = ["ConsultCommandConfig", "ConsultResult", "run_consult"]


@dataclass(frozen=True)
class ConsultCommandConfig:
    """What ``promed consult`` runs; each field is the option of the same name."""

    cases: int | None = cases_knob()
    case_ids: Sequence[str] = case_ids_knob()
    split: str | None = split_knob()
    mode: ConsultationMode = knob(ConsultationMode.PROACTIVE,
                                  help="Ask first, or answer at once.")
    doctor: str = doctor_knob()
    patient: str = patient_knob()
    max_questions: int = max_questions_knob()
    concurrency: int = knob(8, help="Consultations at once.", min=1)
    experiment: str | None = knob(None, help="Experiment name (new).")
    policy: PartialInfoPolicy = policy_knob()
    temperature: float = knob(0.0, help="Doctor sampling temperature.", min=0.0)
    max_new_tokens: int = max_new_tokens_knob()
    checkpoints: str | None = knob(
        None, help="LangGraph checkpoints (makes the run resumable): a SQLite file, or a "
                   "postgresql:// URL (postgres extra).")
    resume: bool = knob(
        False, help="Continue --experiment from --checkpoints: finished cases are kept, "
                    "interrupted ones resume (the same command with --experiment and "
                    "--checkpoints resumes an existing run too).")
    sig_scorer: str | None = knob(
        None, help="Weigh facts by this scorer's stored Shapley values (SIG) [default: the "
                   "doctor's model]; cases without values get uniform weights.")
    demonstration: bool = demonstration_knob()
    judge: str = judge_knob()
    measurement: str = measurement_knob()
    shared: bool = shared_knob()
    lease: float = lease_knob()


@dataclass(frozen=True)
class ConsultResult:
    experiment: str
    experiment_id: int
    episodes: list[EpisodeRecord]
    status: str
    """``complete`` or ``incomplete`` (a failed run raises)."""
    seconds: float


def _resumable(store: TraceStore, settings: ConsultCommandConfig) -> bool:
    """Whether ``--experiment`` names a run that kept its checkpoints where
    ``--checkpoints`` says: then running the same command again resumes it."""
    from promed_agents.errors import NotFoundError

    if not (settings.experiment and settings.checkpoints):
        return False
    try:
        _, saved = store.experiment_config(settings.experiment)
    except NotFoundError:
        return False
    where = without_password(settings.checkpoints)
    if not saved.get("checkpoints"):
        raise ConsultationError(f"experiment {settings.experiment!r} exists and kept no "
                                "checkpoints, so it cannot be resumed; choose another "
                                "--experiment name")
    if saved.get("checkpoints") != where:
        raise ConsultationError(
            f"experiment {settings.experiment!r} exists and kept its checkpoints in "
            f"{saved.get('checkpoints')!r}, not {where!r}; give those --checkpoints to "
            "resume it, or another --experiment name")
    return True


RESUMED_SETTINGS = ("mode", "doctor", "patient", "max_questions", "policy", "temperature",
                    "max_new_tokens", "sig_scorer", "demonstration", "judge",
                    "measurement")
"""What a resumed run must be given as it was stored: its consultations go on under them."""


def _check_resumed(saved: dict, settings: ConsultCommandConfig) -> None:
    """Refuse to resume a run under other settings than it was started with."""
    given = {k: (v.value if hasattr(v, "value") else v) for k, v in settings.__dict__.items()}
    for key in RESUMED_SETTINGS:
        if key in saved and saved[key] != redacted(given[key]):
            flag = "--" + key.replace("_", "-")
            raise ConsultationError(
                f"experiment {settings.experiment!r} ran with {flag} {saved[key]}, not "
                f"{redacted(given[key])}; give the same settings to resume it, or another "
                "--experiment name")


def run_consult(store: TraceStore, settings: ConsultCommandConfig,
                reporter: RunReporter | None = None) -> ConsultResult:
    """Run the consultations ``settings`` describe, recording each episode in ``store``.

    Args:
        store: where the cases are read and the run and its episodes recorded.
        settings: the cases, models and budget (``promed consult``'s options).
        reporter: where notes and progress go [default: the logger].

    Returns the run's episodes (a shared run's: every worker's) and how it ended; a
    failed run raises :class:`~promed_agents.errors.ConsultationError`, an incomplete one
    is a warning."""
    from promed_agents.storage.trace_recorder import TraceRecorder

    reporter = reporter_or_default(reporter)
    refuse_store_file(store, settings.checkpoints)
    if settings.shared and not settings.experiment:
        raise ConsultationError("--shared needs --experiment NAME: every worker names the "
                                "same run")
    if settings.resume:
        if not settings.experiment:
            raise ConsultationError("--resume needs --experiment NAME (the run to continue)")
        if not settings.checkpoints:
            raise ConsultationError("--resume needs --checkpoints PATH (where the run kept "
                                    "its LangGraph checkpoints)")
        store.experiment_config(settings.experiment)  # it exists, before anything is made
    resume = settings.resume or _resumable(store, settings)
    if settings.checkpoints:  # an unusable location fails before the store changes
        check_checkpointer(settings.checkpoints)
    if resume:
        experiment_id, saved = store.experiment_config(settings.experiment)
        _check_resumed(saved, settings)
        cases = [store.get_case(case_id) for case_id in saved.get("case_ids", [])]
    known = known_cases(store, settings.doctor)
    resolve_doctor(settings.doctor, known=known)  # bad specs fail before the store changes
    patient = resolve_patient(settings.patient)
    resolve_judge(settings.judge)
    measurement = resolve_measurement(settings.measurement)
    check_sig_scorer(store, settings.sig_scorer)
    if not resume:
        cases = select_cases(store, reporter, settings.cases, settings.case_ids,
                             settings.split)
    doctor = resolve_doctor(settings.doctor, known)
    context = ConsultationContext(
        doctor=doctor, patient=patient, measurement=measurement, mode=settings.mode,
        evaluator=evaluator_for(store, settings.sig_scorer, settings.doctor, cases, reporter,
                                judge=settings.judge),
        max_questions=settings.max_questions, demonstration=settings.demonstration,
        doctor_kwargs=doctor_sampling(doctor, max_new_tokens=settings.max_new_tokens,
                                      temperature=settings.temperature))
    name = settings.experiment or (f"consult-{settings.mode.value}-"
                                   f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-"
                                   f"{uuid.uuid4().hex[:4]}")
    config = {k: (v.value if hasattr(v, "value") else v) for k, v in settings.__dict__.items()}
    config["case_ids"] = [c.id for c in cases]
    config["evaluator"] = context.evaluator.name
    config["checkpoints"] = without_password(settings.checkpoints)
    if resume:
        store.finish_experiment(experiment_id, "running")
    else:
        experiment_id = join_or_create(store, name, "consult", config,
                                       shared=settings.shared)
    rerun = f"the same command with --experiment {name}"
    how = (f"run {rerun} and --checkpoints to resume it" if settings.checkpoints
           else f"run {rerun} to replace it")
    recorder = TraceRecorder(store, experiment_id)
    started = time.perf_counter()
    with recorded_run(store, experiment_id, name, how), \
            reporter.task(f"consulting ({settings.doctor})", total=len(cases)) as progress:

        def on_episode(episode: EpisodeRecord) -> None:
            recorder(episode)
            progress.advance()

        async def run(batch: list[Case], sink: EpisodeSink) -> list[EpisodeRecord]:
            kwargs = dict(policy=settings.policy, concurrency=settings.concurrency,
                          experiment_id=experiment_id, on_episode=sink)
            if not settings.checkpoints:
                return await arun_consultations(batch, context, **kwargs)
            async with checkpointer(settings.checkpoints) as saver:
                return await arun_consultations(batch, context, checkpointer=saver, **kwargs)

        if settings.shared:  # cases shared out; the whole run read back from the store
            job, by_id, worker = run_job("consult", experiment_id), \
                {c.id: c for c in cases}, worker_name()

            def on_shared(episode: EpisodeRecord) -> None:  # one episode per case
                on_episode(episode.model_copy(update={
                    "thread_id": f"{experiment_id}-{episode.case_id}"}))
                store.finish_work(job, episode.case_id, worker)

            work_through(store, job, list(by_id), lambda claimed: asyncio.run(run(
                [by_id[c] for c in claimed], on_shared)), limit=settings.concurrency,
                lease_s=settings.lease)
            episodes = list(store.iter_episodes(experiment_id))
        else:
            episodes = asyncio.run(run(cases, on_episode))
        status, reason = run_status(episodes)
        store.finish_experiment(experiment_id, status, reason)
    check_run_status(name, status, reason, reporter)
    return ConsultResult(name, experiment_id, episodes, status,
                         time.perf_counter() - started)
