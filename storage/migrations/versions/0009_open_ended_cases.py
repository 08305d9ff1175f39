"""Open-ended cases: a case may have no options and a diagnosis (with a recommendation)
for its answer, the facts the doctor is given at the start, and each fact where it comes
from (the patient, or an examination or test) with its field path. Every new column is
nullable: stored multiple-choice cases are unchanged.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")  # as in 0001


def upgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.add_column(sa.Column('diagnosis', sa.Text(), nullable=True))
        batch.add_column(sa.Column('recommendation', sa.Text(), nullable=True))
        batch.add_column(sa.Column('initial_fact_ids', JSON, nullable=True))
    with op.batch_alter_table('facts') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('path', sa.Text(), nullable=True))


def downgrade() -> None:
    # plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch would re-create ``cases``,
    # which the facts' and episodes' foreign keys forbid
    for table, column in (('facts', 'path'), ('facts', 'kind'),
                          ('cases', 'initial_fact_ids'), ('cases', 'recommendation'),
                          ('cases', 'diagnosis')):
        op.drop_column(table, column)
