"""The tables of the Mahiru database, as SQLAlchemy Core metadata.

This is the current shape of the schema, used by the repositories and by
Alembic to check that the migrations produce it. The migrations under
`migrations/versions/` are frozen snapshots and never import this module's
tables: a new column means a new revision there *and* a change here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

#: Names for constraints and indexes, so that migrations can refer to them
#: the same way on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: Names of the change logs kept in `change_heads`.
REGISTRY_LOG = "registry"
RULES_LOG = "rules"
AUDIT_LOG = "audit"


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no time zones and hands back naive values; this type refuses
    naive input and always returns aware UTC datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing to store a naive datetime {value!r}; use UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# The last version handed out by each change log. Writers lock their log's row
# first, which serialises them and makes versions commit in increasing order:
# a reader never sees version N+1 before N, so `changes_since` misses nothing.
change_heads = Table(
    "change_heads",
    metadata,
    Column("log", Text, primary_key=True),
    Column("version", BigInteger, nullable=False),
)

# --- the registry (kept by the registry service) -------------------------------

parties = Table(
    "parties",
    metadata,
    Column("id", Text, primary_key=True),
    Column("namespace", Text, nullable=False, unique=True),
    Column("public_key_pem", Text, nullable=False),
    Column("user_ca_pem", Text, nullable=False),
)

sites = Table(
    "sites",
    metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text, ForeignKey("parties.id"), nullable=False, index=True),
    Column("admin", Text, ForeignKey("parties.id"), nullable=False, index=True),
    Column("endpoints", JSON, nullable=False),
    Column("tls_cert_pem", Text, nullable=False),
    Column("has_store", Boolean, nullable=False),
    Column("has_runner", Boolean, nullable=False),
)

registry_changes = Table(
    "registry_changes",
    metadata,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("action", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("record", JSON, nullable=True),
    Column("at", UtcDateTime, nullable=False),
)

# --- a site's own rules --------------------------------------------------------

rules = Table(
    "rules",
    metadata,
    Column("rule_id", Text, primary_key=True),
    Column("body", JSON, nullable=False),
    Column("signer_namespace", Text, nullable=False),
    Column("added_version", BigInteger, nullable=False),
    Column("revocation", JSON, nullable=True),
    Column("revoked_version", BigInteger, nullable=True),
)

rule_changes = Table(
    "rule_changes",
    metadata,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("action", Text, nullable=False),
    Column("rule_id", Text, nullable=False),
    Column("body", JSON, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

# --- replicas a site keeps of the registry and of its peers' rules -------------

replica_sources = Table(
    "replica_sources",
    metadata,
    Column("source", Text, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# No foreign keys or unique namespaces here: a replica mirrors its source,
# which enforces them, and must never refuse a batch its source accepted.
replica_parties = Table(
    "replica_parties",
    metadata,
    Column("id", Text, primary_key=True),
    Column("namespace", Text, nullable=False, index=True),
    Column("public_key_pem", Text, nullable=False),
    Column("user_ca_pem", Text, nullable=False),
)

replica_sites = Table(
    "replica_sites",
    metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("admin", Text, nullable=False),
    Column("endpoints", JSON, nullable=False),
    Column("tls_cert_pem", Text, nullable=False),
    Column("has_store", Boolean, nullable=False),
    Column("has_runner", Boolean, nullable=False),
)

replica_rules = Table(
    "replica_rules",
    metadata,
    Column("source", Text, primary_key=True),
    Column("rule_id", Text, primary_key=True),
    Column("body", JSON, nullable=False),
    Column("version", BigInteger, nullable=False),
)

replica_revocations = Table(
    "replica_revocations",
    metadata,
    Column("source", Text, primary_key=True),
    Column("rule_id", Text, primary_key=True),
    Column("body", JSON, nullable=False),
    Column("version", BigInteger, nullable=False),
)

replica_rejections = Table(
    "replica_rejections",
    metadata,
    Column("source", Text, primary_key=True),
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("rule_id", Text, nullable=True),
    Column("body", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

Index("ix_replica_revocations_rule_id", replica_revocations.c.rule_id)

# --- assets stored at a site ---------------------------------------------------

assets = Table(
    "assets",
    metadata,
    Column("id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("image_digest", Text, nullable=True, index=True),
    Column("size", BigInteger, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

# --- jobs: submitted here, and steps run here --------------------------------

# Jobs submitted at this site. `version` goes up with every change; updates
# compare it (and lock the row) so that no change is lost.
#: The image each asset id was first given. Never deleted, not even with the
#: asset: an id's content is immutable, so a rule about an id keeps meaning
#: the same bytes (new content needs a new id).
asset_images = Table(
    "asset_images",
    metadata,
    Column("asset_id", Text, primary_key=True),
    Column("image_digest", Text, nullable=False),
    Column("stored_at", UtcDateTime, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("submitter", Text, nullable=False, index=True),
    Column("submitter_site", Text, nullable=False),
    # The person (`name@party`) who submitted it; NULL for jobs from before 0005.
    Column("submitted_by", Text, nullable=True, index=True),
    Column("job", JSON, nullable=False),
    Column("plan", JSON, nullable=True),
    Column("state", Text, nullable=False, index=True),
    Column("reason", Text, nullable=True),
    Column("version", BigInteger, nullable=False),
    Column("submitted_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

# What a job submitted as a GA4GH TES task kept of the task besides the job itself
# (api/routes/site/internal/tes.py): its name, description, tags, and the executors
# and resources as the client sent them, to show them back.
tes_tasks = Table(
    "tes_tasks",
    metadata,
    Column("job_id", Text, ForeignKey("jobs.id"), primary_key=True),
    Column("name", Text, nullable=True, index=True),
    Column("description", Text, nullable=True),
    Column("tags", JSON, nullable=False),
    Column("request", JSON, nullable=False),
)

# Jobs of which a submitter's site handed this site steps to run (one per job:
# the steps are those the plan puts at `site`).
job_assignments = Table(
    "job_assignments",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("submitter_site", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("job", JSON, nullable=False),
    Column("plan", JSON, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
)

# One row per step of a job known here: the steps of jobs submitted here
# (wherever they run) and the steps handed to this site. No foreign key: a
# row belongs to a job in `jobs`, in `job_assignments`, or both.
job_steps = Table(
    "job_steps",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("step", Text, primary_key=True),
    Column("site", Text, nullable=False),
    Column("state", Text, nullable=False, index=True),
    Column("reason", Text, nullable=True),
    Column("exit_code", BigInteger, nullable=True),
    Column("log_tail", Text, nullable=True),
    Column("results", JSON, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("submitted_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

# The jobs that result provenance refers to, stored once by content digest.
provenance_jobs = Table(
    "provenance_jobs",
    metadata,
    Column("digest", Text, primary_key=True),
    Column("job", JSON, nullable=False),
)

# How each result stored here was computed. One computation has one result
# id, so the first provenance recorded for a result is as good as any.
result_provenance = Table(
    "result_provenance",
    metadata,
    Column("result_id", Text, primary_key=True),
    Column("job_id", Text, nullable=False),
    Column("step", Text, nullable=False),
    Column("output", Text, nullable=False),
    Column("submitter", Text, nullable=False),
    Column("job_digest", Text, ForeignKey("provenance_jobs.digest"), nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

# --- the audit log ---------------------------------------------------------------

# One row per event, numbered by the `audit` change log and chained by hash
# (see mahiru.model.audit). Rows are only ever appended.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", Text, nullable=False, index=True),
    Column("action", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("actor", Text, nullable=True),
    # The person (`name@party`) whose act it records; NULL for no person's act.
    Column("user", Text, nullable=True, index=True),
    Column("party", Text, nullable=True, index=True),
    Column("job", Text, nullable=True, index=True),
    Column("step", Text, nullable=True),
    Column("asset", Text, nullable=True, index=True),
    Column("details", JSON, nullable=False),
    Column("prev", Text, nullable=False),
    Column("hash", Text, nullable=False),
)

# --- reviews of results' release -------------------------------------------------

# One row per release a ReleaseReviewedBy rule asked a reviewer to look at: one result
# to one party under one rule. The release's key is unique, so asking again (or twice
# at once) finds the review already there; a decided review is never asked again.
reviews = Table(
    "reviews",
    metadata,
    Column("id", Text, primary_key=True),
    Column("result_id", Text, nullable=False),
    Column("receiving_party", Text, nullable=False),
    Column("rule_id", Text, nullable=False),
    Column("reviewer", Text, nullable=False),
    Column("job_id", Text, nullable=False),
    Column("digest", Text, nullable=False),
    Column("checks", JSON, nullable=False),
    Column("state", Text, nullable=False, index=True),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("decided_at", UtcDateTime, nullable=True),
    # The person (`name@party`) who decided, and the party they decided for.
    Column("decided_by", Text, nullable=True),
    Column("decided_by_party", Text, nullable=True),
    Column("reason", Text, nullable=True),
    Column("override", Boolean, nullable=False),
    # The signed statement of the decision: of an approved review (model/approvals.py),
    # or of a rejected one (model/rejections.py).
    Column("approval", JSON, nullable=True),
    # A mirror of a review held at another site (that site's id); null: held here.
    Column("held_at", Text, nullable=True),
    # The reviewer's sites a review held here was offered to (comma-separated), once it
    # reached them all.
    Column("offered_to", Text, nullable=True),
    # When a mirror's decision reached the site that holds the result.
    Column("reported_at", UtcDateTime, nullable=True),
)

Index(
    "ix_reviews_release",
    reviews.c.result_id,
    reviews.c.receiving_party,
    reviews.c.rule_id,
    unique=True,
)
Index("ix_reviews_requested_at", reviews.c.requested_at)
