"""Jobs: jobs submitted here, steps handed to this site, their states, result provenance.

Revision ID: 0002_jobs
Revises: 0001_initial
Create Date: 2024-07-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_jobs"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the job, step, assignment and provenance tables."""
    op.create_table(
        "jobs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("submitter", sa.Text(), nullable=False),
        sa.Column("submitter_site", sa.Text(), nullable=False),
        sa.Column("job", sa.JSON(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("submitted_at", _TIMESTAMP, nullable=False),
        sa.Column("started_at", _TIMESTAMP, nullable=True),
        sa.Column("finished_at", _TIMESTAMP, nullable=True),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_submitter", "jobs", ["submitter"])
    op.create_index("ix_jobs_state", "jobs", ["state"])

    op.create_table(
        "job_assignments",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("submitter_site", sa.Text(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("job", sa.JSON(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("received_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_job_assignments"),
    )

    op.create_table(
        "job_steps",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("step", sa.Text(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.BigInteger(), nullable=True),
        sa.Column("log_tail", sa.Text(), nullable=True),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("submitted_at", _TIMESTAMP, nullable=False),
        sa.Column("started_at", _TIMESTAMP, nullable=True),
        sa.Column("finished_at", _TIMESTAMP, nullable=True),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "step", name="pk_job_steps"),
    )
    op.create_index("ix_job_steps_state", "job_steps", ["state"])

    op.create_table(
        "provenance_jobs",
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("job", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_provenance_jobs"),
    )
    op.create_table(
        "result_provenance",
        sa.Column("result_id", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("step", sa.Text(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("submitter", sa.Text(), nullable=False),
        sa.Column("job_digest", sa.Text(), nullable=False),
        sa.Column("recorded_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("result_id", name="pk_result_provenance"),
        sa.ForeignKeyConstraint(
            ["job_digest"],
            ["provenance_jobs.digest"],
            name="fk_result_provenance_job_digest_provenance_jobs",
        ),
    )


def downgrade() -> None:
    """Drop the job tables (all job history and provenance is lost)."""
    op.drop_index("ix_job_steps_state", table_name="job_steps")
    op.drop_index("ix_jobs_state", table_name="jobs")
    op.drop_index("ix_jobs_submitter", table_name="jobs")
    for table in ("result_provenance", "provenance_jobs", "job_steps", "job_assignments", "jobs"):
        op.drop_table(table)
