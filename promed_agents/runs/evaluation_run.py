"""An evaluation run: a doctor on a case set, per mode and seed, recorded.

case -> consultation graph -> trace in SQL -> ... -> checkpoint -> **evaluation**

:func:`run_evaluation` runs every case ``seeds`` times in each mode (seed s passed to the
doctor's sampler) and records the consultations as one run per mode (experiments
``NAME-proactive``, ``NAME-reactive``, kind ``eval``). It returns each run's per-case
figures (:class:`RunFigures`), from which :mod:`promed_agents.evaluation` gives means,
95% bootstrap intervals and paired differences. ``promed eval`` runs it and prints them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from promed_agents.agents.abstention import DEFAULT_THRESHOLD
from promed_agents.agents.doctor import doctor_sampling
from promed_agents.agents.judge import resolve_judge
from promed_agents.agents.measurement import resolve_measurement
from promed_agents.agents.patient_spec import resolve_patient
from promed_agents.agents.reference_doctors import known_cases, resolve_doctor
from promed_agents.backends.model_pool import shared_pool
from promed_agents.errors import ConsultationError
from promed_agents.evaluation import judging, per_case, run_status, sig_weighting
from promed_agents.graphs import (
    ConsultationContext,
    abstaining_consultation_graph,
    arun_consultations,
)
from promed_agents.knob import knob
from promed_agents.partial_view import PartialInfoPolicy
from promed_agents.runs.run_inputs import check_sig_scorer, evaluator_for, select_cases
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
from promed_agents.trace import ConsultationMode, EpisodeStatus

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

__all__ = ["EvalCommandConfig", "RunFigures", "run_evaluation"]

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
    """What an evaluation runs (``promed eval``); each field is the option of the same
    name."""

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
    policy: PartialInfoPolicy = policy_knob()
    judge: str = judge_knob()
    measurement: str = measurement_knob()
    abstain: str | None = knob(
        None, help="MediQ's abstaining doctor: before each turn the doctor rates its "
                   "confidence (numerical or scale) and asks only below "
                   "--abstain-threshold.")
    abstain_threshold: float = knob(
        DEFAULT_THRESHOLD, help="Confidence at which an abstaining doctor answers.",
        min=0.0, max=1.0)
    shared: bool = shared_knob()
    lease: float = lease_knob()


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
        self.judges: dict[str, str | None] = {}
        """Who judged each run's open-ended diagnoses (None: no open-ended case)."""

    def weighting(self) -> str:
        return " / ".join(sorted(set(self.weightings.values()))) or "unrecorded"

    def judging(self) -> str | None:
        """The judges of the runs' diagnoses, or None when there were none."""
        judges = sorted({j for j in self.judges.values() if j})
        return " / ".join(judges) or None


def run_evaluation(store: TraceStore, settings: EvalCommandConfig,
                   reporter: RunReporter | None = None) -> RunFigures:
    """Run and record every mode and seed; returns per-case figures by run name.

    Args:
        store: where the cases are read and the runs recorded.
        settings: the doctor, cases, modes, seeds and budgets; without ``experiment`` the
            runs are named ``eval-TIME-MODE``.
        reporter: where notes, warnings and progress go [default: the logger].

    A run whose every consultation failed raises :class:`ConsultationError`; an
    incomplete one is a warning and its failed consultations are left out. With
    ``shared``, every worker given the same settings joins the same runs, the cases and
    seeds are shared out among them, and each returns the whole runs' figures
    (:mod:`promed_agents.runs.shared_job`)."""
    from promed_agents.storage.trace_recorder import TraceRecorder

    reporter = reporter_or_default(reporter)
    if settings.shared and not settings.experiment:
        raise ConsultationError("--shared needs --experiment NAME: every worker names the "
                                "same run")
    if not settings.experiment:
        settings = replace(settings, experiment=f"eval-{time.strftime('%Y%m%d-%H%M%S')}")
    known = known_cases(store, settings.doctor)
    resolve_doctor(settings.doctor, known=known)  # bad specs fail before the store changes
    resolve_patient(settings.patient)
    resolve_judge(settings.judge)
    resolve_measurement(settings.measurement)
    graph = _graph(settings)
    check_sig_scorer(store, settings.sig_scorer)
    cases = select_cases(store, reporter, settings.cases, settings.case_ids, settings.split)
    doctor = resolve_doctor(settings.doctor, known)
    evaluator = evaluator_for(store, settings.sig_scorer, settings.doctor, cases, reporter,
                              judge=settings.judge)
    runs = RunFigures()
    worker, by_id = worker_name(), {c.id: c for c in cases}
    for mode in settings.modes:
        name = f"{settings.experiment}-{mode}"
        experiment_id = join_or_create(store, name, KIND, {
            **asdict(settings), "policy": settings.policy.value, "mode": mode, "kind": KIND,
            "case_ids": [c.id for c in cases], "evaluator": evaluator.name},
            shared=settings.shared)
        job = run_job(KIND, experiment_id)
        items = [f"{seed}:{case.id}" for seed in range(settings.seeds) for case in cases]
        recorder = TraceRecorder(store, experiment_id)
        with recorded_run(store, experiment_id, name,
                          "run the same command again (--experiment "
                          f"{settings.experiment}) to replace it"), \
                reporter.task(f"{mode} ({settings.doctor})", total=len(items)) as progress:

            def run_items(claimed: list[str], mode: str = mode, job: str = job,
                          experiment_id: int = experiment_id, recorder: Any = recorder,
                          progress: Any = progress) -> None:
                for seed in sorted({int(item.split(":", 1)[0]) for item in claimed}):
                    batch = [by_id[item.split(":", 1)[1]] for item in claimed
                             if item.startswith(f"{seed}:")]

                    def on_episode(episode: Any, seed: int = seed) -> None:
                        # one episode per case and seed, whichever worker records it
                        recorder(episode.model_copy(update={
                            "thread_id": f"{experiment_id}-{episode.case_id}-seed{seed}"}))
                        store.finish_work(job, f"{seed}:{episode.case_id}", worker)
                        progress.advance()

                    context = ConsultationContext(
                        doctor=doctor, patient=resolve_patient(settings.patient),
                        measurement=resolve_measurement(settings.measurement),
                        mode=ConsultationMode(mode), evaluator=evaluator,
                        max_questions=settings.max_questions,
                        demonstration=settings.demonstration,
                        doctor_kwargs={**doctor_sampling(
                            doctor, max_new_tokens=settings.max_new_tokens,
                            temperature=settings.temperature), "seed": seed})
                    asyncio.run(arun_consultations(
                        batch, context, policy=settings.policy,
                        concurrency=settings.concurrency, graph=graph,
                        experiment_id=experiment_id, on_episode=on_episode))

            # alone, one claim of everything: its consultations stream through the
            # concurrency slots as before; shared, a batch at a time leaves the rest to others
            work_through(store, job, items, run_items, lease_s=settings.lease,
                         limit=settings.concurrency if settings.shared else len(items))
            episodes = list(store.iter_episodes(experiment_id))  # every worker's
            status, reason = run_status(episodes)
            store.finish_experiment(experiment_id, status, reason)
        check_run_status(name, status, reason, reporter)  # a failed run stops here
        runs[name] = per_case(episodes)
        runs.weightings[name] = sig_weighting(episodes)
        runs.judges[name] = judging(episodes)
        runs.failed[name] = sum(e.status is EpisodeStatus.FAILED for e in episodes)
    if settings.doctor.startswith("local:"):  # loaded again (0.1 s) if used again
        shared_pool().release(settings.doctor)  # an evaluated doctor's weights go with it
    return runs
