"""A fresh database on a PostgreSQL server, for the benchmarks that count what they stored."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text

from promed_agents.storage import resolve_url


def fresh_postgres_db(server_url: str) -> str:
    """Create an empty database on the server of ``server_url``; its URL."""
    admin = create_engine(resolve_url(server_url), isolation_level="AUTOCOMMIT")
    name = f"promed_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return resolve_url(server_url).rsplit("/", 1)[0] + "/" + name
