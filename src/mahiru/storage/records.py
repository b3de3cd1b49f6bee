"""The values the repositories store and return.

Registry records and change records have a strict dict form (`to_dict` /
`from_dict`) so the registry and the sites can send them over HTTP for
replication exactly as they are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, NamedTuple, TypeVar

from mahiru.errors import InvalidInput
from mahiru.model.assets import Asset, PartyDescription, SiteDescription
from mahiru.model.fields import check_fields, flag, integer, optional_text, text, timestamp
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.policy.signing import Revocation, SignedRule


def _version(data: Mapping[str, Any], what: str) -> int:
    return integer(data, "version", what, minimum=1)


@dataclass(frozen=True, slots=True)
class PartyRecord:
    """A registered party: the namespace it owns, its main key and its user CA."""

    id: PartyId
    namespace: str
    public_key_pem: str
    user_ca_pem: str

    def describe(self) -> PartyDescription:
        """The party as the rest of the system sees it."""
        return PartyDescription(self.id, self.namespace)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "id": str(self.id),
            "namespace": self.namespace,
            "public_key_pem": self.public_key_pem,
            "user_ca_pem": self.user_ca_pem,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PartyRecord:
        """Parse the JSON form strictly (InvalidInput on any wrong field)."""
        what = "party record"
        keys = {"id", "namespace", "public_key_pem", "user_ca_pem"}
        check_fields(data, what, keys, headed=True, details={"data": data})
        return cls(
            PartyId.parse(text(data, "id", what)),
            text(data, "namespace", what),
            text(data, "public_key_pem", what),
            text(data, "user_ca_pem", what),
        )


@dataclass(frozen=True, slots=True)
class SiteEndpoints:
    """Where a site's two APIs are reached: its own users' and other sites'."""

    internal: str | None = None
    external: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """The JSON form: `{"internal": ..., "external": ...}`."""
        return {"internal": self.internal, "external": self.external}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SiteEndpoints:
        """Parse the JSON form strictly."""
        what = "site endpoints"
        check_fields(
            data, what, set(), {"internal", "external"}, headed=True, details={"data": data}
        )
        return cls(optional_text(data, "internal", what), optional_text(data, "external", what))


@dataclass(frozen=True, slots=True)
class SiteRecord:
    """A registered site: who owns and administers it, where and what it is."""

    id: SiteId
    owner: PartyId
    admin: PartyId
    endpoints: SiteEndpoints
    tls_cert_pem: str
    has_store: bool
    has_runner: bool

    def describe(self) -> SiteDescription:
        """The site as the planner sees it (its external endpoint)."""
        return SiteDescription(
            self.id,
            self.owner,
            self.admin,
            runner=self.has_runner,
            store=self.has_store,
            endpoint=self.endpoints.external,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "id": str(self.id),
            "owner": str(self.owner),
            "admin": str(self.admin),
            "endpoints": self.endpoints.to_dict(),
            "tls_cert_pem": self.tls_cert_pem,
            "has_store": self.has_store,
            "has_runner": self.has_runner,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SiteRecord:
        """Parse the JSON form strictly (InvalidInput on any wrong field)."""
        what = "site record"
        keys = {"id", "owner", "admin", "endpoints", "tls_cert_pem", "has_store", "has_runner"}
        check_fields(data, what, keys, headed=True, details={"data": data})
        return cls(
            SiteId.parse(text(data, "id", what)),
            PartyId.parse(text(data, "owner", what)),
            PartyId.parse(text(data, "admin", what)),
            SiteEndpoints.from_dict(data["endpoints"]),
            text(data, "tls_cert_pem", what),
            flag(data, "has_store", what),
            flag(data, "has_runner", what),
        )


class ChangeAction(Enum):
    """What a change-log entry did."""

    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"
    REVOKED = "revoked"


def _action(data: Mapping[str, Any], allowed: tuple[ChangeAction, ...], what: str) -> ChangeAction:
    value = data["action"]
    for action in allowed:
        if value == action.value:
            return action
    names = ", ".join(a.value for a in allowed)
    raise InvalidInput(f"{what} field 'action' must be one of {names}, got {value!r}")


@dataclass(frozen=True, slots=True)
class RegistryChange:
    """One entry of the registry's change log.

    `record` is the party or site as it is after the change, or None when the
    change removed it.
    """

    version: int
    action: ChangeAction
    subject: PartyId | SiteId
    record: PartyRecord | SiteRecord | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "version": self.version,
            "action": self.action.value,
            "subject": str(self.subject),
            "record": None if self.record is None else self.record.to_dict(),
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegistryChange:
        """Parse the JSON form strictly; the record must match the subject."""
        what = "registry change"
        keys = {"version", "action", "subject", "record", "at"}
        check_fields(data, what, keys, headed=True, details={"data": data})
        actions = (ChangeAction.ADDED, ChangeAction.UPDATED, ChangeAction.REMOVED)
        action = _action(data, actions, what)
        subject_text = text(data, "subject", what)
        subject: PartyId | SiteId
        if subject_text.startswith("site:"):
            subject = SiteId.parse(subject_text)
        else:
            subject = PartyId.parse(subject_text)
        raw = data["record"]
        record: PartyRecord | SiteRecord | None = None
        if action is ChangeAction.REMOVED:
            if raw is not None:
                raise InvalidInput(f"{what} {subject}: a removal carries no record")
        elif isinstance(subject, SiteId):
            record = SiteRecord.from_dict(raw)
        else:
            record = PartyRecord.from_dict(raw)
        if record is not None and record.id != subject:
            raise InvalidInput(f"{what}: record {record.id} does not match subject {subject}")
        return cls(_version(data, what), action, subject, record, timestamp(data, "at", what))


@dataclass(frozen=True, slots=True)
class RuleChange:
    """One entry of a site's rule log: a rule added, or a rule revoked."""

    version: int
    action: ChangeAction
    rule_id: str
    rule: SignedRule | None
    revocation: Revocation | None
    at: datetime

    def body(self) -> dict[str, Any]:
        """The signed rule's or revocation's JSON form."""
        if self.rule is not None:
            return self.rule.to_dict()
        assert self.revocation is not None  # one of the two is always set
        return dict(self.revocation.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the signed rule or the revocation under `body`."""
        return {
            "version": self.version,
            "action": self.action.value,
            "rule_id": self.rule_id,
            "body": self.body(),
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleChange:
        """Parse the JSON form strictly.

        Only the shape is checked here; signatures are the service's business.
        The rule_id must be the id of the rule in the body.
        """
        what = "rule change"
        keys = {"version", "action", "rule_id", "body", "at"}
        check_fields(data, what, keys, headed=True, details={"data": data})
        action = _action(data, (ChangeAction.ADDED, ChangeAction.REVOKED), what)
        rule_id = text(data, "rule_id", what)
        rule: SignedRule | None = None
        revocation: Revocation | None = None
        if action is ChangeAction.ADDED:
            rule = SignedRule.from_dict(data["body"])
            body_id = rule.rule_id
        else:
            revocation = Revocation.from_dict(data["body"])
            body_id = revocation.rule_id
        if body_id != rule_id:
            raise InvalidInput(f"{what}: rule_id {rule_id} does not match its body ({body_id})")
        at = timestamp(data, "at", what)
        return cls(_version(data, what), action, rule_id, rule, revocation, at)


C = TypeVar("C", RegistryChange, RuleChange)


class ChangeBatch(NamedTuple, Generic[C]):
    """Changes after some version, and the version to remember once they are applied.

    Unpacks as `(changes, version)`. If `version` is lower than the version
    asked about, the source has been reset: forget the replica and start over.
    """

    changes: list[C]
    version: int


@dataclass(frozen=True, slots=True)
class RejectedRule:
    """A rule (or revocation) from a peer that failed validation, kept for diagnostics."""

    source: str
    version: int
    rule_id: str | None
    body: Mapping[str, Any]
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """An asset stored at this site, with its image size and when it was stored."""

    asset: Asset
    size: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UnreadableRuleChange:
    """A rule change from a peer that could not even be parsed, with the reason."""

    version: int
    rule_id: str | None
    body: Mapping[str, Any]
    reason: str


class PeerRuleBatch(NamedTuple):
    """A page of a peer's rule log: parsed changes (or unreadable ones) and the version."""

    changes: list[RuleChange | UnreadableRuleChange]
    version: int
