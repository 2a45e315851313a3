"""merge: HIS billing and inpatient, insurance settlement, WeChat Pay medical-insurance and QR
orders, payment orders with their insurance part, reconciliation, face verification

Revision ID: 0a1b2c3d4e5f
Revises: 5108581db829, 63b1edb78d38, b5d2e8f1c6a7, c4f1b2a9d7e3, c73751e29522, d7a3c9e1f2b4, e8b4c2d6a0f1,
f1a2b3c4d5e6
Create Date: 2026-11-30 06:55:00
"""
from collections.abc import Sequence

revision: str = '0a1b2c3d4e5f'
down_revision: str | Sequence[str] | None = (
    '5108581db829', '63b1edb78d38', 'b5d2e8f1c6a7', 'c4f1b2a9d7e3', 'c73751e29522', 'd7a3c9e1f2b4', 'e8b4c2d6a0f1',
    'f1a2b3c4d5e6',
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
