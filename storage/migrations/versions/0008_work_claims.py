"""Shared jobs: the items (cases) of a job that several worker processes run on one
store, and which worker claimed each and when it was done.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'work_claims',
        sa.Column('job', sa.String(length=512), nullable=False),
        sa.Column('item', sa.String(length=256), nullable=False),
        sa.Column('worker', sa.String(length=128), nullable=True),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('job', 'item', name=op.f('pk_work_claims')),
    )


def downgrade() -> None:
    op.drop_table('work_claims')
