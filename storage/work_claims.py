"""Shared jobs: several worker processes (or machines) doing one job's items once each.

case -> consultation graph -> **trace in SQL** -> Shapley/SIG -> MCTS-SFT / GRPO ->
evaluation (the store as the work queue of runs split over workers)

The standard work-queue pattern of the database the workers already share: a job (the
Shapley values of a scorer, an evaluation run) is a set of items (case ids) in the
``work_claims`` table. :meth:`WorkClaims.claim_work` takes the next free items for a
worker in one short transaction: on PostgreSQL with ``SELECT ... FOR UPDATE SKIP LOCKED``
(concurrent workers never wait for or take the same item); SQLite serialises writers, so
the same statement is atomic there. An item is free when nobody claimed it, or its claim
is older than the lease and it is not done: a killed worker's items go to the others (or
to a rerun) once its lease runs out; a worker that stops on an error or a signal gives
its claims back at once (:meth:`release_work`). A worker renews its claims each time it
finishes an item, so a live worker keeps them. :meth:`finish_work` marks an item done.
An item redone after its worker died between writing its result and marking it done is
written once: the runs key their results (a consultation's thread id, a case's stored
values, a tree's iterations).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from promed_agents.storage.models import WorkClaimRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

def _now() -> datetime:
    return datetime.now(timezone.utc)


class WorkClaims:
    """Shared-job methods of the trace store (mixed into ``TraceStore``)."""

    def _session(self) -> Session:  # provided by TraceStore
        raise NotImplementedError

    def claim_work(self, job: str, items: Sequence[str], worker: str, *, lease_s: float,
                   limit: int = 1) -> list[str]:
        """Add ``items`` to ``job`` (those already there are kept as they are), then claim
        up to ``limit`` free ones for ``worker``, in item order; returns them (empty: none
        is free now). A claim older than ``lease_s`` seconds, not done, is free; so are
        ``worker``'s own unfinished claims (it asks between items, so they are left from
        an attempt that stopped). Only the rows claimed are locked, so concurrent workers
        claim the next ones at once."""
        now = _now()
        with self._session() as session, session.begin():
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            if items:
                session.execute(insert(WorkClaimRow).values(
                    [{"job": job, "item": item} for item in items]).on_conflict_do_nothing())
            free = select(WorkClaimRow.item).where(
                WorkClaimRow.job == job, WorkClaimRow.done_at.is_(None),
                or_(WorkClaimRow.worker.is_(None), WorkClaimRow.worker == worker,
                    WorkClaimRow.claimed_at < now - timedelta(seconds=lease_s)))
            chosen = list(session.scalars(free.order_by(WorkClaimRow.item).limit(limit)
                                          .with_for_update(skip_locked=True)))
            if chosen:
                session.execute(update(WorkClaimRow).where(
                    WorkClaimRow.job == job, WorkClaimRow.item.in_(chosen)).values(
                    worker=worker, claimed_at=now))
        return chosen

    def finish_work(self, job: str, item: str, worker: str) -> None:
        """Mark ``item`` done and renew ``worker``'s other claims of ``job``."""
        now = _now()
        with self._session() as session, session.begin():
            session.execute(update(WorkClaimRow).where(
                WorkClaimRow.job == job, WorkClaimRow.item == item).values(
                done_at=now, worker=worker))
            session.execute(update(WorkClaimRow).where(
                WorkClaimRow.job == job, WorkClaimRow.worker == worker,
                WorkClaimRow.done_at.is_(None)).values(claimed_at=now))

    def release_work(self, job: str, worker: str) -> None:
        """Give back ``worker``'s unfinished claims of ``job`` (a worker that stops)."""
        with self._session() as session, session.begin():
            session.execute(update(WorkClaimRow).where(
                WorkClaimRow.job == job, WorkClaimRow.worker == worker,
                WorkClaimRow.done_at.is_(None)).values(worker=None, claimed_at=None))

    def clear_work(self, job: str) -> None:
        """Forget the items of ``job`` and of its sub-jobs (``job:...``): a new run
        starts with an empty queue."""
        with self._session() as session, session.begin():
            session.execute(delete(WorkClaimRow).where(or_(
                WorkClaimRow.job == job, WorkClaimRow.job.startswith(f"{job}:",
                                                                      autoescape=True))))

    def work_left(self, job: str) -> int:
        """Items of ``job`` not done (claimed or not)."""
        with self._session() as session:
            return session.scalar(select(func.count()).select_from(WorkClaimRow).where(
                and_(WorkClaimRow.job == job, WorkClaimRow.done_at.is_(None)))) or 0

    def work_done(self, job: str) -> set[str]:
        """Items of ``job`` done."""
        with self._session() as session:
            return set(session.scalars(select(WorkClaimRow.item).where(
                WorkClaimRow.job == job, WorkClaimRow.done_at.is_not(None))))
