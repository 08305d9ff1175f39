"""Stored training data, checkpoints and training curves: SFT datasets exported from
searches, trained checkpoints registered with what they were trained on, the metrics of
each training step of a run.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS -> **SFT data** ->
**checkpoints**, **GRPO metrics** -> evaluation

:class:`TrainingRecords` is part of :class:`~promed_agents.storage.TraceStore`. A dataset
and all its samples are written in one transaction; a sample keeps the readable turns
(``messages``), the exact token ids and loss mask it trains on, its episode and weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from promed_agents.errors import NotFoundError, TrainingError
from promed_agents.redaction import redacted
from promed_agents.storage.models import (
    CheckpointRow,
    EpisodeRow,
    TrainingDatasetRow,
    TrainingMetricRow,
    TrainingSampleRow,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class TrainingSample:
    """One training sequence: ``input_ids`` with ``assistant_masks`` (1 on the tokens
    the loss is taken on), from episode ``episode_id``."""

    input_ids: list[int]
    assistant_masks: list[int]
    messages: list[dict[str, str]] = field(default_factory=list)
    episode_id: int | None = None
    weight: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.assistant_masks):
            raise ValueError(f"{len(self.assistant_masks)} mask entries for "
                             f"{len(self.input_ids)} tokens")


@dataclass(frozen=True)
class CheckpointRecord:
    id: int
    path: str
    base_model_spec: str
    step: int
    metrics: dict[str, Any]
    experiment_id: int | None
    dataset_id: int | None


class TrainingRecords:
    """Training dataset and checkpoint methods of the trace store."""

    def _session(self) -> Session:  # provided by TraceStore
        raise NotImplementedError

    def save_training_dataset(self, name: str, kind: str, samples: Sequence[TrainingSample],
                              experiment_id: int | None = None,
                              config: dict[str, Any] | None = None) -> int:
        """Store a dataset and its samples in one transaction; its name must be new."""
        with self._session() as session:
            try:
                with session.begin():
                    row = TrainingDatasetRow(name=name, kind=kind, experiment_id=experiment_id,
                                             config=redacted(config or {}))
                    session.add(row)
                    session.flush()
                    if samples:
                        session.execute(insert(TrainingSampleRow.__table__), [
                            dict(dataset_id=row.id, index=i, episode_id=s.episode_id,
                                 messages=s.messages, weight=s.weight,
                                 extra={**s.extra, "input_ids": s.input_ids,
                                        "assistant_masks": s.assistant_masks})
                            for i, s in enumerate(samples)])
            except IntegrityError:
                raise TrainingError(f"a training dataset named {name!r} already exists; "
                                    "choose another name") from None
            return row.id

    def training_dataset_config(self, name: str) -> dict[str, Any]:
        """The settings the dataset called ``name`` was made with."""
        with self._session() as session:
            config = session.scalar(select(TrainingDatasetRow.config)
                                    .where(TrainingDatasetRow.name == name))
        if config is None:
            raise NotFoundError(f"no training dataset named {name!r}")
        return dict(config)

    def load_training_dataset(self, name: str) -> tuple[int, list[TrainingSample]]:
        """``(id, samples)`` of the dataset called ``name``, samples in order."""
        with self._session() as session:
            dataset = session.scalar(select(TrainingDatasetRow)
                                     .where(TrainingDatasetRow.name == name))
            if dataset is None:
                raise NotFoundError(f"no training dataset named {name!r}")
            rows = session.scalars(select(TrainingSampleRow).where(
                TrainingSampleRow.dataset_id == dataset.id)
                .order_by(TrainingSampleRow.index)).all()
        samples = []
        for row in rows:
            extra = dict(row.extra)
            samples.append(TrainingSample(
                input_ids=extra.pop("input_ids"), assistant_masks=extra.pop("assistant_masks"),
                messages=row.messages, episode_id=row.episode_id, weight=row.weight,
                extra=extra))
        return dataset.id, samples

    def register_checkpoint(self, path: str, base_model_spec: str, step: int,
                            metrics: dict[str, Any] | None = None,
                            experiment_id: int | None = None,
                            dataset_id: int | None = None) -> int:
        """Record the trained model at ``path``; registering the same path again (a run
        that stopped between registering and its receipt, then reran) updates that row."""
        with self._session() as session, session.begin():
            row = session.scalars(select(CheckpointRow).where(CheckpointRow.path == path)
                                  .order_by(CheckpointRow.id.desc())).first()
            if row is None:
                row = CheckpointRow(path=path)
                session.add(row)
            row.base_model_spec, row.step, row.metrics = base_model_spec, step, metrics or {}
            row.experiment_id, row.dataset_id = experiment_id, dataset_id
            session.flush()
            return row.id

    def list_checkpoints(self, dataset_id: int | None = None) -> list[CheckpointRecord]:
        with self._session() as session:
            query = select(CheckpointRow).order_by(CheckpointRow.id)
            if dataset_id is not None:
                query = query.where(CheckpointRow.dataset_id == dataset_id)
            return [CheckpointRecord(r.id, r.path, r.base_model_spec, r.step, r.metrics,
                                     r.experiment_id, r.dataset_id)
                    for r in session.scalars(query)]

    def save_training_metrics(self, experiment_id: int, step: int,
                              metrics: dict[str, float]) -> None:
        """Store the metrics of training step ``step`` of run ``experiment_id``; a step
        logged again (a run resumed from an earlier checkpoint) replaces the old row."""
        with self._session() as session, session.begin():
            session.execute(delete(TrainingMetricRow).where(
                TrainingMetricRow.experiment_id == experiment_id,
                TrainingMetricRow.step == step))
            session.add(TrainingMetricRow(experiment_id=experiment_id, step=step,
                                          metrics=dict(metrics)))

    def rewind_training_run(self, experiment_id: int, step: int) -> tuple[int, int]:
        """Forget what run ``experiment_id`` recorded after its optimizer step ``step``,
        in one transaction: the rollouts sampled at step ``step`` or later and the metrics
        of later steps. A run resumed from the checkpoint of step ``step`` redoes those
        steps, so without this a killed run would leave them twice. Returns
        ``(episodes, metric rows)`` removed."""
        with self._session() as session, session.begin():
            episodes = session.execute(delete(EpisodeRow).where(
                EpisodeRow.experiment_id == experiment_id,
                EpisodeRow.training_step >= step)).rowcount
            metrics = session.execute(delete(TrainingMetricRow).where(
                TrainingMetricRow.experiment_id == experiment_id,
                TrainingMetricRow.step > step)).rowcount
            return episodes, metrics

    def training_metrics(self, experiment_id: int) -> list[tuple[int, dict[str, float]]]:
        """``(step, metrics)`` of every logged step of run ``experiment_id``, in step order."""
        with self._session() as session:
            rows = session.scalars(select(TrainingMetricRow).where(
                TrainingMetricRow.experiment_id == experiment_id)
                .order_by(TrainingMetricRow.step))
            return [(row.step, dict(row.metrics)) for row in rows]
