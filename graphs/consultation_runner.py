"""Running consultations in bulk: many cases, bounded concurrency, one record per episode.

case -> **consultation graph (run)** -> trace in SQL -> Shapley/SIG -> training -> evaluation

:func:`arun_consultations` compiles the graph, runs the cases through
``abatch_as_completed`` with ``max_concurrency``, and turns each final state into an
:class:`~promed_agents.trace.EpisodeRecord`, handed to ``on_episode`` as soon as it
finishes (``promed_agents.storage.TraceRecorder`` writes it to the store). A case whose
graph still fails after the nodes' retries becomes a ``failed`` episode with the reason:
it never disappears.

Resuming: with a LangGraph checkpointer (``AsyncSqliteSaver``, ``AsyncPostgresSaver``,
``InMemorySaver``) each case runs in the thread ``"{experiment_id}-{case_id}-{position}"``.
Run the same cases again with the same experiment id and checkpointer, and a finished
thread is not run again: its episode is rebuilt from the checkpoint, while an interrupted
one (a crash, a node that failed for good) resumes from its last checkpoint. Finished
means no task is left at all: a thread whose last node saved its writes but not the next
checkpoint has no task left to *run* (LangGraph's ``next`` is empty) yet has not ended;
it resumes too, from those writes. Every episode
is handed to ``on_episode`` again (a process killed between a thread's last checkpoint and
its recording must not lose it) and carries its ``thread_id``: the store keeps one episode
per thread and experiment, so recording them again is a no-op, except that an episode
which had failed is replaced by its resumed one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from langgraph.graph import StateGraph

from promed_agents.agents.patient import LLMPatient
from promed_agents.backends import spec_name
from promed_agents.backends.chat_tokens import chat_messages
from promed_agents.case import Case
from promed_agents.errors import ConsultationError
from promed_agents.graphs.consultation import (
    ConsultationContext,
    ConsultationState,
    build_consultation_graph,
    question_budget,
)
from promed_agents.partial_view import DEFAULT_POLICY, PartialInfoPolicy, PartialView, partial_view
from promed_agents.trace import EpisodeRecord, EpisodeStatus, SamplingRecord

EpisodeSink = Callable[[EpisodeRecord], Any]


def patient_spec(context: ConsultationContext) -> str:
    patient = context.patient
    if isinstance(patient, LLMPatient):
        return f"llm:{spec_name(patient.model)}"
    return patient.name


def sampling_record(context: ConsultationContext) -> SamplingRecord:
    """How the doctor sampled, recorded with each episode: its spec, temperature and
    top-p (per call, else the model's own), and what its recorded logprobs are: the
    backend's ``logprobs_kind`` (``raw`` for the local backend: temperature-1
    log-probabilities of the unwarped policy; what a vLLM server said, with its own words
    in ``server_logprobs_mode``), else ``backend`` (whatever a server returned).
    Off-policy training reads it to tell which traces' logprobs are the behaviour
    policy's (:class:`~promed_agents.trainers.episode_sources.LoggedEpisodes`)."""
    doctor, kwargs = context.doctor, context.doctor_kwargs

    def setting(name: str) -> float | None:
        value = kwargs.get(name, getattr(doctor, name, None))
        return None if value is None else float(value)

    return SamplingRecord(doctor=spec_name(doctor), temperature=setting("temperature"),
                          top_p=setting("top_p"),
                          logprobs=str(getattr(doctor, "logprobs_kind", "backend")),
                          server_logprobs_mode=getattr(doctor, "server_logprobs_mode", None))


def _common(case: Case, view: PartialView, context: ConsultationContext, graph_name: str,
            experiment_id: int | None) -> dict[str, Any]:
    return dict(case_id=case.id, experiment_id=experiment_id, graph=graph_name,
                mode=context.mode, partial_policy=view.policy,
                known_fact_ids=view.known_fact_ids, doctor_spec=spec_name(context.doctor),
                patient_spec=patient_spec(context), evaluator_spec=context.evaluator.name)


def episode_from_state(state: ConsultationState, context: ConsultationContext,
                       graph_name: str = "consultation",
                       experiment_id: int | None = None) -> EpisodeRecord:
    """The trace of a finished consultation."""
    return EpisodeRecord(
        **_common(state["case"], state["view"], context, graph_name, experiment_id),
        status=EpisodeStatus(state.get("status") or EpisodeStatus.TIMEOUT.value),
        started_at=state.get("started_at"), finished_at=datetime.now(timezone.utc),
        final_answer=state.get("final_answer"), correct=state.get("correct"),
        max_questions=question_budget(state, context),
        format_score=state.get("format_score"), fact_recall=state.get("fact_recall"),
        weighted_recall=state.get("weighted_recall"),
        confidences=state.get("confidences") or [],
        information_gain=state.get("information_gain"),
        tests_ordered=state.get("tests", 0) if state["case"].open_ended else None,
        verdict=state.get("verdict"), diagnosis_rouge=state.get("diagnosis_rouge"),
        fact_weights=context.evaluator.weighting(state["case"]),
        sampling=sampling_record(context),
        doctor_messages=chat_messages(state.get("messages", [])),
        metadata={"doctor_kwargs": context.doctor_kwargs},
        turns=state.get("turns", []))


def failed_episode(case: Case, view: PartialView, context: ConsultationContext,
                   error: BaseException, graph_name: str = "consultation",
                   experiment_id: int | None = None) -> EpisodeRecord:
    now = datetime.now(timezone.utc)
    return EpisodeRecord(**_common(case, view, context, graph_name, experiment_id),
                         status=EpisodeStatus.FAILED,
                         failure_reason=f"{type(error).__name__}: {error}"[:2000],
                         started_at=now, finished_at=now,
                         max_questions=context.max_questions,
                         metadata={"doctor_kwargs": context.doctor_kwargs})


def recursion_limit(max_questions: int) -> int:
    """Graph steps a consultation may take: 3 per question, invalid turns, start, end,
    and room for a few hook nodes per turn."""
    return 6 * (max_questions + 2) + 10


def most_questions(context: ConsultationContext) -> int:
    """The most questions a consultation under ``context`` may ask."""
    drawn = context.budget_range
    return max(context.max_questions, drawn[1] - 1) if drawn else context.max_questions


async def arun_consultations(
    cases: Sequence[Case],
    context: ConsultationContext,
    *,
    policy: PartialInfoPolicy | str = DEFAULT_POLICY,
    concurrency: int = 8,
    graph: StateGraph | Any | None = None,
    graph_name: str = "consultation",
    checkpointer: Any = None,
    experiment_id: int | None = None,
    on_episode: EpisodeSink | None = None,
) -> list[EpisodeRecord]:
    """Run every case once; returns the episodes in the order of ``cases``.

    Args:
        cases: the cases consulted, each once.
        context: the models and settings (:class:`ConsultationContext`).
        policy: what the doctor is shown at the start (:func:`partial_view`'s policy).
        concurrency: consultations at once (a local doctor decodes their turns together).
        graph: the consultation graph, compiled or not [default:
            :func:`build_consultation_graph`].
        graph_name: recorded on each episode.
        checkpointer: a LangGraph checkpointer; with one, an interrupted run resumes
            (each case's thread is named by ``experiment_id`` and the case).
        experiment_id: recorded on each episode.
        on_episode: called with each episode as it ends (a
            :class:`~promed_agents.storage.TraceRecorder` stores it).
    """
    if concurrency < 1:
        raise ConsultationError(f"concurrency must be >= 1, got {concurrency}")
    if graph is None:
        graph = build_consultation_graph()
    compiled = graph.compile(checkpointer=checkpointer) if isinstance(graph, StateGraph) \
        else graph
    views = [partial_view(case, policy) for case in cases]
    inputs: list[dict | None] = [{"case": case, "view": view}
                                 for case, view in zip(cases, views, strict=True)]
    configs = [{"max_concurrency": concurrency,
                "recursion_limit": recursion_limit(most_questions(context)),
                "configurable": {"thread_id": f"{experiment_id}-{case.id}-{i}"}}
               for i, case in enumerate(cases)]
    episodes: list[EpisodeRecord | None] = [None] * len(cases)
    pending = list(range(len(cases)))
    durable = bool(getattr(compiled, "checkpointer", None))

    def deliver(index: int, episode: EpisodeRecord) -> None:
        if durable:
            episode = episode.model_copy(
                update={"thread_id": configs[index]["configurable"]["thread_id"]})
        episodes[index] = episode
        if on_episode is not None:
            on_episode(episode)

    if durable:
        pending = []
        for i, config in enumerate(configs):
            saved = await compiled.aget_state(config)
            if saved.values and not saved.tasks:  # finished in an earlier run
                deliver(i, episode_from_state(saved.values, context, graph_name,
                                              experiment_id))
                continue
            if saved.values:  # interrupted: resume from the last checkpoint
                inputs[i] = None
            pending.append(i)
    async for position, output in compiled.abatch_as_completed(
            [inputs[i] for i in pending], [configs[i] for i in pending],
            return_exceptions=True, context=context):
        index = pending[position]
        if isinstance(output, BaseException):
            deliver(index, failed_episode(cases[index], views[index], context, output,
                                          graph_name, experiment_id))
        else:
            deliver(index, episode_from_state(output, context, graph_name, experiment_id))
    return [e for e in episodes if e is not None]


def run_consultations(cases: Sequence[Case], context: ConsultationContext,
                      **kwargs: Any) -> list[EpisodeRecord]:
    """Synchronous :func:`arun_consultations`."""
    return asyncio.run(arun_consultations(cases, context, **kwargs))
