"""Episodes name the checkpointer thread and the training step they came from.

A consultation run with a LangGraph checkpointer stores its thread id, unique within its
experiment, so that a resumed run records each consultation once; a training rollout
stores the optimizer step it was sampled at, so that a resumed training run can drop the
rollouts of steps it redoes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('episodes') as batch:
        batch.add_column(sa.Column('thread_id', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('training_step', sa.Integer(), nullable=True))
    op.create_index('ix_episodes_experiment_thread', 'episodes',
                    ['experiment_id', 'thread_id'], unique=True)
    op.create_index('ix_episodes_experiment_step', 'episodes',
                    ['experiment_id', 'training_step'])


def downgrade() -> None:
    op.drop_index('ix_episodes_experiment_step', table_name='episodes')
    op.drop_index('ix_episodes_experiment_thread', table_name='episodes')
    with op.batch_alter_table('episodes') as batch:
        batch.drop_column('training_step')
        batch.drop_column('thread_id')
