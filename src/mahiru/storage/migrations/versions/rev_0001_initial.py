"""Initial schema: registry, rules, replicas and assets.

Revision ID: 0001_initial
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table, and the change logs at version 0."""
    heads = op.create_table(
        "change_heads",
        sa.Column("log", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("log", name="pk_change_heads"),
    )
    op.bulk_insert(heads, [{"log": "registry", "version": 0}, {"log": "rules", "version": 0}])

    op.create_table(
        "parties",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("user_ca_pem", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_parties"),
        sa.UniqueConstraint("namespace", name="uq_parties_namespace"),
    )
    op.create_table(
        "sites",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("admin", sa.Text(), nullable=False),
        sa.Column("endpoints", sa.JSON(), nullable=False),
        sa.Column("tls_cert_pem", sa.Text(), nullable=False),
        sa.Column("has_store", sa.Boolean(), nullable=False),
        sa.Column("has_runner", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sites"),
        sa.ForeignKeyConstraint(["owner"], ["parties.id"], name="fk_sites_owner_parties"),
        sa.ForeignKeyConstraint(["admin"], ["parties.id"], name="fk_sites_admin_parties"),
    )
    op.create_index("ix_sites_owner", "sites", ["owner"])
    op.create_index("ix_sites_admin", "sites", ["admin"])
    op.create_table(
        "registry_changes",
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=True),
        sa.Column("at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_registry_changes"),
    )

    op.create_table(
        "rules",
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("signer_namespace", sa.Text(), nullable=False),
        sa.Column("added_version", sa.BigInteger(), nullable=False),
        sa.Column("revocation", sa.JSON(), nullable=True),
        sa.Column("revoked_version", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("rule_id", name="pk_rules"),
    )
    op.create_table(
        "rule_changes",
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_rule_changes"),
    )

    op.create_table(
        "replica_sources",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_replica_sources"),
    )
    op.create_table(
        "replica_parties",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("user_ca_pem", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_replica_parties"),
    )
    op.create_index("ix_replica_parties_namespace", "replica_parties", ["namespace"])
    op.create_table(
        "replica_sites",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("admin", sa.Text(), nullable=False),
        sa.Column("endpoints", sa.JSON(), nullable=False),
        sa.Column("tls_cert_pem", sa.Text(), nullable=False),
        sa.Column("has_store", sa.Boolean(), nullable=False),
        sa.Column("has_runner", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_replica_sites"),
    )
    op.create_table(
        "replica_rules",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "rule_id", name="pk_replica_rules"),
    )
    op.create_table(
        "replica_revocations",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "rule_id", name="pk_replica_revocations"),
    )
    op.create_index("ix_replica_revocations_rule_id", "replica_revocations", ["rule_id"])
    op.create_table(
        "replica_rejections",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("source", "version", name="pk_replica_rejections"),
    )

    op.create_table(
        "assets",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("image_digest", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_assets"),
    )
    op.create_index("ix_assets_image_digest", "assets", ["image_digest"])


def downgrade() -> None:
    """Drop every table (all data is lost)."""
    for index, table in (
        ("ix_assets_image_digest", "assets"),
        ("ix_replica_revocations_rule_id", "replica_revocations"),
        ("ix_replica_parties_namespace", "replica_parties"),
        ("ix_sites_admin", "sites"),
        ("ix_sites_owner", "sites"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "assets",
        "replica_rejections",
        "replica_revocations",
        "replica_rules",
        "replica_sites",
        "replica_parties",
        "replica_sources",
        "rule_changes",
        "rules",
        "registry_changes",
        "sites",
        "parties",
        "change_heads",
    ):
        op.drop_table(table)
