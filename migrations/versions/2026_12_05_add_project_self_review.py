"""add projects.self_review

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 02:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing projects keep a reviewer away from their own annotations, like new ones.
    with op.batch_alter_table('projects') as batch:
        batch.add_column(sa.Column('self_review', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('projects') as batch:
        batch.drop_column('self_review')
