"""Database URLs, engines and schema migrations of the trace store.

case -> consultation graph -> **trace in SQL** -> Shapley/SIG -> training

The default store is the SQLite file ``promed.db`` in the working directory; ``--db URL``
on every CLI command, or the ``PROMED_DB`` environment variable, points elsewhere (any
SQLAlchemy URL; ``postgresql://`` uses psycopg 3; a bare path means a SQLite file).
SQLite runs in WAL mode with foreign keys on, and every transaction starts with
``BEGIN IMMEDIATE`` so that concurrent writer processes queue on the busy timeout instead
of failing on a read-to-write upgrade. The schema belongs to the Alembic migrations shipped
in ``migrations/``; :func:`upgrade` applies them and is safe to call from many processes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError

from promed_agents.errors import StoreError
from promed_agents.redaction import without_password

DEFAULT_URL = "sqlite:///promed.db"
ENV_VAR = "PROMED_DB"
SQLITE_BUSY_TIMEOUT_MS = 60_000
_MIGRATION_LOCK_KEY = 0x50524F4D  # "PROM": PostgreSQL advisory lock held while migrating
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def resolve_url(url: str | None = None) -> str:
    """The database URL to use: ``url``, else ``$PROMED_DB``, else ``sqlite:///promed.db``.

    A value without ``://`` is taken as the path of a SQLite file; ``postgresql://`` and
    ``postgres://`` are given the psycopg 3 driver.
    """
    raw = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    if "://" not in raw:  # a path is taken as it is: '%' in it is no URL escape
        return URL.create("sqlite", database=raw).render_as_string()
    for prefix in ("postgresql://", "postgres://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix):]
    return raw


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below own transaction boundaries.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def database_failure(exc: DBAPIError, url: Any, doing: str) -> StoreError:
    """A driver's failure (not a SQLite file, read-only, unreachable, locked) as one line
    naming the database (its password masked)."""
    reason = " ".join(str(exc.orig).split())  # drivers' messages span several lines
    where = without_password(str(url))
    hint = ""
    if "not a database" in reason:
        hint = "; point --db at a ProMed store or a new file"
    elif "unable to open" in reason:
        hint = ("; check that its folder exists and is writable (a store on a read-only "
                "filesystem can be listed, shown and exported, not written)")
    elif "readonly" in reason or "read-only" in reason:
        hint = "; make the file and its folder writable, or copy the store elsewhere"
    return StoreError(f"cannot {doing} the database {where}: {reason}{hint}")


def is_driver_failure(exc: BaseException) -> bool:
    """A database failure that is about the database, not about the data: constraint
    violations (:class:`IntegrityError`) are left to their callers."""
    return isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError)


def _read_only_filesystem(file: Path) -> bool:
    try:
        return bool(os.statvfs(file).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def make_engine(url: str | None = None, *, create: bool = True, adopt: bool = False,
                **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (see :func:`resolve_url`), configured for the store.

    With ``create=False`` a SQLite file that does not exist is an error rather than a new
    empty database (for commands that only read). A SQLite file that holds another
    program's tables is refused before it is touched (the store's settings would change
    its header), unless ``adopt`` (``promed db upgrade``: the user asks for it)."""
    resolved = resolve_url(url)
    try:
        parsed = make_url(resolved)
    except (ArgumentError, ValueError) as exc:
        raise StoreError(f"database URL {without_password(resolved)!r} is not valid: {exc}; "
                         "use e.g. "
                         "sqlite:///promed.db or postgresql://user@host/db") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not parsed.query.get("uri"):
        file = Path(parsed.database).expanduser()
        if not create and not file.exists():
            raise StoreError(f"the database {file} does not exist; import cases first "
                             "(`promed cases import FILE --db ...`) or check --db")
        if not adopt and file.is_file():
            _refuse_foreign_sqlite(file)
        if not create and _read_only_filesystem(file):
            # a read-only filesystem cannot hold WAL's shared-memory file: open the store
            # as an immutable file, which is what it is there
            parsed = make_url(f"sqlite:///{file.resolve().as_uri()}?mode=ro&immutable=1"
                              "&uri=true")
        folder = file.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder {folder} for the SQLite database "
                             f"{resolved!r}: {exc.strerror}") from None
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        hint = " (install the extra: pip install 'promed-agents[postgres]')" \
            if parsed.get_backend_name() == "postgresql" else ""
        raise StoreError(f"no database driver for {parsed.drivername}: {exc}{hint}") from None
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at the shipped migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:  # ConfigParser interpolates '%': a percent-encoded URL doubles it
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(
            hide_password=False).replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the shipped migrations have no head"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        raise database_failure(exc, engine.url, "open") from None


def check_revision(revision: str) -> None:
    """Refuse a migration target the shipped migrations do not have (before any
    database is opened)."""
    try:
        ScriptDirectory.from_config(alembic_config()).get_revisions(revision)
    except (CommandError, RevisionError) as exc:
        raise StoreError(f"no schema revision {revision!r}: {exc}; the newest is "
                         f"{head_revision()!r} (`promed db upgrade head`)") from None


def _behind(current: str, revision: str) -> bool:
    """Whether ``revision`` comes before ``current`` in the shipped migrations."""
    script = ScriptDirectory.from_config(alembic_config())
    target = script.get_revision(revision)
    return target is not None and target.revision != current and any(
        rev.revision == target.revision for rev in script.iterate_revisions(current, "base"))


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Apply the migrations up to ``revision``; returns the revision reached. A target
    older than the database is refused (migrations only go forward).

    One transaction, serialised across processes (SQLite: ``BEGIN IMMEDIATE``;
    PostgreSQL: an advisory lock), so concurrent callers migrate once.
    """
    check_revision(revision)
    current = current_revision(engine)
    if current is not None and current in _known_revisions() and _behind(current, revision):
        raise StoreError(f"the database {without_password(str(engine.url))} is at schema "
                         f"revision {current!r}, past {revision!r}; migrations only go "
                         "forward (`promed db upgrade head`), so it was left as it is")
    config = alembic_config(engine)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": _MIGRATION_LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except DBAPIError as exc:
        raise database_failure(exc, engine.url, "migrate") from None
    except CommandError as exc:
        raise StoreError(f"cannot migrate the database {engine.url!r} to {revision!r}: "
                         f"{exc}; see `promed db current`") from None
    return current_revision(engine)


def ensure_schema(engine: Engine) -> None:
    """Upgrade to the newest schema when the database is behind (cheap when it is not)."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        refuse_foreign_tables(engine)
    if current is not None and current not in _known_revisions():
        raise StoreError(
            f"the database {engine.url!r} is at schema revision {current!r}, which this "
            "version of promed-agents does not know; upgrade promed-agents")
    upgrade(engine)


LANGGRAPH_TABLES = frozenset({"checkpoints", "checkpoint_blobs", "checkpoint_writes",
                              "checkpoint_migrations", "writes"})
"""Tables LangGraph's savers make (a store may share its database with them)."""


def refuse_foreign_tables(engine: Engine) -> None:
    """Refuse to turn a database that holds another program's tables (and no schema
    revision) into a store: only ``promed db upgrade`` (the user asking) does that."""
    from sqlalchemy import inspect

    try:
        tables = set(inspect(engine).get_table_names())
    except DBAPIError as exc:
        raise database_failure(exc, engine.url, "open") from None
    _refuse(without_password(str(engine.url)), tables)


def _refuse_foreign_sqlite(file: Path) -> None:
    """:func:`refuse_foreign_tables` for a SQLite file, read-only (nothing changes)."""
    try:
        with contextlib.closing(sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro",
                                                uri=True)) as db:
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return  # not a database, locked, ...: opening it says what
    _refuse(str(file), tables)


def _refuse(where: str, tables: set[str]) -> None:
    if "alembic_version" in tables:
        return
    foreign = sorted(t for t in tables - LANGGRAPH_TABLES if not t.startswith("sqlite_"))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise StoreError(f"the database {where} is not a ProMed store: it holds "
                         f"{len(foreign)} other table(s) ({shown}); point --db at a store "
                         "or a new file, or make it one with `promed db upgrade --db ...`")


def _known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}
