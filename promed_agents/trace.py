"""Trace records: one consultation as it crosses from a graph into the store.

case -> consultation graph -> **trace** -> SQL -> Shapley/SIG -> training -> evaluation

A consultation graph produces an :class:`EpisodeRecord` with its :class:`TurnRecord` list;
``promed_agents.storage.TraceStore.record_episode`` writes it in one transaction, and
trainers read the same records back. Token ids and log-probabilities are the doctor
policy's, kept so that RL can recompute ratios without re-tokenising.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from promed_agents.partial_view import PartialInfoPolicy


class Role(str, Enum):
    """Who wrote a turn: the doctor, the patient, or the measurement agent (the result of
    an open-ended case's test order)."""

    DOCTOR = "doctor"
    PATIENT = "patient"
    MEASUREMENT = "measurement"


class TurnKind(str, Enum):
    """What a turn was parsed as. Doctor turns are a question, an answer (an open-ended
    case's: a diagnosis), a test order (open-ended cases) or invalid."""

    QUESTION = "question"
    ANSWER = "answer"
    INVALID = "invalid"
    REPLY = "reply"
    TEST = "test"


class EpisodeStatus(str, Enum):
    """How a consultation ended: with an answer, without one, or with an error."""

    COMPLETED = "completed"
    TIMEOUT = "timeout"
    FAILED = "failed"


class ConsultationMode(str, Enum):
    PROACTIVE = "proactive"
    REACTIVE = "reactive"


class TurnRecord(BaseModel):
    """One message of a consultation."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, description="Position in the episode, from 0, without gaps.")
    role: Role
    text: str
    kind: TurnKind | None = None
    prompt_token_ids: list[int] | None = Field(
        default=None, description="Doctor turns: the token ids of the prompt it answered.")
    token_ids: list[int] | None = Field(default=None, description="Policy token ids.")
    logprobs: list[float] | None = Field(default=None, description="Per-token log-probs.")
    disclosed_fact_ids: list[int] = Field(
        default_factory=list, description="Facts newly known to the doctor after this turn.")
    reward: float | None = Field(default=None, description="Scalar reward of the turn.")
    token_rewards: list[float] | None = Field(default=None, description="Per-token rewards.")
    sig: float | None = Field(default=None, description="Shapley Information Gain of a question.")
    format_score: float | None = Field(
        default=None, description="Doctor turns: 1 well-formed, 0.5 marker not first, 0 invalid.")
    latency_s: float | None = Field(default=None, ge=0)
    late_question: bool | None = Field(default=None, description=(
        "Doctor turns: a question asked after the final request, when only an answer was "
        "allowed (recorded as invalid); None in traces recorded before it was kept."))

    @model_validator(mode="after")
    def _token_arrays_align(self) -> TurnRecord:
        n = None if self.token_ids is None else len(self.token_ids)
        for name in ("logprobs", "token_rewards"):
            values = getattr(self, name)
            if values is not None and n is not None and len(values) != n:
                raise ValueError(f"{name} has {len(values)} entries but token_ids has {n}")
            if values is not None and n is None:
                raise ValueError(f"{name} given without token_ids")
        return self


class SamplingRecord(BaseModel):
    """How the doctor sampled a consultation, and what its recorded logprobs are."""

    model_config = ConfigDict(extra="allow")

    doctor: str | None = Field(default=None, description="The doctor's spec.")
    temperature: float | None = Field(
        default=None, description="Per call, else the model's own; None: not known.")
    top_p: float | None = None
    logprobs: str | None = Field(default=None, description=(
        "``raw``: temperature-1 log-probabilities of the unwarped policy (the local "
        "backend, or a vLLM server that said it returns raw logprobs); ``processed``: "
        "after the server's temperature and top-p (a vLLM server that said so); "
        "``backend``: whatever a server returned, unsaid."))
    server_logprobs_mode: str | None = Field(default=None, description=(
        "What a vLLM server said its logprobs are (its ``logprobs_mode`` at "
        "``/server_info``); None: not a server, or it did not say."))


class Verdict(BaseModel):
    """A judge's verdict on an open-ended case's diagnosis
    (:mod:`promed_agents.agents.judge`), kept with the episode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    correct: bool
    score: float = Field(ge=0.0, le=1.0, description="1 right, 0 wrong; an F1 in between.")
    judge: str = Field(description="The judge's spec, e.g. ``rouge:0.5``.")
    detail: str | None = Field(default=None, description="What an LLM judge said.")


class ChatMessage(BaseModel):
    """One message of the doctor's conversation, as its chat template takes it."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(description="``system``, ``user`` or ``assistant``.")
    content: str
    example: bool = Field(default=False, description=(
        "A message of the worked example shown before the case, not of the consultation."))


OUTCOME_FIELDS = ("max_questions", "format_score", "fact_recall", "weighted_recall",
                  "information_gain", "fact_weights", "confidences", "sampling",
                  "doctor_messages", "imported_from", "tests_ordered", "verdict",
                  "diagnosis_rouge")
"""Typed fields of :class:`EpisodeRecord` that the store keeps, as before they were
fields, as keys of the episode's metadata JSON (so stored and exported JSON are unchanged
and older traces load into the fields)."""


class EpisodeRecord(BaseModel):
    """One consultation of one case, with its turns, as stored."""

    model_config = ConfigDict(extra="forbid")

    id: int | None = Field(default=None, description="Assigned by the store.")
    case_id: str
    experiment_id: int | None = None
    graph: str = Field(description="Name of the consultation graph that ran it.")
    mode: ConsultationMode = ConsultationMode.PROACTIVE
    partial_policy: PartialInfoPolicy = PartialInfoPolicy.HALF_FACTS
    known_fact_ids: list[int] = Field(default_factory=list)
    doctor_spec: str
    patient_spec: str | None = None
    evaluator_spec: str | None = None
    status: EpisodeStatus = EpisodeStatus.COMPLETED
    failure_reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    final_answer: list[str] | None = None
    correct: bool | None = None
    total_reward: float | None = None
    max_questions: int | None = Field(
        default=None, description="The question budget the consultation ran under.")
    format_score: float | None = Field(
        default=None, description="Mean format score of the doctor's turns (1 well formed).")
    fact_recall: float | None = Field(
        default=None, description="Share of the case's facts the doctor knew at the end.")
    weighted_recall: float | None = Field(
        default=None, description="The same, each fact weighted by its Shapley weight.")
    information_gain: float | None = Field(
        default=None, description="SIG of the consultation: the sum of its questions' SIG.")
    fact_weights: str | None = Field(default=None, description=(
        "How SIG weighed the facts: the Shapley values' scorer, or ``uniform``."))
    confidences: list[float] = Field(default_factory=list, description=(
        "An abstaining doctor's confidence before each turn (MediQ's abstention)."))
    sampling: SamplingRecord | None = Field(
        default=None, description="How the doctor sampled (off-policy training reads it).")
    doctor_messages: list[ChatMessage] = Field(default_factory=list, description=(
        "The doctor's conversation as it was prompted: system message, worked example, "
        "case, then every message after it (its turns, replies, reminders), so that it can "
        "be rendered in any model's chat template; empty in traces recorded before it "
        "was kept."))
    imported_from: str | None = Field(default=None, description=(
        "Where an imported consultation was recorded (its source: a dataset, another "
        "framework, a human log); it has no token ids or logprobs. None: run here."))
    tests_ordered: int | None = Field(default=None, description=(
        "Open-ended cases: the test orders the doctor gave the measurement agent "
        "(SDBench's tests per episode); None for multiple-choice cases."))
    verdict: Verdict | None = Field(default=None, description=(
        "Open-ended cases: the judge's verdict on the diagnosis, with the judge's spec "
        "(``correct`` is its ``correct``); None for multiple-choice cases and episodes "
        "without a diagnosis."))
    diagnosis_rouge: float | None = Field(default=None, description=(
        "Open-ended cases: ROUGE-L F1 of the diagnosis against the case's (DoctorAgent-RL's "
        "score; 0 without a diagnosis), whatever the judge; None for multiple-choice cases."))
    metadata: dict[str, Any] = Field(default_factory=dict, description=(
        "Anything else a graph or trainer records (doctor_kwargs, a search's proposer)."))
    thread_id: str | None = Field(default=None, description=(
        "The LangGraph checkpointer thread it ran in, when it ran with one; the store keeps "
        "one episode per thread and experiment, so a resumed run records each once."))
    training_step: int | None = Field(default=None, description=(
        "The optimizer step a training rollout was sampled at (resumed training drops the "
        "rollouts of steps it redoes)."))
    turns: list[TurnRecord] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _outcome_from_metadata(cls, data: Any) -> Any:
        """Traces stored before the outcome had fields keep it in ``metadata``: lift it."""
        if isinstance(data, dict) and isinstance(data.get("metadata"), dict):
            lifted = {k: v for k, v in data["metadata"].items()
                      if k in OUTCOME_FIELDS and data.get(k) is None and v is not None}
            if lifted:
                rest = {k: v for k, v in data["metadata"].items() if k not in OUTCOME_FIELDS}
                data = {**data, **lifted, "metadata": rest}
        return data

    def stored_metadata(self) -> dict[str, Any]:
        """The metadata JSON the store writes: ``metadata`` and the outcome fields."""
        outcome = self.model_dump(include=set(OUTCOME_FIELDS), exclude_none=True)
        for name in ("confidences", "doctor_messages"):
            if not getattr(self, name):
                outcome.pop(name, None)
        return {**self.metadata, **outcome}

    @model_validator(mode="after")
    def _consistent(self) -> EpisodeRecord:
        for position, turn in enumerate(self.turns):
            if turn.index != position:
                raise ValueError(
                    f"turn indices must run 0..{len(self.turns) - 1} in order; position "
                    f"{position} has index {turn.index}")
        if self.status is EpisodeStatus.FAILED and not self.failure_reason:
            raise ValueError("a failed episode needs a failure_reason")
        if self.started_at and self.finished_at and self.finished_at < self.started_at:
            raise ValueError("finished_at is before started_at")
        return self

    @property
    def num_questions(self) -> int:
        return sum(1 for t in self.turns if t.role is Role.DOCTOR and t.kind is TurnKind.QUESTION)

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
