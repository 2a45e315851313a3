"""merge the payment and insurance sandboxes' branches with idempotency and sagas

Revision ID: 9e0f1a2b3c4d
Revises: 3b7e5c1a9d24, 45d04adc4665, 4b7e2a9c1d03, 8d2e3f4a5b6c, 8ff3cedb55a0
Create Date: 2026-11-30 05:15:00
"""
from collections.abc import Sequence

revision: str = '9e0f1a2b3c4d'
down_revision: str | Sequence[str] | None = ('3b7e5c1a9d24', '45d04adc4665', '4b7e2a9c1d03', '8d2e3f4a5b6c', '8ff3cedb55a0')
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
