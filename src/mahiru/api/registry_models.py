"""The JSON schema of the registry's answers (its records, lists and changes), and the
bounds of its change log. The registration documents it reads are described by the
model's own schema (`mahiru.model.registrations.SIGNED_DOCUMENT_SCHEMA`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_CHANGES_LIMIT = 1000
"""How many changes `GET /changes` returns when the caller gives no limit."""

MAX_CHANGES_LIMIT = 10_000
"""The largest `limit` `GET /changes` accepts."""

MAX_VERSION = 2**63 - 1
"""The largest version a change log can reach (a 64-bit column): `since` is checked against it."""

_SEGMENT = r"[A-Za-z0-9_.-]+"
_PARTY_ID = rf"^party:{_SEGMENT}:{_SEGMENT}$"
_SITE_ID = rf"^site:{_SEGMENT}:{_SEGMENT}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PartyModel(_Strict):
    """A registered party."""

    id: str = Field(pattern=_PARTY_ID, description="party:<namespace>:<name>")
    namespace: str = Field(description="The namespace the party owns: the one in its id.")
    public_key_pem: str = Field(description="The party's Ed25519 main public key (PEM).")
    user_ca_pem: str = Field(description="The certificate of the party's user CA (PEM).")


class EndpointsModel(_Strict):
    """Where a site's two APIs are reached."""

    internal: str | None = Field(description="URL of the API for the site's own users.")
    external: str | None = Field(description="URL of the API for other sites.")


class SiteModel(_Strict):
    """A registered site."""

    id: str = Field(pattern=_SITE_ID, description="site:<namespace>:<name>")
    owner: str = Field(pattern=_PARTY_ID, description="The party owning the site's namespace.")
    admin: str = Field(pattern=_PARTY_ID, description="The party administering the site.")
    endpoints: EndpointsModel
    tls_cert_pem: str = Field(description="The site's TLS certificate (PEM), from the network CA.")
    has_store: bool = Field(description="Whether the site stores assets.")
    has_runner: bool = Field(description="Whether the site runs workflow steps.")


class RegistrationResult(_Strict):
    """The outcome of a registration."""

    version: int = Field(description="The registry version that includes the registration.")
    changed: bool = Field(description="False if the registry already said exactly this.")


class PartyList(_Strict):
    """Every registered party, by id."""

    parties: list[PartyModel]


class SiteList(_Strict):
    """Every registered site, by id."""

    sites: list[SiteModel]


class ChangeModel(_Strict):
    """One entry of the registry's change log."""

    version: int = Field(ge=1)
    action: Literal["added", "updated", "removed"]
    subject: str = Field(description="The id of the party or site that changed.")
    record: PartyModel | SiteModel | None = Field(
        description="The party or site after the change; null when it was removed."
    )
    at: str = Field(description="When the registry applied the change (ISO 8601).")


class ChangeBatchModel(_Strict):
    """Changes after a version, and the version to ask from next.

    A version lower than the one asked about means the registry was reset:
    drop the replica and start again from 0.
    """

    version: int
    changes: list[ChangeModel]


class VersionModel(_Strict):
    """The registry's current version."""

    version: int


class HealthModel(_Strict):
    """The registry is up and can read its database."""

    status: Literal["ok"]
    version: int


class ErrorBody(BaseModel):
    """What went wrong."""

    type: str = Field(description="InvalidInput, Unauthenticated, PermissionDenied, ...")
    message: str
    details: Any = None


class ErrorModel(BaseModel):
    """The one error shape of every Mahiru API."""

    error: ErrorBody
