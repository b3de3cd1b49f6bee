"""Jobs submitted as GA4GH TES tasks: the task's name, description, tags and request.

Revision ID: 0009_tes_tasks
Revises: 0008_review_exchange
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_tes_tasks"
down_revision: str | None = "0008_review_exchange"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the table, empty: the jobs kept so far were not submitted as tasks."""
    op.create_table(
        "tes_tasks",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_tes_tasks_job_id_jobs"),
        sa.PrimaryKeyConstraint("job_id", name="pk_tes_tasks"),
    )
    op.create_index("ix_tes_tasks_name", "tes_tasks", ["name"])


def downgrade() -> None:
    """Drop the table (the jobs stay, no longer shown as tasks)."""
    op.drop_index("ix_tes_tasks_name", table_name="tes_tasks")
    op.drop_table("tes_tasks")
