"""face verification sandbox: captures

Revision ID: f1a2b3c4d5e6
Revises: 9e0f1a2b3c4d
Create Date: 2026-11-30 06:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import datasources.store.types

revision: str = 'f1a2b3c4d5e6'
down_revision: str | None = '9e0f1a2b3c4d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'face_capture',
        sa.Column('token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('person_digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('live', sa.Boolean(), nullable=False),
        sa.Column('created_at', datasources.store.types.UTCDateTime(), nullable=False),
        sa.Column('expires_at', datasources.store.types.UTCDateTime(), nullable=False),
        sa.Column('used_at', datasources.store.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('token'),
    )


def downgrade() -> None:
    op.drop_table('face_capture')
