"""Reviews decided at another party's site: where a mirrored review's result is held, to
which site a review was offered, and when a mirror's decision was reported back.

Revision ID: 0008_review_exchange
Revises: 0007_review_approvals
Create Date: 2026-12-16
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_review_exchange"
down_revision: str | None = "0007_review_approvals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the columns, null for every review kept so far (held here, nothing to send)."""
    op.add_column("reviews", sa.Column("held_at", sa.Text(), nullable=True))
    op.add_column("reviews", sa.Column("offered_to", sa.Text(), nullable=True))
    op.add_column("reviews", sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the columns (mirrored reviews then read as if held here)."""
    for column in ("reported_at", "offered_to", "held_at"):
        op.drop_column("reviews", column)
