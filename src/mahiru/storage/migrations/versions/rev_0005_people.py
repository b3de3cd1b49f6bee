"""People: the user behind each audit record of an act, and the user who submitted each job.

Both columns are empty (NULL) in rows written before: an old audit record's
hash was computed without a user, and still verifies; an old job has no known
submitting user, so only the party's admins see it.

Revision ID: 0005_people
Revises: 0004_audit_log
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_people"
down_revision: str | None = "0004_audit_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `audit_log.user` and `jobs.submitted_by`, each indexed (both are filtered on)."""
    op.add_column("audit_log", sa.Column("user", sa.Text(), nullable=True))
    op.create_index("ix_audit_log_user", "audit_log", ["user"])
    op.add_column("jobs", sa.Column("submitted_by", sa.Text(), nullable=True))
    op.create_index("ix_jobs_submitted_by", "jobs", ["submitted_by"])


def downgrade() -> None:
    """Drop both columns (the users they named are lost)."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_submitted_by")
        batch.drop_column("submitted_by")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index("ix_audit_log_user")
        batch.drop_column("user")
