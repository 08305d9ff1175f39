"""LangGraph checkpointers for consultations: resumable runs in SQLite or PostgreSQL.

case -> **consultation graph** (checkpoints) -> trace in SQL -> Shapley/SIG -> ...

:func:`checkpointer` opens LangGraph's saver for a location, with the serializer that
rebuilds exactly the consultation state's types
(:func:`~promed_agents.graphs.consultation.checkpoint_serializer`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from promed_agents.graphs.consultation import checkpoint_serializer

POSTGRES_PREFIXES = ("postgresql://", "postgresql+psycopg://", "postgres://")


@contextlib.asynccontextmanager
async def checkpointer(where: str) -> AsyncIterator[Any]:
    """LangGraph's checkpointer for ``where``: a PostgreSQL URL (``postgresql://...``,
    with the ``postgres`` extra) or a SQLite file path."""
    from langgraph.checkpoint.serde.base import maybe_add_typed_methods

    serde = maybe_add_typed_methods(checkpoint_serializer())
    if where.startswith(POSTGRES_PREFIXES):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        conninfo = where.replace("postgresql+psycopg://", "postgresql://", 1)
        async with AsyncPostgresSaver.from_conn_string(conninfo) as saver:
            saver.serde = serde
            await saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(where) as saver:
        saver.serde = serde
        yield saver
