"""SQLAlchemy ORM tables of the trace store.

case -> consultation graph -> **trace in SQL** -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

Tables: cases and their facts; experiments (runs, with their config); episodes (one
consultation each) and their turns; Shapley values of facts; MCTS search trees (one row per
node); training datasets and their samples; checkpoints; per-step training metrics. JSON
columns are portable (JSON on SQLite, JSONB on PostgreSQL); per-token arrays are packed
binary and timestamps UTC-aware on every backend (see
:mod:`promed_agents.storage.column_types`).
The schema is created and changed only by the Alembic migrations in ``migrations/``;
a test checks that they match these models.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from promed_agents.storage.column_types import PackedArray, UtcDateTime

Json = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: Json, list[Any]: Json}


class CaseRow(Base):
    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), index=True)
    language: Mapped[str] = mapped_column(String(16))
    split: Mapped[str | None] = mapped_column(String(64), index=True)
    question: Mapped[str] = mapped_column(Text)
    options: Mapped[dict[str, Any]]
    answer: Mapped[list[Any]]
    diagnosis: Mapped[str | None] = mapped_column(Text)
    recommendation: Mapped[str | None] = mapped_column(Text)
    initial_fact_ids: Mapped[list[Any] | None]
    context: Mapped[list[Any]]
    demographics: Mapped[dict[str, Any] | None]
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    facts: Mapped[list[FactRow]] = relationship(
        back_populates="case", order_by="FactRow.index", cascade="all, delete-orphan")


class FactRow(Base):
    __tablename__ = "facts"
    __table_args__ = (UniqueConstraint("case_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(16))
    """``patient`` or ``measurement`` (:class:`~promed_agents.case.FactSource`); None: not
    said by the source."""
    path: Mapped[str | None] = mapped_column(Text)

    case: Mapped[CaseRow] = relationship(back_populates="facts")


class ExperimentRow(Base):
    """One run of something (rollouts, MCTS, GRPO, an evaluation), with its config."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]]
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    status: Mapped[str | None] = mapped_column(String(16))
    """How the run ended: complete, incomplete or failed (None: not recorded)."""
    status_reason: Mapped[str | None] = mapped_column(Text)


class EpisodeRow(Base):
    __tablename__ = "episodes"
    __table_args__ = (
        Index("ix_episodes_experiment_case", "experiment_id", "case_id"),
        # one episode per checkpointer thread and run: a resumed run records each once
        Index("ix_episodes_experiment_thread", "experiment_id", "thread_id", unique=True),
        Index("ix_episodes_experiment_step", "experiment_id", "training_step"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    graph: Mapped[str] = mapped_column(String(128))
    mode: Mapped[str] = mapped_column(String(32))
    partial_policy: Mapped[str] = mapped_column(String(32))
    known_fact_ids: Mapped[list[Any]]
    doctor_spec: Mapped[str] = mapped_column(String(256))
    patient_spec: Mapped[str | None] = mapped_column(String(256))
    evaluator_spec: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), index=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    duration_s: Mapped[float | None] = mapped_column(Float)
    num_turns: Mapped[int] = mapped_column(Integer)
    num_questions: Mapped[int] = mapped_column(Integer)
    final_answer: Mapped[list[Any] | None]
    correct: Mapped[bool | None] = mapped_column(Boolean)
    total_reward: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    extra: Mapped[dict[str, Any]]
    thread_id: Mapped[str | None] = mapped_column(String(200))
    training_step: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    turns: Mapped[list[TurnRow]] = relationship(
        back_populates="episode", order_by="TurnRow.index", cascade="all, delete-orphan",
        passive_deletes=True)


class TurnRow(Base):
    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("episode_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(16))
    prompt_token_ids: Mapped[list[int] | None] = mapped_column(PackedArray("int32"))
    token_ids: Mapped[list[int] | None] = mapped_column(PackedArray("int32"))
    logprobs: Mapped[list[float] | None] = mapped_column(PackedArray("float32"))
    token_rewards: Mapped[list[float] | None] = mapped_column(PackedArray("float32"))
    disclosed_fact_ids: Mapped[list[Any]]
    reward: Mapped[float | None] = mapped_column(Float)
    sig: Mapped[float | None] = mapped_column(Float)
    format_score: Mapped[float | None] = mapped_column(Float)
    latency_s: Mapped[float | None] = mapped_column(Float)
    late_question: Mapped[bool | None] = mapped_column(Boolean)

    episode: Mapped[EpisodeRow] = relationship(back_populates="turns")


class ShapleyValueRow(Base):
    """The Shapley value of one fact of one case, under one scorer and estimator."""

    __tablename__ = "shapley_values"
    __table_args__ = (UniqueConstraint("case_id", "scorer_spec", "method", "fact_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    scorer_spec: Mapped[str] = mapped_column(String(256))
    method: Mapped[str] = mapped_column(String(64))
    fact_index: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    weight: Mapped[float] = mapped_column(Float)
    temperature: Mapped[float] = mapped_column(Float)
    samples: Mapped[int] = mapped_column(Integer)
    std_error: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class WorkClaimRow(Base):
    """One item of a shared job (a case to score or consult), and which worker has it."""

    __tablename__ = "work_claims"

    job: Mapped[str] = mapped_column(String(512), primary_key=True)
    item: Mapped[str] = mapped_column(String(256), primary_key=True)
    worker: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class SearchNodeRow(Base):
    """One node of an MCTS search over a case's consultations: the dialogue state after a
    doctor turn (the root: before the first), as a LangGraph checkpoint."""

    __tablename__ = "search_nodes"
    __table_args__ = (Index("ix_search_nodes_experiment_case", "experiment_id", "case_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("search_nodes.id", ondelete="CASCADE"))
    depth: Mapped[int] = mapped_column(Integer)
    thread_id: Mapped[str] = mapped_column(String(256))
    checkpoint_id: Mapped[str] = mapped_column(String(128))
    turn_text: Mapped[str | None] = mapped_column(Text)
    turn_kind: Mapped[str | None] = mapped_column(String(16))
    reward: Mapped[float] = mapped_column(Float)
    sig: Mapped[float | None] = mapped_column(Float)
    disclosed_fact_ids: Mapped[list[Any]]
    terminal: Mapped[bool] = mapped_column(Boolean)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    visits: Mapped[float] = mapped_column(Float)
    value_sum: Mapped[float] = mapped_column(Float)
    episode_id: Mapped[int | None] = mapped_column(ForeignKey("episodes.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class TrainingDatasetRow(Base):
    __tablename__ = "training_datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    experiment_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiments.id", ondelete="SET NULL"))
    config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class TrainingSampleRow(Base):
    __tablename__ = "training_samples"
    __table_args__ = (UniqueConstraint("dataset_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("training_datasets.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    episode_id: Mapped[int | None] = mapped_column(ForeignKey("episodes.id", ondelete="SET NULL"))
    messages: Mapped[list[Any]]
    weight: Mapped[float | None] = mapped_column(Float)
    extra: Mapped[dict[str, Any]]


class CheckpointRow(Base):
    __tablename__ = "model_checkpoints"  # not "checkpoints": LangGraph's table

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiments.id", ondelete="SET NULL"))
    dataset_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_datasets.id", ondelete="SET NULL"))
    path: Mapped[str] = mapped_column(Text)
    base_model_spec: Mapped[str] = mapped_column(String(256))
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class TrainingMetricRow(Base):
    """The logged metrics of one training step of a run (an experiment)."""

    __tablename__ = "training_metrics"
    __table_args__ = (UniqueConstraint("experiment_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
