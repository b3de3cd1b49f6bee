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

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from mahiru.api.auth import CertificateAuthenticator
from mahiru.api.errors import error_response, error_responses, install_error_handlers
from mahiru.api.metrics import ServiceMetrics
from mahiru.api.middleware import RequestGate, install_middleware
from mahiru.api.openapi import NETWORK_CERTIFICATE, describe_security, new_app
from mahiru.api.rate_limits import RateLimit, caller_identity
from mahiru.api.registry_models import ErrorModel
from mahiru.api.routes.registry import mount_registry_routes
from mahiru.bootstrap import Registry
from mahiru.errors import MahiruError

#: The registry's routes read so often that each answer is logged at debug, and counted.
ROUTINE_READS = ("/changes", "/version", "/health", "/parties", "/sites")

_ERROR_RESPONSES = error_responses(ErrorModel, "The registry failed or is unavailable.")


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
    # Every site asks for the changes every few seconds, clients and monitors for the
    # version, health and directory: routine reads, summarised (failures still logged).
    install_middleware(app, body_limit=config.max_body_bytes, metrics=metrics, polls=ROUTINE_READS)

    describe_security(app, NETWORK_CERTIFICATE, lambda path: "networkCertificate")
    mount_registry_routes(
        app, service, service_metrics=metrics, metrics_scrapers=config.metrics_scrapers
    )
    return app


def _install_authentication(
    app: FastAPI, authenticator: CertificateAuthenticator, refusals: RateLimit
) -> None:
    """Refuse every request without a network certificate, before anything else runs;
    an identity refused more often than `refusals` allows is answered 429."""

    async def authenticate(request: Request) -> Response | None:
        try:
            request.state.caller = authenticator.service(request)
        except MahiruError as error:
            try:
                refusals.check(caller_identity(authenticator, request))
            except MahiruError as limited:
                return error_response(limited)
            return error_response(error)
        return None

    app.add_middleware(RequestGate, check=authenticate)
