"""Who may call which part of a site, checked before any route runs, and the record of
every caller refused.

The external API takes registered sites only, the internal API the owner
party's users, and the rest (the OpenAPI document, unknown paths) either.
Each refusal is written to the audit log with the certificate presented and
the endpoint asked for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cryptography.hazmat.primitives import hashes
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from mahiru.api.auth import CertificateAuthenticator, ServiceCaller, UserCaller
from mahiru.api.errors import error_response
from mahiru.errors import MahiruError
from mahiru.model.audit import AuditEntry, AuditKind
from mahiru.services.site import SiteServices


def authenticate_callers(
    app: FastAPI, authenticator: CertificateAuthenticator, services: SiteServices
) -> None:
    """Check every caller before anything reads the request (docs/security.md).

    The external API takes registered sites only, the internal API the owner
    party's users, and the rest (the OpenAPI document, unknown paths) either.
    So a refused caller gets 401/403 whatever its body holds, never a
    validation error. The routes still check admin roles and policy.
    """

    def caller(request: Request) -> ServiceCaller | UserCaller:
        path = request.url.path
        if path.startswith("/external/"):
            service = authenticator.service(request)
            services.registered_sites.identify(service.identity, service.certificate)
            return service
        if path.startswith("/internal/"):
            return authenticator.user(request)
        try:
            return authenticator.service(request)
        except MahiruError:
            return authenticator.user(request)

    @app.middleware("http")
    async def authenticate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            # In a worker thread: identifying a site reads the registry replica.
            request.state.caller = await run_in_threadpool(caller, request)
        except MahiruError as error:
            await run_in_threadpool(refused, request, error)
            return error_response(error)
        return await call_next(request)

    def refused(request: Request, error: MahiruError) -> None:
        try:
            certificate = authenticator.certificate(request)
        except MahiruError:
            presented: dict[str, str] = {}
        else:
            presented = {
                "subject": certificate.subject.rfc4514_string(),
                "issuer": certificate.issuer.rfc4514_string(),
                "fingerprint": certificate.fingerprint(hashes.SHA256()).hex(),
            }
        services.audit.record(
            AuditEntry(
                AuditKind.REFUSAL,
                "authenticate",
                "refused",
                actor=presented.get("subject", "(no certificate)"),
                details={
                    "method": request.method,
                    "path": request.url.path,
                    "reason": error.message,
                    **presented,
                },
            )
        )
