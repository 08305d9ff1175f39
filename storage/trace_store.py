"""The trace store: the one door to the database.

case -> consultation graph -> **trace in SQL** -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

:class:`TraceStore` imports cases, records consultations (one transaction per episode) and
answers the queries trainers and reports need. Nothing else in ProMed Agents opens a
database session. Opening a store applies any pending migrations.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from promed_agents.errors import NotFoundError, TraceError
from promed_agents.redaction import redacted, without_password
from promed_agents.storage.case_records import CaseRecords
from promed_agents.storage.column_types import SQL_INT_MAX, row_limit, row_offset
from promed_agents.storage.database import (
    database_failure,
    ensure_schema,
    is_driver_failure,
    make_engine,
)
from promed_agents.storage.models import EpisodeRow, ExperimentRow, TurnRow
from promed_agents.storage.search_records import SearchRecords
from promed_agents.storage.shapley_records import ShapleyRecords
from promed_agents.storage.training_records import TrainingRecords
from promed_agents.storage.work_claims import WorkClaims
from promed_agents.trace import EpisodeRecord, EpisodeStatus, TurnRecord


@dataclass(frozen=True)
class ExperimentSummary:
    id: int
    name: str
    kind: str
    created_at: datetime
    status: str | None = None
    """complete, incomplete (some consultations failed) or failed (all of them); None
    while running or when the run did not record it."""
    status_reason: str | None = None


@dataclass(frozen=True)
class EpisodeSummary:
    """One stored consultation without its turns, as listings show it."""

    id: int
    case_id: str
    experiment_id: int | None
    graph: str
    mode: str
    partial_policy: str
    status: str
    failure_reason: str | None
    num_turns: int
    num_questions: int
    final_answer: list[str] | None
    correct: bool | None
    total_reward: float | None
    duration_s: float | None


RUN_STATUSES = ("running", "complete", "incomplete", "failed", "interrupted")
"""What a run's stored status may be (an empty one: a run made through the Python API
that never recorded one)."""
REPLACEABLE = ("failed", "interrupted")
"""Run statuses that a rerun under the same name replaces (``replace_unfinished``)."""


def _check_run_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise TraceError(f"experiment status {status!r}: use one of "
                         f"{', '.join(RUN_STATUSES)}")


def _status(status: EpisodeStatus | str) -> EpisodeStatus:
    try:
        return EpisodeStatus(status)
    except ValueError:
        raise NotFoundError(f"no episode status {status!r}; use one of "
                            f"{', '.join(s.value for s in EpisodeStatus)}") from None


def _turn_from_row(row: TurnRow) -> TurnRecord:
    return TurnRecord(index=row.index, role=row.role, text=row.text, kind=row.kind,
                      prompt_token_ids=row.prompt_token_ids, token_ids=row.token_ids,
                      logprobs=row.logprobs,
                      token_rewards=row.token_rewards,
                      disclosed_fact_ids=row.disclosed_fact_ids, reward=row.reward,
                      sig=row.sig, format_score=row.format_score, latency_s=row.latency_s,
                      late_question=row.late_question)


def _episode_from_row(row: EpisodeRow) -> EpisodeRecord:
    return EpisodeRecord(
        id=row.id, case_id=row.case_id, experiment_id=row.experiment_id, graph=row.graph,
        mode=row.mode, partial_policy=row.partial_policy, known_fact_ids=row.known_fact_ids,
        doctor_spec=row.doctor_spec, patient_spec=row.patient_spec,
        evaluator_spec=row.evaluator_spec, status=row.status,
        failure_reason=row.failure_reason, started_at=row.started_at,
        finished_at=row.finished_at, final_answer=row.final_answer, correct=row.correct,
        total_reward=row.total_reward, metadata=row.extra, thread_id=row.thread_id,
        training_step=row.training_step, turns=[_turn_from_row(t) for t in row.turns])


class TraceStore(CaseRecords, ShapleyRecords, SearchRecords, TrainingRecords, WorkClaims):
    """Cases, consultations and training artefacts in one SQL database.

    ``TraceStore()`` opens ``$PROMED_DB`` or ``sqlite:///promed.db``; pass a URL or an
    engine for another. ``create=False`` refuses a SQLite file that does not exist yet.
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, url: str | None = None, *, engine: Engine | None = None,
                 migrate: bool = True, create: bool = True) -> None:
        self.engine = engine if engine is not None else make_engine(url, create=create)
        if migrate:
            ensure_schema(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Stored cases are never changed or deleted through the store, nor experiments
        # but by create_experiment's replacement (which forgets them), so what
        # record_episode checks about them can be remembered.
        self._fact_counts: dict[str, int] = {}
        self._known_experiments: set[int] = set()

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        """A session whose driver failures (a read-only file, a file that is not a
        database, a server gone) come out as one :class:`StoreError`."""
        try:
            with self._sessions() as session:
                yield session
        except DBAPIError as exc:
            if not is_driver_failure(exc):
                raise
            raise database_failure(exc, self.url, "use") from None

    # -- experiments ---------------------------------------------------------------------

    def create_experiment(self, name: str, kind: str, config: dict[str, Any] | None = None,
                          notes: str | None = None, *, replace_unfinished: bool = False,
                          status: str | None = None) -> int:
        """Register a run; returns its id. Its name must be new, except that with
        ``replace_unfinished`` a run of that name and kind which did not finish
        (``failed`` or ``interrupted``) is deleted first, with its consultations: the
        rerun replaces it. ``status`` is its first status (the command line's runs start
        ``running``; see :meth:`finish_experiment`)."""
        if status is not None:
            _check_run_status(status)
        with self._session() as session:
            try:
                with session.begin():
                    if replace_unfinished:
                        old = session.scalar(select(ExperimentRow).where(
                            ExperimentRow.name == name, ExperimentRow.kind == kind,
                            ExperimentRow.status.in_(REPLACEABLE)))
                        if old is not None:
                            session.delete(old)  # episodes, turns, metrics go with it
                            session.flush()
                            self._known_experiments.discard(old.id)
                    row = ExperimentRow(name=name, kind=kind, config=redacted(config or {}),
                                        notes=notes, status=status)
                    session.add(row)
            except IntegrityError:
                stored = self.experiment(name)
                why = f" and is {stored.status}" if stored.status else ""
                raise TraceError(f"an experiment named {name!r} already exists{why}; "
                                 "choose another name") from None
            return row.id

    def experiment_config(self, name: str) -> tuple[int, dict[str, Any]]:
        """``(id, config)`` of the experiment called ``name``."""
        with self._session() as session:
            row = session.scalar(select(ExperimentRow).where(ExperimentRow.name == name))
        if row is None:
            raise NotFoundError(f"no experiment named {name!r} in {self.url}")
        return row.id, row.config

    def experiment_id(self, name: str) -> int:
        return self.experiment_config(name)[0]

    def list_experiments(self) -> list[ExperimentSummary]:
        """Every run in the store, oldest first."""
        with self._session() as session:
            return [ExperimentSummary(row.id, row.name, row.kind, row.created_at, row.status,
                                      row.status_reason)
                    for row in session.scalars(select(ExperimentRow).order_by(ExperimentRow.id))]

    def experiment(self, name: str) -> ExperimentSummary:
        """The run called ``name``."""
        with self._session() as session:
            row = session.scalar(select(ExperimentRow).where(ExperimentRow.name == name))
        if row is None:
            raise NotFoundError(f"no experiment named {name!r} in {self.url}")
        return ExperimentSummary(row.id, row.name, row.kind, row.created_at, row.status,
                                 row.status_reason)

    def finish_experiment(self, experiment_id: int, status: str,
                          reason: str | None = None) -> None:
        """Record how a run stands: ``running``, or how it ended: ``complete``,
        ``incomplete``, ``failed`` (see :func:`promed_agents.evaluation.run_status`) or
        ``interrupted`` (stopped by a signal; the reason says how to resume)."""
        _check_run_status(status)
        with self._session() as session, session.begin():
            row = session.get(ExperimentRow, experiment_id)
            if row is None:
                raise NotFoundError(f"experiment {experiment_id} does not exist")
            row.status, row.status_reason = status, without_password(reason)

    # -- episodes ------------------------------------------------------------------------

    def record_episode(self, episode: EpisodeRecord) -> int:
        """Write one consultation and its turns in one transaction; returns its id.

        An episode with a ``thread_id`` is recorded once per experiment: given again, the
        stored one is kept (its id returned), unless it had failed and this one did not,
        which replaces it. So a resumed run can hand over every episode again."""
        for attempt in range(2):
            try:
                with self._session() as session, session.begin():
                    return self._write_episode(session, episode)
            except IntegrityError:  # a concurrent writer stored the same thread first
                if attempt or episode.thread_id is None:
                    raise
        raise AssertionError("unreachable")

    def record_episodes(self, episodes: Iterable[EpisodeRecord]) -> list[int]:
        """Write several consultations in one transaction (all or none); their ids."""
        with self._session() as session, session.begin():
            return [self._write_episode(session, episode) for episode in episodes]

    def _write_episode(self, session: Session, episode: EpisodeRecord) -> int:
        """Insert ``episode`` and its turns in the caller's transaction (see
        :meth:`record_episode` for episodes with a thread id)."""
        if episode.thread_id is not None and episode.experiment_id is not None:
            stored = session.execute(select(EpisodeRow.id, EpisodeRow.status).where(
                EpisodeRow.experiment_id == episode.experiment_id,
                EpisodeRow.thread_id == episode.thread_id)).one_or_none()
            if stored is not None:
                if stored.status != EpisodeStatus.FAILED.value or \
                        episode.status is EpisodeStatus.FAILED:
                    return stored.id
                session.delete(session.get(EpisodeRow, stored.id))  # its turns go with it
                session.flush()
        n_facts = self._fact_count(session, episode.case_id)
        for where, ids in [("known_fact_ids", episode.known_fact_ids)] + [
                (f"turns[{t.index}].disclosed_fact_ids", t.disclosed_fact_ids)
                for t in episode.turns]:
            bad = [i for i in ids if not 0 <= i < n_facts]
            if bad:
                raise TraceError(f"episode of case {episode.case_id}: {where} has fact "
                                 f"ids {bad} but the case has {n_facts} facts")
        if episode.experiment_id is not None and \
                episode.experiment_id not in self._known_experiments:
            if session.get(ExperimentRow, episode.experiment_id) is None:
                raise NotFoundError(f"experiment {episode.experiment_id} does not exist; "
                                    "create it with TraceStore.create_experiment")
            self._known_experiments.add(episode.experiment_id)
        completion_tokens = sum(len(t.token_ids or ()) for t in episode.turns)
        # Core statements, not ORM objects: one INSERT .. RETURNING for the episode and
        # one executemany for its turns. (The ORM bulk path groups rows by which values
        # are None, so alternating doctor/patient turns would go row by row.)
        episode_id = session.execute(insert(EpisodeRow.__table__).returning(
            EpisodeRow.__table__.c.id).values(
            experiment_id=episode.experiment_id, case_id=episode.case_id,
            graph=episode.graph, mode=episode.mode.value,
            partial_policy=episode.partial_policy.value,
            known_fact_ids=episode.known_fact_ids,
            doctor_spec=without_password(episode.doctor_spec),
            patient_spec=without_password(episode.patient_spec),
            evaluator_spec=without_password(episode.evaluator_spec),
            status=episode.status.value,
            failure_reason=without_password(episode.failure_reason),
            started_at=episode.started_at, finished_at=episode.finished_at,
            duration_s=episode.duration_s, num_turns=len(episode.turns),
            num_questions=episode.num_questions, final_answer=episode.final_answer,
            correct=episode.correct, total_reward=episode.total_reward,
            prompt_tokens=int(episode.metadata.get("prompt_tokens", 0)),
            completion_tokens=completion_tokens, extra=redacted(episode.stored_metadata()),
            thread_id=episode.thread_id, training_step=episode.training_step)).scalar_one()
        if episode.turns:
            session.execute(insert(TurnRow.__table__), [
                dict(episode_id=episode_id, index=t.index, role=t.role.value, text=t.text,
                     kind=t.kind.value if t.kind else None,
                     prompt_token_ids=t.prompt_token_ids, token_ids=t.token_ids,
                     logprobs=t.logprobs, token_rewards=t.token_rewards,
                     disclosed_fact_ids=t.disclosed_fact_ids, reward=t.reward,
                     sig=t.sig, format_score=t.format_score, latency_s=t.latency_s,
                     late_question=t.late_question)
                for t in episode.turns])
        return episode_id

    def get_episode(self, episode_id: int) -> EpisodeRecord:
        with self._session() as session:
            row = session.get(EpisodeRow, episode_id, options=[selectinload(
                EpisodeRow.turns)]) if abs(episode_id) <= SQL_INT_MAX else None
            if row is None:
                raise NotFoundError(f"episode {episode_id} is not in the store {self.url}; "
                                    "see `promed traces list`")
            return _episode_from_row(row)

    @staticmethod
    def _episode_filters(experiment_id: int | None, case_id: str | None = None,
                         status: EpisodeStatus | str | None = None) -> list[Any]:
        filters = []
        if experiment_id is not None:
            filters.append(EpisodeRow.experiment_id == experiment_id)
        if case_id is not None:
            filters.append(EpisodeRow.case_id == case_id)
        if status is not None:
            filters.append(EpisodeRow.status == _status(status).value)
        return filters

    def _episode_query(self, experiment_id: int | None, case_id: str | None,
                       status: EpisodeStatus | str | None) -> Any:
        return select(EpisodeRow).where(
            *self._episode_filters(experiment_id, case_id, status)).order_by(EpisodeRow.id)

    def list_episodes(self, experiment_id: int | None = None, case_id: str | None = None,
                      status: EpisodeStatus | str | None = None,
                      limit: int | None = None, offset: int = 0) -> list[EpisodeSummary]:
        """Summaries of the matching episodes, oldest first (no turns are read)."""
        query = self._episode_query(experiment_id, case_id, status).offset(
            row_offset(offset)).limit(row_limit(limit))
        with self._session() as session:
            return [EpisodeSummary(
                id=row.id, case_id=row.case_id, experiment_id=row.experiment_id,
                graph=row.graph, mode=row.mode, partial_policy=row.partial_policy,
                status=row.status, failure_reason=row.failure_reason, num_turns=row.num_turns,
                num_questions=row.num_questions, final_answer=row.final_answer,
                correct=row.correct, total_reward=row.total_reward, duration_s=row.duration_s)
                for row in session.scalars(query)]

    def iter_episodes(self, experiment_id: int | None = None, case_id: str | None = None,
                      status: EpisodeStatus | str | None = None,
                      batch_size: int = 200) -> Iterator[EpisodeRecord]:
        """Every matching episode with its turns, read in batches (for trainers, exports)."""
        last_id = 0
        while True:
            query = (self._episode_query(experiment_id, case_id, status)
                     .where(EpisodeRow.id > last_id).limit(batch_size)
                     .options(selectinload(EpisodeRow.turns)))
            with self._session() as session:
                rows = list(session.scalars(query))
                batch = [_episode_from_row(row) for row in rows]
            if not batch:
                return
            yield from batch
            last_id = rows[-1].id

    def count_episodes(self, experiment_id: int | None = None,
                       status: EpisodeStatus | str | None = None,
                       case_id: str | None = None) -> int:
        query = select(func.count()).select_from(EpisodeRow).where(
            *self._episode_filters(experiment_id, case_id, status))
        with self._session() as session:
            return session.scalar(query) or 0

    def count_turns(self, experiment_id: int | None = None) -> int:
        query = select(func.count()).select_from(TurnRow)
        if experiment_id is not None:
            query = query.join(EpisodeRow).where(EpisodeRow.experiment_id == experiment_id)
        with self._session() as session:
            return session.scalar(query) or 0
