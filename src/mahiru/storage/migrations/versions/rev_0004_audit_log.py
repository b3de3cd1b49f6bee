"""The audit log: one hash-chained row per decision, transfer, rule and state change.

Revision ID: 0004_audit_log
Revises: 0003_asset_images
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_audit_log"
down_revision: str | None = "0003_asset_images"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the table and its numbering (the `audit` change log, starting at 0)."""
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("party", sa.Text(), nullable=True),
        sa.Column("job", sa.Text(), nullable=True),
        sa.Column("step", sa.Text(), nullable=True),
        sa.Column("asset", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    for column in ("kind", "party", "job", "asset"):
        op.create_index(f"ix_audit_log_{column}", "audit_log", [column])
    heads = sa.table("change_heads", sa.column("log", sa.Text), sa.column("version", sa.BigInteger))
    op.bulk_insert(heads, [{"log": "audit", "version": 0}])


def downgrade() -> None:
    """Drop the table and its numbering."""
    op.execute(sa.text("DELETE FROM change_heads WHERE log = 'audit'"))
    op.drop_table("audit_log")
