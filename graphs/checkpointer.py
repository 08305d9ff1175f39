"""LangGraph checkpointers for consultations: resumable runs in SQLite or PostgreSQL.

case -> **consultation graph** (checkpoints) -> trace in SQL -> Shapley/SIG -> ...

:func:`checkpointer` opens LangGraph's saver for a location, with the serializer that
rebuilds exactly the consultation state's types
(:func:`~promed_agents.graphs.consultation.checkpoint_serializer`);
:func:`check_checkpointer` tries a location before a run starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from promed_agents.errors import ConsultationError
from promed_agents.graphs.consultation import checkpoint_serializer
from promed_agents.redaction import without_password

POSTGRES_PREFIXES = ("postgresql://", "postgresql+psycopg://", "postgres://")


@contextlib.asynccontextmanager
async def checkpointer(where: str) -> AsyncIterator[Any]:
    """LangGraph's checkpointer for ``where``: a PostgreSQL URL (``postgresql://...``,
    with the ``postgres`` extra) or a SQLite file path. A location that cannot be opened
    or set up is a :class:`~promed_agents.errors.ConsultationError` naming it (password
    masked), raised before anything runs."""
    from langgraph.checkpoint.serde.base import maybe_add_typed_methods

    serde = maybe_add_typed_methods(checkpoint_serializer())
    failures: tuple[type[BaseException], ...] = (OSError, sqlite3.Error)
    if not where.startswith(POSTGRES_PREFIXES):
        _probe_sqlite(where)
    async with contextlib.AsyncExitStack() as stack:
        try:
            if where.startswith(POSTGRES_PREFIXES):
                import psycopg
                from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

                failures += (psycopg.Error,)
                conninfo = where.replace("postgresql+psycopg://", "postgresql://", 1)
                saver = await stack.enter_async_context(
                    AsyncPostgresSaver.from_conn_string(conninfo))
            else:
                from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

                saver = await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(where))
            saver.serde = serde
            await saver.setup()
        except failures as exc:
            raise _unusable(where, " ".join(str(exc).split())) from None
        yield saver


def _unusable(where: str, reason: str) -> ConsultationError:
    return ConsultationError(
        f"cannot open the checkpoints {without_password(where)!r}: {reason}; give "
        "--checkpoints a writable SQLite file or a reachable PostgreSQL URL")


def _probe_sqlite(where: str) -> None:
    """Open a SQLite location synchronously first: aiosqlite's worker thread outlives a
    failed open and reports it again, as tracebacks, once the event loop has closed."""
    if Path(where).expanduser().is_dir():
        raise _unusable(where, "it is a folder")
    try:
        with contextlib.closing(sqlite3.connect(where)) as db:
            db.execute("PRAGMA schema_version")
    except sqlite3.Error as exc:
        raise _unusable(where, " ".join(str(exc).split())) from None


def check_checkpointer(where: str) -> None:
    """Open and close the checkpointer for ``where`` now, so that a location that cannot
    be used fails (a :class:`~promed_agents.errors.ConsultationError`) before a run
    writes anything to its store."""

    async def probe() -> None:
        async with checkpointer(where):
            pass

    asyncio.run(probe())
