"""MCTS search trees: one row per node.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table('search_nodes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.String(length=128), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('depth', sa.Integer(), nullable=False),
    sa.Column('thread_id', sa.String(length=256), nullable=False),
    sa.Column('checkpoint_id', sa.String(length=128), nullable=False),
    sa.Column('turn_text', sa.Text(), nullable=True),
    sa.Column('turn_kind', sa.String(length=16), nullable=True),
    sa.Column('reward', sa.Float(), nullable=False),
    sa.Column('sig', sa.Float(), nullable=True),
    sa.Column('disclosed_fact_ids', JSON, nullable=False),
    sa.Column('terminal', sa.Boolean(), nullable=False),
    sa.Column('correct', sa.Boolean(), nullable=True),
    sa.Column('visits', sa.Float(), nullable=False),
    sa.Column('value_sum', sa.Float(), nullable=False),
    sa.Column('episode_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_search_nodes_case_id_cases')),
    sa.ForeignKeyConstraint(['episode_id'], ['episodes.id'], name=op.f('fk_search_nodes_episode_id_episodes'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_search_nodes_experiment_id_experiments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_id'], ['search_nodes.id'], name=op.f('fk_search_nodes_parent_id_search_nodes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_search_nodes'))
    )
    op.create_index('ix_search_nodes_experiment_case', 'search_nodes', ['experiment_id', 'case_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_search_nodes_experiment_case', table_name='search_nodes')
    op.drop_table('search_nodes')
