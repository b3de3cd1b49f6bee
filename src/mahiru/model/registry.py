"""The registry's values: parties, sites, and the change log that replicates them.

Records and changes have a strict dict form (`to_dict` / `from_dict`) so the
registry and the sites can send them over HTTP for replication exactly as
they are stored. `ChangeAction` and `ChangeBatch` are shared with the rule
log (`mahiru.policy.changes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, NamedTuple, TypeVar

from mahiru.errors import InvalidInput
from mahiru.model.assets import PartyDescription, SiteDescription
from mahiru.model.fields import (
    BOOLEAN,
    Field,
    Shape,
    check_fields,
    flag,
    integer,
    nullable,
    optional,
    optional_text,
    string,
    text,
    timestamp,
)
from mahiru.model.identifiers import PartyId, SiteId, identifier_pattern

_PARTY = string(pattern=identifier_pattern("party"), description="party:<namespace>:<name>")

PARTY_RECORD_SHAPE = Shape(
    "party record",
    "A registered party.",
    (
        Field("id", _PARTY),
        Field(
            "namespace",
            string(non_empty=True, description="The namespace the party owns: the one in its id."),
        ),
        Field(
            "public_key_pem",
            string(non_empty=True, description="The party's Ed25519 main public key (PEM)."),
        ),
        Field(
            "user_ca_pem",
            string(non_empty=True, description="The certificate of the party's user CA (PEM)."),
        ),
    ),
    headed=True,
)
SITE_ENDPOINTS_SHAPE = Shape(
    "site endpoints",
    "Where a site's two APIs are reached.",
    (
        optional(
            "internal",
            nullable(string(non_empty=True, description="URL of the API for the site's users.")),
        ),
        optional(
            "external",
            nullable(string(non_empty=True, description="URL of the API for other sites.")),
        ),
    ),
    headed=True,
)
SITE_RECORD_SHAPE = Shape(
    "site record",
    "A registered site.",
    (
        Field(
            "id", string(pattern=identifier_pattern("site"), description="site:<namespace>:<name>")
        ),
        Field("owner", {**_PARTY, "description": "The party owning the site's namespace."}),
        Field("admin", {**_PARTY, "description": "The party administering the site."}),
        Field("endpoints", SITE_ENDPOINTS_SHAPE.json_schema()),
        Field(
            "tls_cert_pem",
            string(
                non_empty=True,
                description="The site's TLS certificate (PEM), from the network CA.",
            ),
        ),
        Field("has_store", {**BOOLEAN, "description": "Whether the site stores assets."}),
        Field("has_runner", {**BOOLEAN, "description": "Whether the site runs workflow steps."}),
    ),
    headed=True,
)


def change_version(data: Mapping[str, Any], what: str) -> int:
    """The `version` field of a change's JSON form: an integer >= 1."""
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
        PARTY_RECORD_SHAPE.check(data, details={"data": data})
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
        SITE_ENDPOINTS_SHAPE.check(data, details={"data": data})
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
        SITE_RECORD_SHAPE.check(data, details={"data": data})
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


def change_action(
    data: Mapping[str, Any], allowed: tuple[ChangeAction, ...], what: str
) -> ChangeAction:
    """The `action` field of a change's JSON form, one of `allowed`; else InvalidInput."""
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
        action = change_action(data, actions, what)
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
        return cls(change_version(data, what), action, subject, record, timestamp(data, "at", what))


#: A registry change or a rule change (`mahiru.policy.changes.RuleChange`).
C = TypeVar("C")


class ChangeBatch(NamedTuple, Generic[C]):
    """Changes after some version, and the version to remember once they are applied.

    Unpacks as `(changes, version)`. If `version` is lower than the version
    asked about, the source has been reset: forget the replica and start over.
    """

    changes: list[C]
    version: int
