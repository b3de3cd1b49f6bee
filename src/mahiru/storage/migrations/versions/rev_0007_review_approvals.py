"""Review approvals: the signed statement of each approved review, kept with it.

Revision ID: 0007_review_approvals
Revises: 0006_reviews
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_review_approvals"
down_revision: str | None = "0006_reviews"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column: the signed approval (JSON) of an approved review, null otherwise
    (and for reviews approved before approvals were signed)."""
    op.add_column("reviews", sa.Column("approval", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop the column (the audit log keeps the record of each decision)."""
    op.drop_column("reviews", "approval")
