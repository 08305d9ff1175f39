"""``promed db``: the store's schema revision (Alembic migrations).

case -> consultation graph -> **trace in SQL** -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation
"""


from __future__ import annotations

from typing import Annotated

import typer

from promed_agents.cli.options import (
    DbOption,
    console,
    reports_errors,
)

db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)


@db_app.command("upgrade", short_help="Apply the schema migrations.")
@reports_errors
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
               db: DbOption = None) -> None:
    """Apply the schema migrations (the store also does this when it opens)."""
    from promed_agents.storage.database import check_revision, make_engine, upgrade

    check_revision(revision)
    engine = make_engine(db, adopt=True)  # the user asks: a database becomes a store
    try:
        reached = upgrade(engine, revision)
    finally:
        engine.dispose()
    console.print(f"{engine.url.render_as_string(hide_password=True)} is at revision {reached}")


@db_app.command("current", short_help="Print the schema revision.")
@reports_errors
def db_current(db: DbOption = None) -> None:
    """Print the schema revision of the database and the newest one known."""
    from promed_agents.storage.database import current_revision, head_revision, make_engine

    engine = make_engine(db, create=False)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    console.print(f"current: {current or '(empty database)'}; newest: {head_revision()}")
