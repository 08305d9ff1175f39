from __future__ import annotations

import multiprocessing
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from promed_agents.errors import StoreError
from promed_agents.storage.database import (
    current_revision,
    ensure_schema,
    head_revision,
    make_engine,
    resolve_url,
    upgrade,
)
from promed_agents.storage.models import Base
from promed_agents.trace import TurnRecord

TABLES = {"cases", "facts", "experiments", "episodes", "turns", "shapley_values",
          "training_datasets", "training_samples", "model_checkpoints", "alembic_version"}


def test_resolve_url_precedence(monkeypatch):
    monkeypatch.delenv("PROMED_DB", raising=False)
    assert resolve_url() == "sqlite:///promed.db"
    monkeypatch.setenv("PROMED_DB", "sqlite:///from-env.db")
    assert resolve_url() == "sqlite:///from-env.db"
    assert resolve_url("sqlite:///given.db") == "sqlite:///given.db"
    assert resolve_url("runs/x.db") == "sqlite:///runs/x.db"
    assert resolve_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert resolve_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"


def test_bad_urls_raise_store_errors(tmp_path):
    with pytest.raises(StoreError, match="is not valid"):
        make_engine("bad url://x")
    with pytest.raises(StoreError, match="is not valid"):
        make_engine("postgresql://u@h:notaport/db")
    with pytest.raises(StoreError, match="no database driver for nonsense"):
        make_engine("nonsense://u@h/db")
    (tmp_path / "plain-file").write_text("")
    with pytest.raises(StoreError, match="cannot create the folder"):
        make_engine(f"sqlite:///{tmp_path}/plain-file/store.db")


def test_an_invalid_url_is_reported_without_its_password():
    with pytest.raises(StoreError, match="is not valid") as error:
        make_engine("postgresql://u:S3cret%25@h:notaport/db")
    assert "S3cret" not in str(error.value) and "u:***@h:notaport" in str(error.value)


@pytest.mark.parametrize("name", ["a%b.db", "x%25y.db", "100%.db"])
def test_sqlite_paths_with_percent_signs_migrate(tmp_path, name):
    # Alembic's config interpolates '%'; the store must not care.
    for url in (str(tmp_path / name), f"sqlite:///{tmp_path}/url-{name}"):
        engine = make_engine(url)
        ensure_schema(engine)
        assert current_revision(engine) == head_revision()
    # A path names its file as it is; in a URL, %25 is the escape of '%'.
    assert (tmp_path / name).exists()
    assert (tmp_path / f"url-{name.replace('%25', '%')}").exists()


def test_an_in_memory_sqlite_store_migrates():
    engine = make_engine("sqlite:///:memory:")
    ensure_schema(engine)
    assert current_revision(engine) == head_revision()
    assert TABLES <= set(inspect(engine).get_table_names())


@pytest.mark.postgres
def test_a_percent_encoded_password_reaches_the_server(postgres_url):
    from sqlalchemy.engine import make_url

    from helpers import counts, run

    role = f"promed_pct_{uuid.uuid4().hex[:8]}"
    admin = make_engine(postgres_url)
    database = make_url(postgres_url).database
    with admin.begin() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'Pa%ss@w:/'"))
        connection.execute(text(f'GRANT ALL ON DATABASE "{database}" TO {role}'))
        connection.execute(text(f"GRANT ALL ON SCHEMA public TO {role}"))
    url = make_url(postgres_url).set(username=role, password="Pa%ss@w:/") \
        .render_as_string(hide_password=False)
    assert "%25" in url and "%40" in url  # the password travels percent-encoded
    try:
        upgraded = run("db", "upgrade", "--db", url)
        assert upgraded.exit_code == 0, upgraded.output
        listed = run("cases", "list", "--db", url)
        assert listed.exit_code == 0, listed.output
        for result in (upgraded, listed):
            assert "Pa%ss" not in result.output + result.stderr
        assert counts(url) == (0, 0, 0)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


def test_unreachable_server_is_a_store_error():
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StoreError, match="cannot open the database"):
        ensure_schema(engine)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000


def test_migrations_create_the_schema_and_match_the_models(db_url):
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    assert upgrade(engine) == head_revision()
    assert TABLES <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_downgrade_to_base_and_up_again(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    upgrade_to_base = __import__("alembic.command", fromlist=["downgrade"]).downgrade
    from promed_agents.storage.database import alembic_config
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        upgrade_to_base(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    ensure_schema(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_unknown_revision_is_reported(sqlite_url):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'zzzz'"))
    with pytest.raises(StoreError, match="revision 'zzzz'.*upgrade promed-agents"):
        ensure_schema(engine)


def _open_and_migrate(url: str) -> str | None:
    engine = make_engine(url)
    ensure_schema(engine)
    revision = current_revision(engine)
    engine.dispose()
    return revision


def test_concurrent_first_opens_migrate_once(db_url):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        revisions = pool.map(_open_and_migrate, [db_url] * 4)
    assert revisions == [head_revision()] * 4


def test_turns_recorded_before_late_questions_were_kept_get_them_by_the_old_rule(db_url):
    """Revision 0007 fills in ``late_question`` for older turns by the rule the reward
    designs used on the text: the last doctor turn of a timed-out episode, invalid,
    starting with "question"."""
    from alembic.command import downgrade

    from promed_agents.loader import bundled_sample_path, load_cases
    from promed_agents.storage import TraceStore
    from promed_agents.storage.database import alembic_config
    from promed_agents.trace import EpisodeStatus

    from helpers import episode

    def doctor_turn(index, text, kind):
        return TurnRecord(index=index, role="doctor", text=text, kind=kind)

    with TraceStore(db_url) as store:
        store.import_cases(load_cases(bundled_sample_path(), split="sample", limit=1))
        ran_out = store.record_episode(episode(status=EpisodeStatus.TIMEOUT, turns=[
            doctor_turn(0, " Question: Any cough?", "invalid"),  # not the last turn
            TurnRecord(index=1, role="patient", text="No.", kind="reply"),
            doctor_turn(2, " Question: Any fever?", "invalid")]))
        answered = store.record_episode(episode(turns=[
            doctor_turn(0, "question: Any fever?", "invalid"),
            doctor_turn(1, "answer: C", "answer")]))
        config = alembic_config(store.engine)
        with store.engine.begin() as connection:
            config.attributes["connection"] = connection
            downgrade(config, "0006")
        upgrade(store.engine)
        assert [t.late_question for t in store.get_episode(ran_out).turns] == \
            [False, None, True]
        assert [t.late_question for t in store.get_episode(answered).turns] == [False, False]
