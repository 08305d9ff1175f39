"""The consultation graph: doctor, patient and evaluator as LangGraph nodes.

case -> **consultation graph** -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

:func:`build_consultation_graph` returns an *uncompiled* ``StateGraph``: add nodes, change
edges, compile with the checkpointer you like. Models and settings travel in the runtime
context (:class:`ConsultationContext`), not in the state, so one compiled graph serves any
doctor, patient or evaluator. The state holds the doctor's conversation (``messages``,
with ``add_messages``), an explicit doctor-turn counter, the question budget used, the
facts acquired so far, and the turns as they will be stored.

Flow: ``start -> doctor -> ((patient | measurement) -> evaluate_reply -> doctor)* ->
evaluate_final``. A question goes to the patient; an open-ended case's test order
(``test: <name>``) goes to the measurement agent
(:class:`~promed_agents.agents.measurement.Measurement`), whose result the doctor is shown
as ``Result: ...`` and whose revealed facts are scored as a reply's. The doctor's rules
(format, budget, invalid turns) are in :mod:`promed_agents.agents.doctor`; an open-ended
case's diagnosis is judged by the evaluator's judge at the end.
"""

from __future__ import annotations

import asyncio
import operator
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy, default_retry_on

from promed_agents.agents.abstention import DEFAULT_THRESHOLD, Abstention
from promed_agents.agents.doctor import (
    DOCTOR_STOP,
    ConsultationSoFar,
    final_request,
    format_reminder,
    opening_messages,
    parse_doctor_turn,
    recover_answer,
)
from promed_agents.agents.evaluator import Evaluator
from promed_agents.agents.measurement import FactSelectMeasurement, Measurement
from promed_agents.agents.open_doctor import RESULT_PREFIX
from promed_agents.agents.patient import FactSelectPatient, Patient, PatientReply
from promed_agents.backends.token_metadata import token_metadata
from promed_agents.case import Case
from promed_agents.partial_view import PartialView
from promed_agents.question_repeats import repeats_earlier
from promed_agents.trace import (
    ConsultationMode,
    EpisodeStatus,
    Role,
    TurnKind,
    TurnRecord,
    Verdict,
)

DEFAULT_MAX_QUESTIONS = 10
STATE_TYPES = (("promed_agents.case", "Case"), ("promed_agents.partial_view", "PartialView"),
               ("promed_agents.partial_view", "PartialInfoPolicy"),
               ("promed_agents.trace", "TurnRecord"), ("promed_agents.trace", "Role"),
               ("promed_agents.trace", "TurnKind"), ("promed_agents.trace", "EpisodeStatus"),
               ("promed_agents.trace", "Verdict"), ("promed_agents.case", "FactSource"))
"""The classes a consultation state holds besides messages: what a checkpointer may
rebuild from a checkpoint (see :func:`checkpoint_serializer`), and nothing else."""
def retryable(error: Exception) -> bool:
    """What a model node retries: LangGraph's default (connection errors, 5xx, ...) plus
    timeouts, which LangGraph counts as ``OSError`` and would not retry."""
    return isinstance(error, TimeoutError) or default_retry_on(error)


MODEL_RETRY = RetryPolicy(max_attempts=3, initial_interval=0.2, max_interval=2.0,
                          retry_on=retryable)


def merge_turns(left: list[TurnRecord], right: list[TurnRecord]) -> list[TurnRecord]:
    """Reducer: a turn whose index exists replaces it (the evaluator adds the gain to a
    question after the reply); a new index is appended."""
    merged = list(left)
    for turn in right:
        if turn.index < len(merged):
            merged[turn.index] = turn
        else:
            assert turn.index == len(merged), "turns are added in order"
            merged.append(turn)
    return merged


class ConsultationState(TypedDict, total=False):
    """The state of one consultation as the graph's nodes read and write it.

    Given by the caller: ``case`` (the case, with its facts), ``view`` (what the doctor
    is shown at the start). Set by ``start``: ``messages`` (the doctor's conversation,
    LangChain messages, appended), ``turns`` (the recorded turns, :func:`merge_turns`),
    ``questions`` (questions asked so far, invalid turns included: each uses one of the
    budget), ``acquired`` (fact ids the doctor knows: the view's, then what replies
    disclosed), ``pending_question`` (the question the patient answers next; None when
    there is none), ``pending_test`` (an open-ended case's test order the measurement agent
    answers next; None when there is none), ``tests`` (test orders so far; each also uses
    one of the budget), ``final_requested`` (only an answer is allowed now),
    ``final_answer`` (the answered letters, or an open-ended case's diagnosis; None
    before), ``information_gain`` (summed SIG of the questions and test orders),
    ``started_at``, ``budget`` (the questions it may ask: drawn per
    consultation with :attr:`ConsultationContext.budget_range`, else ``max_questions``).
    Set when it ends: ``status`` (an
    :class:`~promed_agents.trace.EpisodeStatus`: ``completed`` with an answer, ``timeout``
    without one; absent while it runs), then by ``evaluate_final``: ``correct``,
    ``format_score``, ``fact_recall``, ``weighted_recall``, and for an open-ended case
    ``verdict`` (the judge's, :class:`~promed_agents.trace.Verdict`) and
    ``diagnosis_rouge`` (ROUGE-L F1 against the correct diagnosis). ``confidences`` (appended)
    holds MediQ's abstention estimates when that hook runs.

    The consultation ends when ``status`` is set; the doctor is asked for its final answer
    once ``questions`` reaches ``budget`` or a hook sets
    ``final_requested``. A question hook answers in the patient's stead with
    :func:`reply_instead`.
    """

    case: Case
    view: PartialView
    budget: int
    messages: Annotated[list[AnyMessage], add_messages]
    turns: Annotated[list[TurnRecord], merge_turns]
    questions: int
    acquired: list[int]
    pending_question: str | None
    pending_test: str | None
    tests: int
    final_requested: bool
    final_answer: list[str] | None
    status: EpisodeStatus
    correct: bool | None
    format_score: float
    fact_recall: float
    information_gain: float
    weighted_recall: float
    verdict: Verdict | None
    diagnosis_rouge: float | None
    confidences: Annotated[list[float], operator.add]
    started_at: datetime


def reply_instead(state: ConsultationState, text: str) -> dict[str, Any]:
    """A question hook's update that answers the pending question in the patient's stead:
    ``text`` recorded as the patient's reply (disclosing nothing), no question left for
    the patient, and the doctor goes next."""
    turn = TurnRecord(index=len(state["turns"]), role=Role.PATIENT, text=text,
                      kind=TurnKind.REPLY)
    return {"turns": [turn], "pending_question": None,
            "messages": [HumanMessage(f"Patient: {text}")]}


@dataclass
class ConsultationContext:
    """What a run needs besides the case: models, patient, measurement agent, evaluator
    (with its judge), budget."""

    doctor: BaseChatModel
    patient: Patient = field(default_factory=FactSelectPatient)
    measurement: Measurement = field(default_factory=FactSelectMeasurement)
    """Answers an open-ended case's test orders."""
    evaluator: Evaluator = field(default_factory=Evaluator)
    mode: ConsultationMode = ConsultationMode.PROACTIVE
    max_questions: int = DEFAULT_MAX_QUESTIONS
    doctor_kwargs: dict[str, Any] = field(default_factory=lambda: {"stop": list(DOCTOR_STOP)})
    demonstration: bool = False
    """Show the doctor a worked example consultation before the case (small models)."""
    model_timeout_s: float | None = None
    """Give up on a doctor or patient call after this long (TimeoutError, which the
    nodes' retry policy retries); None waits as long as the backend does."""
    budget_range: tuple[int, int] | None = None
    """A dynamic turn budget (DoctorAgent-RL's): each consultation draws its number of
    doctor turns T uniformly from this inclusive range (Python's ``random``, which a
    trainer's seed sets), may ask T - 1 questions, and the doctor sees "Turn t of T."
    before each turn; ``max_questions`` is then unused. None: the fixed budget."""


QuestionHook = (Callable[[ConsultationState], dict[str, Any]]
                | Callable[[ConsultationState, Runtime[ConsultationContext]],
                           Awaitable[dict[str, Any]]])
"""A node between a doctor's question and the patient: called with the state (and, if it
takes it, the runtime), it returns a state update: ``{}`` to let the question through, a
changed ``pending_question`` to rewrite it, or :func:`reply_instead` to answer it."""


def question_budget(state: ConsultationState, context: ConsultationContext) -> int:
    """The questions this consultation may ask: ``budget``, which ``start`` sets (drawn,
    or the context's ``max_questions``)."""
    return state.get("budget", context.max_questions)


def _start(state: ConsultationState, runtime: Runtime[ConsultationContext]) -> dict:
    proactive = runtime.context.mode is ConsultationMode.PROACTIVE
    drawn = runtime.context.budget_range
    budget = random.randint(*drawn) - 1 if drawn and proactive else \
        runtime.context.max_questions
    return {"budget": budget, "messages": opening_messages(state["case"], state["view"], proactive,
                                         runtime.context.demonstration),
            "turns": [], "questions": 0, "pending_question": None, "pending_test": None,
            "tests": 0,
            "acquired": list(state["view"].known_fact_ids), "final_requested": not proactive,
            "final_answer": None, "information_gain": 0.0,
            "started_at": datetime.now(timezone.utc)}


def _so_far(state: ConsultationState, final: bool) -> ConsultationSoFar:
    """The consultation as a case-reading doctor is told it (no prompt to parse)."""
    case, turns = state["case"], state["turns"]

    def said(kind: TurnKind) -> tuple[str, ...]:
        return tuple(q for t in turns if t.role is Role.DOCTOR and t.kind is kind
                     for q in [parse_doctor_turn(t.text, case).question] if q)

    return ConsultationSoFar(case=case, view=state["view"], asked=said(TurnKind.QUESTION),
                             ordered=said(TurnKind.TEST), final_requested=final,
                             replies=tuple(t.text for t in turns if t.role is not Role.DOCTOR))


async def _doctor(state: ConsultationState, runtime: Runtime[ConsultationContext]) -> dict:
    ctx = runtime.context
    update: dict[str, Any] = {}
    messages = list(state["messages"])
    final = state.get("final_requested", False)
    budget = question_budget(state, ctx)
    if not final and state["questions"] >= budget:
        final = True
        request = HumanMessage(final_request(state["case"]))
        messages.append(request)
        update["messages"] = [request]
    if ctx.budget_range is not None and ctx.mode is ConsultationMode.PROACTIVE:
        # a drawn budget: the doctor sees where it stands
        shown = HumanMessage(f"Turn {min(state['questions'], budget) + 1} of {budget + 1}.")
        messages.append(shown)
        update["messages"] = update.get("messages", []) + [shown]
    kwargs = ctx.doctor_kwargs
    if getattr(ctx.doctor, "reads_consultation", False):
        kwargs = {**kwargs, "consultation": _so_far(state, final)}
    started = time.perf_counter()
    reply = await asyncio.wait_for(ctx.doctor.ainvoke(messages, **kwargs),
                                   ctx.model_timeout_s)
    latency = time.perf_counter() - started
    text = str(reply.content)
    parsed = parse_doctor_turn(text, state["case"])
    late = final and parsed.kind in (TurnKind.QUESTION, TurnKind.TEST)
    if late:  # only an answer is allowed now
        parsed = replace(parsed, kind=TurnKind.INVALID, format_score=0.0)
    tokens = token_metadata(reply.response_metadata)
    turn = TurnRecord(index=len(state["turns"]), role=Role.DOCTOR, text=text, kind=parsed.kind,
                      prompt_token_ids=tokens.prompt_ids, token_ids=tokens.completion_ids,
                      logprobs=tokens.logprobs, latency_s=latency,
                      format_score=parsed.format_score, late_question=late)
    update.update(turns=[turn], final_requested=final,
                  messages=update.get("messages", []) + [AIMessage(text)])
    recovered = recover_answer(text, state["case"]) if final and \
        parsed.kind is TurnKind.INVALID else None
    if parsed.kind is TurnKind.ANSWER or recovered:
        update.update(final_answer=list(recovered or parsed.letters),
                      status=EpisodeStatus.COMPLETED)
    elif final:  # a question or an invalid turn when only an answer is allowed
        update.update(status=EpisodeStatus.TIMEOUT, pending_question=None)
    elif parsed.kind is TurnKind.QUESTION:
        update.update(questions=state["questions"] + 1, pending_question=parsed.question)
    elif parsed.kind is TurnKind.TEST:
        update.update(questions=state["questions"] + 1, tests=state.get("tests", 0) + 1,
                      pending_test=parsed.question, pending_question=None)
    else:
        update.update(questions=state["questions"] + 1, pending_question=None)
        update["messages"].append(HumanMessage(format_reminder(state["case"])))
    return update


def _route_question(next_node: str, doctor: str = "doctor"
                    ) -> Callable[[ConsultationState], str]:
    def route(state: ConsultationState) -> str:
        if state.get("status"):
            return "evaluate_final"
        if state.get("pending_test"):
            return "measurement"
        return next_node if state.get("pending_question") else doctor

    return route


async def _answer(state: ConsultationState, runtime: Runtime[ConsultationContext],
                  role: Role, reply: Awaitable[PatientReply], shown: str) -> dict:
    """The turn and the doctor's message of a patient's reply or a test's result."""
    started = time.perf_counter()
    said = await asyncio.wait_for(reply, runtime.context.model_timeout_s)
    turn = TurnRecord(index=len(state["turns"]), role=role, text=said.text,
                      kind=TurnKind.REPLY, disclosed_fact_ids=said.disclosed_fact_ids,
                      token_ids=said.token_ids, latency_s=time.perf_counter() - started)
    return {"turns": [turn], "messages": [HumanMessage(f"{shown}{said.text}")]}


async def _patient(state: ConsultationState, runtime: Runtime[ConsultationContext]) -> dict:
    reply = runtime.context.patient.reply(state["case"], state["pending_question"])
    return {**await _answer(state, runtime, Role.PATIENT, reply, "Patient: "),
            "pending_question": None}


async def _measurement(state: ConsultationState,
                       runtime: Runtime[ConsultationContext]) -> dict:
    result = runtime.context.measurement.order(state["case"], state["pending_test"])
    return {**await _answer(state, runtime, Role.MEASUREMENT, result, RESULT_PREFIX),
            "pending_test": None}


def _exchanges(turns: list[TurnRecord]) -> list[tuple[TurnRecord, TurnRecord]]:
    """(question or test order, reply or result) pairs so far."""
    return [(q, r) for q, r in zip(turns, turns[1:], strict=False)
            if q.kind in (TurnKind.QUESTION, TurnKind.TEST) and r.role is not Role.DOCTOR]


def _dialogue(turns: list[TurnRecord]) -> list[tuple[str, str]]:
    """(question, reply) texts so far, test orders and results included."""
    return [(q.text, r.text) for q, r in _exchanges(turns)]


async def _evaluate_reply(state: ConsultationState,
                          runtime: Runtime[ConsultationContext]) -> dict:
    reply, question = state["turns"][-1], state["turns"][-2]
    earlier = [q.text for q, _ in _exchanges(state["turns"][:-2]) if q.kind is question.kind]
    if repeats_earlier(question.text, earlier):  # a repeat acquires nothing
        return {"turns": [question.model_copy(update={"sig": 0.0})]}
    score = await runtime.context.evaluator.ascore_reply(
        state["case"], state["acquired"], reply.disclosed_fact_ids,
        state["view"].known_fact_ids, _dialogue(state["turns"]))
    return {"turns": [question.model_copy(update={"sig": score.gain})],
            "acquired": score.acquired,
            "information_gain": state.get("information_gain", 0.0) + score.gain}


async def _evaluate_final(state: ConsultationState,
                          runtime: Runtime[ConsultationContext]) -> dict:
    doctor_turns = [t for t in state["turns"] if t.role is Role.DOCTOR]
    score = await runtime.context.evaluator.ascore_final(
        state["case"], state.get("final_answer"), [t.format_score or 0.0 for t in doctor_turns],
        sum(1 for t in doctor_turns if t.kind is TurnKind.QUESTION), state["acquired"])
    return {"correct": score.correct, "format_score": score.format_score,
            "fact_recall": score.fact_recall, "weighted_recall": score.weighted_recall,
            "verdict": score.verdict, "diagnosis_rouge": score.diagnosis_rouge}


def checkpoint_serializer() -> Any:
    """LangGraph's serializer allowing exactly :data:`STATE_TYPES` (and LangGraph's own
    safe types) to be rebuilt from checkpoints: give it to a checkpointer as ``serde``."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    return JsonPlusSerializer(allowed_msgpack_modules=list(STATE_TYPES))


def build_consultation_graph(
    retry_policy: RetryPolicy | None = MODEL_RETRY,
    question_hooks: Sequence[tuple[str, QuestionHook]] = (),
    doctor_hooks: Sequence[tuple[str, Callable[..., Any]]] = (),
) -> StateGraph[ConsultationState, ConsultationContext]:
    """The consultation graph, uncompiled. Compile it, then run it with
    ``graph.ainvoke({"case": case, "view": view}, context=ConsultationContext(...))``.

    Args:
        retry_policy: how the doctor, patient and hook nodes retry a failed model call.
        question_hooks: nodes between a doctor's question and the patient (below).
        doctor_hooks: nodes before every doctor turn (below).

    ``question_hooks`` are ``(name, node)`` pairs (:data:`QuestionHook`) run in order
    between a doctor's question and the patient (a safety check, a question rewriter, a
    logger); one that returns :func:`reply_instead` answers in the patient's stead, and
    the doctor goes next (``examples/compose_graph.py``). ``doctor_hooks`` run in order
    before every doctor turn (MediQ's abstention,
    :class:`~promed_agents.agents.abstention.Abstention`, decides there whether the
    doctor may still ask: it sets ``final_requested``). Nodes can also be added after
    ``evaluate_final``.
    """
    graph = StateGraph(ConsultationState, context_schema=ConsultationContext)
    graph.add_node("start", _start)
    graph.add_node("doctor", _doctor, retry_policy=retry_policy)
    graph.add_node("patient", _patient, retry_policy=retry_policy)
    graph.add_node("measurement", _measurement, retry_policy=retry_policy)
    graph.add_node("evaluate_reply", _evaluate_reply)
    graph.add_node("evaluate_final", _evaluate_final)
    before = [name for name, _ in doctor_hooks] + ["doctor"]
    for name, node in doctor_hooks:
        graph.add_node(name, node, retry_policy=retry_policy)
    for name, next_node in zip(before, before[1:], strict=False):
        graph.add_edge(name, next_node)
    entry = before[0]
    graph.add_edge(START, "start")
    graph.add_edge("start", entry)
    chain = [name for name, _ in question_hooks] + ["patient"]
    for name, node in question_hooks:
        graph.add_node(name, node)
    graph.add_conditional_edges("doctor", _route_question(chain[0], entry),
                                [chain[0], "measurement", entry, "evaluate_final"])
    for name, next_node in zip(chain, chain[1:], strict=False):
        graph.add_conditional_edges(name, _route_question(next_node, entry),
                                    [next_node, "measurement", entry, "evaluate_final"])
    graph.add_edge("patient", "evaluate_reply")
    graph.add_edge("measurement", "evaluate_reply")
    graph.add_edge("evaluate_reply", entry)
    graph.add_edge("evaluate_final", END)
    return graph


def abstaining_consultation_graph(variant: str = "numerical",
                                  threshold: float = DEFAULT_THRESHOLD, **graph_options: Any
                                  ) -> StateGraph[ConsultationState, ConsultationContext]:
    """The consultation graph with MediQ's :class:`~promed_agents.agents.abstention.
    Abstention` before the doctor (uncompiled; ``graph_options`` go to
    :func:`build_consultation_graph`)."""
    hooks = [*graph_options.pop("doctor_hooks", ()),
             ("abstain", Abstention(variant, threshold))]
    return build_consultation_graph(doctor_hooks=hooks, **graph_options)
