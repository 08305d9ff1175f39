"""The table of trained checkpoints is renamed ``model_checkpoints``.

LangGraph's checkpointers keep their own ``checkpoints`` table; with LangGraph's
checkpoints in the store's own database (``promed mcts`` on PostgreSQL does that by
default) the two collided and the first consultation failed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.rename_table('checkpoints', 'model_checkpoints')


def downgrade() -> None:
    op.rename_table('model_checkpoints', 'checkpoints')
