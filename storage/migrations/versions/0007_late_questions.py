"""Doctor turns say whether they were a question asked after the final request (recorded
as invalid), which the graph knows, instead of reward designs guessing it from the text.
Turns recorded before this revision are filled in by the rule the reward designs used
(the last doctor turn of a timed-out episode, invalid, whose text starts with
"question"), so their rewards do not change.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('turns') as batch:
        batch.add_column(sa.Column('late_question', sa.Boolean(), nullable=True))
    op.execute("""
        UPDATE turns SET late_question = (
            kind = 'invalid'
            AND lower(ltrim(text)) LIKE 'question%'
            AND "index" = (SELECT max(t2."index") FROM turns t2
                         WHERE t2.episode_id = turns.episode_id AND t2.role = 'doctor')
            AND (SELECT e.status FROM episodes e WHERE e.id = turns.episode_id) = 'timeout')
        WHERE role = 'doctor'""")


def downgrade() -> None:
    with op.batch_alter_table('turns') as batch:
        batch.drop_column('late_question')
