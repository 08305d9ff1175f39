"""Stored cases: the import (all or nothing, idempotent) and the case queries.

**case** -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation

:class:`CaseRecords` is part of :class:`~promed_agents.storage.TraceStore`. A case is
stored with its facts in order and a hash of its content, so importing the same file
again changes nothing and a different case under a stored id is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from promed_agents.case import Case, FactSource
from promed_agents.errors import CaseConflictError, NotFoundError
from promed_agents.storage.column_types import row_limit, row_offset
from promed_agents.storage.models import CaseRow, FactRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_CHUNK = 500
_IMPORT_ATTEMPTS = 3


@dataclass(frozen=True)
class ImportReport:
    """What an import did: ``added`` new cases, ``unchanged`` ones already stored as given."""

    added: int
    unchanged: int


@dataclass(frozen=True)
class CaseGroup:
    """Counts of stored cases by source, split and language."""

    source: str
    split: str | None
    language: str
    cases: int
    facts: int


def _case_from_row(row: CaseRow) -> Case:
    sources = [FactSource(kind=f.kind, path=f.path) for f in row.facts if f.kind]
    return Case(id=row.id, source=row.source, language=row.language, split=row.split,
                question=row.question, options=row.options, answer=row.answer,
                diagnosis=row.diagnosis, recommendation=row.recommendation,
                context=row.context, facts=[f.text for f in row.facts],
                fact_sources=sources if len(sources) == len(row.facts) else [],
                initial_fact_ids=row.initial_fact_ids, demographics=row.demographics)


class CaseRecords:
    """Case import and query methods of the trace store."""

    url: str  # provided by TraceStore
    _fact_counts: dict[str, int]

    def _session(self) -> Session:  # provided by TraceStore
        raise NotImplementedError

    def import_cases(self, cases: Iterable[Case],
                     progress: Callable[[int], None] | None = None) -> ImportReport:
        """Store ``cases`` in one transaction: all of them, or none on any error.

        Idempotent: a case already stored with the same content is left as it is and
        counted as unchanged; one stored with the same id but other content raises
        :class:`CaseConflictError` and nothing is written.
        """
        cases = list(cases)
        for attempt in range(_IMPORT_ATTEMPTS):
            try:
                return self._import_once(cases, progress)
            except IntegrityError:
                # Another process stored some of these cases after we looked: look again,
                # they now count as stored (or as conflicts).
                if attempt == _IMPORT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _import_once(self, cases: list[Case],
                     progress: Callable[[int], None] | None) -> ImportReport:
        added = unchanged = 0
        with self._session() as session, session.begin():
            stored: dict[str, str] = {}
            ids = [c.id for c in cases]
            for start in range(0, len(ids), _CHUNK):
                rows = session.execute(select(CaseRow.id, CaseRow.content_hash)
                                       .where(CaseRow.id.in_(ids[start:start + _CHUNK])))
                stored.update({row.id: row.content_hash for row in rows})
            for case in cases:
                digest = case.content_hash()
                if case.id in stored:
                    if stored[case.id] != digest:
                        raise self._conflict(session, case)
                    unchanged += 1
                else:
                    session.add(CaseRow(
                        id=case.id, source=case.source, language=case.language,
                        split=case.split, question=case.question, options=case.options,
                        answer=case.answer, diagnosis=case.diagnosis,
                        recommendation=case.recommendation,
                        initial_fact_ids=case.initial_fact_ids, context=case.context,
                        demographics=case.demographics, content_hash=digest,
                        facts=[FactRow(index=i, text=t,
                                       kind=source.kind if source else None,
                                       path=source.path if source else None)
                               for i, (t, source) in enumerate(zip(
                                   case.facts, case.fact_sources or [None] * len(case.facts),
                                   strict=True))]))
                    stored[case.id] = digest
                    added += 1
                if progress is not None:
                    progress(1)
        return ImportReport(added=added, unchanged=unchanged)

    @staticmethod
    def _conflict(session: Session, case: Case) -> CaseConflictError:
        """Why ``case`` cannot be stored next to the stored case of its id."""
        split, digest = session.execute(select(CaseRow.split, CaseRow.content_hash).where(
            CaseRow.id == case.id)).one()
        if case.model_copy(update={"split": split}).content_hash() == digest:
            return CaseConflictError(
                f"case {case.id} is already stored with split {split!r}, not "
                f"{'without one' if case.split is None else repr(case.split)}; nothing "
                f"was imported (import with --split {split}, or give the file its own "
                "ids with --source)", case_id=case.id)
        return CaseConflictError(
            f"case {case.id} is already stored with different content; nothing was "
            "imported (give the file its own ids with --source NAME, or use another "
            "database)", case_id=case.id)

    def get_case(self, case_id: str) -> Case:
        with self._session() as session:
            row = session.get(CaseRow, case_id, options=[selectinload(CaseRow.facts)])
            if row is None:
                raise NotFoundError(f"case {case_id!r} is not in the store {self.url}; "
                                    "see `promed cases list`")
            return _case_from_row(row)

    @staticmethod
    def _case_filters(source: str | None, split: str | None) -> list[Any]:
        filters = []
        if source is not None:
            filters.append(CaseRow.source == source)
        if split is not None:
            filters.append(CaseRow.split == split)
        return filters

    def list_cases(self, source: str | None = None, split: str | None = None,
                   limit: int | None = None, offset: int = 0) -> list[Case]:
        query = (select(CaseRow).options(selectinload(CaseRow.facts))
                 .where(*self._case_filters(source, split))
                 .order_by(CaseRow.source, func.length(CaseRow.id), CaseRow.id)
                 .offset(row_offset(offset)).limit(row_limit(limit)))
        with self._session() as session:
            return [_case_from_row(row) for row in session.scalars(query)]

    def count_cases(self, source: str | None = None, split: str | None = None) -> int:
        query = select(func.count()).select_from(CaseRow).where(
            *self._case_filters(source, split))
        with self._session() as session:
            return session.scalar(query) or 0

    def case_groups(self) -> list[CaseGroup]:
        """Stored cases counted by source, split and language, with their fact totals."""
        facts = (select(FactRow.case_id, func.count().label("n"))
                 .group_by(FactRow.case_id).subquery())
        query = (select(CaseRow.source, CaseRow.split, CaseRow.language,
                        func.count(CaseRow.id), func.coalesce(func.sum(facts.c.n), 0))
                 .outerjoin(facts, facts.c.case_id == CaseRow.id)
                 .group_by(CaseRow.source, CaseRow.split, CaseRow.language)
                 .order_by(CaseRow.source, CaseRow.split))
        with self._session() as session:
            return [CaseGroup(*row) for row in session.execute(query)]

    def _fact_count(self, session: Session, case_id: str) -> int:
        if case_id not in self._fact_counts:
            if session.get(CaseRow, case_id) is None:
                raise NotFoundError(f"case {case_id!r} is not in the store {self.url}; "
                                    "import it first (`promed cases import`)")
            count = session.scalar(select(func.count()).where(FactRow.case_id == case_id))
            self._fact_counts[case_id] = count or 0
        return self._fact_counts[case_id]
