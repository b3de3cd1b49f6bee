"""The JSON answers of the site API, as pydantic models (they make the OpenAPI document).

Request bodies have no models here: each route takes a JSON object, documented
by the JSON Schema of the model parser's `Shape` (`mahiru.model.fields`), and
hands it to that parser, the one check of its fields and their meaning.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from mahiru.model.assets import AssetRecord
from mahiru.model.registry import ChangeBatch
from mahiru.policy.changes import RejectedRule, RuleChange
from mahiru.services.site import SiteStatus, SourceStatus


class ErrorBody(BaseModel):
    """What went wrong: the error type (InvalidInput, NotFound, ...), a message, details."""

    type: str
    message: str
    details: JsonValue = None


class ErrorOut(BaseModel):
    """The one error shape of every Mahiru API."""

    error: ErrorBody


# --- assets --------------------------------------------------------------------


class AssetOut(BaseModel):
    """A stored asset."""

    id: str
    kind: Literal["data", "compute"]
    metadata: dict[str, JsonValue]
    image_digest: str | None = Field(description="64 hex digits of the image's sha256, if any")
    size: int | None = Field(description="image size in bytes, if there is an image")
    created_at: datetime

    @classmethod
    def of(cls, record: AssetRecord) -> AssetOut:
        """The model of a stored asset record."""
        asset = record.asset
        return cls(
            id=str(asset.id),
            kind="compute" if asset.kind.value == "compute" else "data",
            metadata=dict(asset.metadata),
            image_digest=asset.image_digest,
            size=record.size,
            created_at=record.created_at,
        )


class AssetList(BaseModel):
    """Every asset stored at this site, by id."""

    assets: list[AssetOut]


# --- rules ---------------------------------------------------------------------


class RuleOutcomeOut(BaseModel):
    """What storing a rule or revocation did: `changed` is false if it was already there."""

    rule_id: str
    changed: bool
    version: int | None


class RuleEntry(BaseModel):
    """A rule the site decides by, with where it came from (this site, or a peer)."""

    rule_id: str
    source: str
    rule: dict[str, str]


class RuleList(BaseModel):
    """Rules, oldest first."""

    rules: list[RuleEntry]


class RejectedRuleOut(BaseModel):
    """A rule or revocation from a peer that failed validation, with the reason."""

    source: str
    version: int
    rule_id: str | None
    body: dict[str, JsonValue]
    reason: str
    at: datetime

    @classmethod
    def of(cls, rejected: RejectedRule) -> RejectedRuleOut:
        """The model of a rejected rule record."""
        return cls(
            source=rejected.source,
            version=rejected.version,
            rule_id=rejected.rule_id,
            body=dict(rejected.body),
            reason=rejected.reason,
            at=rejected.at,
        )


class RejectedRuleList(BaseModel):
    """Rejected rules and revocations, by source and version."""

    rejected: list[RejectedRuleOut]


class RuleChangeOut(BaseModel):
    """One entry of this site's rule log: a signed rule added, or a signed revocation."""

    version: int
    action: Literal["added", "revoked"]
    rule_id: str
    body: dict[str, str] = Field(description="the signed rule, or the signed revocation")
    at: datetime


class RuleChangeBatch(BaseModel):
    """Rule changes after the asked version; ask again from `version` to continue."""

    changes: list[RuleChangeOut]
    version: int

    @classmethod
    def of(cls, batch: ChangeBatch[RuleChange]) -> RuleChangeBatch:
        """The model of a batch of rule changes."""
        changes = [
            RuleChangeOut(
                version=change.version,
                action="added" if change.rule is not None else "revoked",
                rule_id=change.rule_id,
                body={key: str(value) for key, value in change.body().items()},
                at=change.at,
            )
            for change in batch.changes
        ]
        return cls(changes=changes, version=batch.version)


# --- policy --------------------------------------------------------------------


class RequirementOut(BaseModel):
    """One requirement of a decision and the rule chain that met it, if any."""

    requirement: list[str]
    origin: str | None = None
    met: bool
    chain: list[dict[str, str]] | None
    explanation: str


class DecisionOut(BaseModel):
    """A policy decision and why: the rule chains, or what was missing."""

    allowed: bool
    subject: str
    action: str
    target: str
    explanation: str
    note: str | None = None
    requirements: list[RequirementOut] | None = None
    parts: list[DecisionOut] | None = None


# --- status --------------------------------------------------------------------


class SourceStatusOut(BaseModel):
    """Replication from one source: the registry or a peer site."""

    source: str
    version: int
    last_attempt: datetime | None
    last_success: datetime | None
    last_error: str | None
    applied: int
    rejected: int
    failures: int
    next_attempt: datetime | None

    @classmethod
    def of(cls, status: SourceStatus) -> SourceStatusOut:
        """The model of a source's status."""
        return cls(
            source=status.source,
            version=status.version,
            last_attempt=status.last_attempt,
            last_success=status.last_success,
            last_error=status.last_error,
            applied=status.applied,
            rejected=status.rejected,
            failures=status.failures,
            next_attempt=status.next_attempt,
        )


class StatusOut(BaseModel):
    """The site's state: replication per source, rule and asset counts."""

    site: str
    owner: str
    own_rules_version: int
    rules_in_policy: int
    rejected_rules: int
    assets: int
    replication: list[SourceStatusOut]

    @classmethod
    def of(cls, status: SiteStatus) -> StatusOut:
        """The model of the site's status."""
        return cls(
            site=str(status.site),
            owner=str(status.owner),
            own_rules_version=status.own_rules_version,
            rules_in_policy=status.rules_in_policy,
            rejected_rules=status.rejected_rules,
            assets=status.assets,
            replication=[SourceStatusOut.of(source) for source in status.sources],
        )
