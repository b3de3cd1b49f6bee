"""The registry's HTTP API (reference: HTTP APIs): parties, sites, signed registrations and changes.

    GET  /parties                    {"parties": [party, ...]}
    GET  /parties/{party_id}         party
    GET  /sites                      {"sites": [site, ...]}
    GET  /sites/{site_id}            site
    POST /registrations              signed document -> {"version": V, "changed": bool}
    GET  /changes?since=N[&limit=M]  {"version": V, "changes": [change, ...]}
    GET  /version                    {"version": V}
    GET  /health                     {"status": "ok", "version": V}
    GET  /openapi.json               this API's OpenAPI document

Every request, to any path, must present a client certificate issued by the
network CA (over TLS, or forwarded by a trusted proxy); it is checked before
routing, so not even the OpenAPI document or a 404 is given to strangers.
Errors come in the one JSON error shape; unknown fields and query parameters
are rejected with 400; bodies are limited to `max_body_bytes`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from mahiru.api.auth import CertificateAuthenticator, ServiceCaller
from mahiru.api.errors import error_response, error_responses, install_error_handlers
from mahiru.api.metrics import ServiceMetrics
from mahiru.api.middleware import install_middleware
from mahiru.api.openapi import NETWORK_CERTIFICATE, describe_security, new_app
from mahiru.api.rate_limits import RateLimit, caller_identity
from mahiru.bootstrap import Registry
from mahiru.errors import Internal, InvalidInput, MahiruError, PermissionDenied
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.services.registry import RegistryService
from mahiru.storage.registrations import SignedRegistration

DEFAULT_CHANGES_LIMIT = 1000
"""How many changes `GET /changes` returns when the caller gives no limit."""

MAX_CHANGES_LIMIT = 10_000
"""The largest `limit` `GET /changes` accepts."""

MAX_VERSION = 2**63 - 1
"""The largest version a change log can reach (a 64-bit column): `since` is checked against it."""

_SEGMENT = r"[A-Za-z0-9_.-]+"
_PARTY_ID = rf"^party:{_SEGMENT}:{_SEGMENT}$"
_SITE_ID = rf"^site:{_SEGMENT}:{_SEGMENT}$"
_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"


# --- the JSON schema of the API ------------------------------------------------


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


class _Document(_Strict):
    base_version: int = Field(
        ge=0,
        description="The registry version the document was made against; it applies only"
        " while the registry is still at exactly this version.",
    )
    issued_at: str = Field(
        pattern=_TIME,
        description="When the document was signed (UTC); accepted for 15 minutes.",
    )
    signature: str = Field(
        description="Base64 Ed25519 signature by the main key of the subject's namespace owner"
        " over the canonical JSON (sorted keys, no white space, UTF-8) of all other fields.",
    )


class PutPartyDocument(_Document):
    """Register a party or update its keys."""

    action: Literal["put_party"]
    record: PartyModel


class PutSiteDocument(_Document):
    """Register a site or update it."""

    action: Literal["put_site"]
    record: SiteModel


class RemovePartyDocument(_Document):
    """Remove a party that has no sites left."""

    action: Literal["remove_party"]
    id: str = Field(pattern=_PARTY_ID)


class RemoveSiteDocument(_Document):
    """Remove a site."""

    action: Literal["remove_site"]
    id: str = Field(pattern=_SITE_ID)


RegistrationDocument = Annotated[
    PutPartyDocument | PutSiteDocument | RemovePartyDocument | RemoveSiteDocument,
    Field(discriminator="action"),
]


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


_ERROR_RESPONSES = error_responses(ErrorModel, "The registry failed or is unavailable.")


# --- the app -------------------------------------------------------------------


def create_registry_app(registry: Registry) -> FastAPI:
    """The app serving `registry` (built by `mahiru.bootstrap.build_registry`).

    At shutdown the registry is closed (`Registry.close`: what
    `build_registry` opened; a database passed in is left open).
    """
    config, service, authenticator = registry.config, registry.service, registry.authenticator

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            registry.close()

    app = new_app("Mahiru registry", __doc__ or "", responses=_ERROR_RESPONSES, lifespan=lifespan)
    install_error_handlers(app)
    _install_authentication(
        app,
        authenticator,
        RateLimit(
            "refused requests",
            burst=config.callers.refused_burst,
            per_second=config.callers.refused_per_second,
            tracked=config.callers.tracked_identities,
        ),
    )
    # Added after authentication, so they wrap it: refused requests are logged too.
    metrics = ServiceMetrics()
    install_middleware(app, body_limit=config.max_body_bytes, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    def read_metrics(caller: Caller) -> Response:
        """The registry's Prometheus metrics, for the identities named in metrics_scrapers."""
        if caller.identity not in config.metrics_scrapers:
            raise PermissionDenied(
                f"{caller} may not read the metrics: only the identities named in"
                " metrics_scrapers may"  # named by the setting: a refusal lists nobody
            )
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    describe_security(app, NETWORK_CERTIFICATE, lambda path: "networkCertificate")
    _add_routes(app, service)
    return app


def _install_authentication(
    app: FastAPI, authenticator: CertificateAuthenticator, refusals: RateLimit
) -> None:
    """Refuse every request without a network certificate, before anything else runs;
    an identity refused more often than `refusals` allows is answered 429."""

    @app.middleware("http")
    async def authenticate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            request.state.caller = authenticator.service(request)
        except MahiruError as error:
            try:
                refusals.check(caller_identity(authenticator, request))
            except MahiruError as limited:
                return error_response(limited)
            return error_response(error)
        return await call_next(request)


def _caller(request: Request) -> ServiceCaller:
    """The caller the authentication middleware let in."""
    caller = getattr(request.state, "caller", None)
    if not isinstance(caller, ServiceCaller):
        raise Internal("the request reached a handler without being authenticated")
    return caller


def _only_query(*allowed: str) -> Callable[[Request], None]:
    """A dependency refusing query parameters other than `allowed`."""

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - set(allowed))
        if unknown:
            expected = ", ".join(allowed) if allowed else "none"
            raise InvalidInput(
                f"unknown query parameter(s): {', '.join(unknown)} (expected: {expected})",
                {"unknown": unknown},
            )

    return check


Caller = Annotated[ServiceCaller, Depends(_caller)]


def _add_routes(app: FastAPI, service: RegistryService) -> None:
    no_query = [Depends(_only_query())]

    @app.get("/parties", response_model=PartyList, dependencies=no_query)
    def list_parties(caller: Caller) -> dict[str, Any]:
        """Every registered party, by id."""
        return {"parties": [party.to_dict() for party in service.parties()]}

    @app.get("/parties/{party_id}", response_model=PartyModel, dependencies=no_query)
    def get_party(party_id: str, caller: Caller) -> dict[str, Any]:
        """One registered party."""
        return service.party(PartyId.parse(party_id)).to_dict()

    @app.get("/sites", response_model=SiteList, dependencies=no_query)
    def list_sites(caller: Caller) -> dict[str, Any]:
        """Every registered site, by id."""
        return {"sites": [site.to_dict() for site in service.sites()]}

    @app.get("/sites/{site_id}", response_model=SiteModel, dependencies=no_query)
    def get_site(site_id: str, caller: Caller) -> dict[str, Any]:
        """One registered site."""
        return service.site(SiteId.parse(site_id)).to_dict()

    @app.post("/registrations", response_model=RegistrationResult, dependencies=no_query)
    def post_registration(
        document: Annotated[RegistrationDocument, Body()], caller: Caller
    ) -> dict[str, Any]:
        """Apply a signed registration document (see the document schemas for the rules)."""
        signed = SignedRegistration.from_dict(document.model_dump())
        outcome = service.apply(caller.identity, signed)
        return {"version": outcome.version, "changed": outcome.changed}

    @app.get(
        "/changes",
        response_model=ChangeBatchModel,
        dependencies=[Depends(_only_query("since", "limit"))],
    )
    def get_changes(
        caller: Caller,
        since: Annotated[
            int, Query(ge=0, le=MAX_VERSION, description="The version already seen (0: none).")
        ],
        limit: Annotated[
            int | None,
            Query(
                ge=1,
                le=MAX_CHANGES_LIMIT,
                description=f"At most this many changes (default {DEFAULT_CHANGES_LIMIT}). When"
                " a batch is full its version is that of its last change: ask again from there"
                " until a batch comes back empty.",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """The changes after version `since`, oldest first."""
        batch = service.changes_since(since, limit=limit or DEFAULT_CHANGES_LIMIT)
        return {"version": batch.version, "changes": [c.to_dict() for c in batch.changes]}

    @app.get("/version", response_model=VersionModel, dependencies=no_query)
    def get_version(caller: Caller) -> dict[str, Any]:
        """The registry's current version: sign registrations against it."""
        return {"version": service.version()}

    @app.get("/health", response_model=HealthModel, dependencies=no_query)
    def get_health(caller: Caller) -> dict[str, Any]:
        """Whether the registry is up and its database readable."""
        return {"status": "ok", "version": service.version()}
