"""Asset images: the image each asset id was first given, kept after the asset is deleted.

Revision ID: 0003_asset_images
Revises: 0002_jobs
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_asset_images"
down_revision: str | None = "0002_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the table, filled with the images the stored assets have now."""
    table = op.create_table(
        "asset_images",
        sa.Column("asset_id", sa.Text(), nullable=False),
        sa.Column("image_digest", sa.Text(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("asset_id", name="pk_asset_images"),
    )
    op.execute(
        table.insert().from_select(
            ["asset_id", "image_digest", "stored_at"],
            sa.select(sa.column("id"), sa.column("image_digest"), sa.column("created_at"))
            .select_from(sa.table("assets"))
            .where(sa.column("image_digest").is_not(None)),
        )
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("asset_images")
