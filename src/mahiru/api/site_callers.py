"""Who may call which part of a site, checked before any route runs, how often, and the
record of every caller refused.

The external API takes registered sites only, the internal API the owner
party's users, and the rest (the OpenAPI document, unknown paths) either.
Refusals go to the audit log with the certificate presented and the
endpoint asked for, folded per identity and reason (services.site.refusals).
An identity refused more often than its rate limit allows, and a site
calling the external API more often than its own, is answered 429.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from mahiru.api.auth import CertificateAuthenticator, ServiceCaller, UserCaller
from mahiru.api.errors import error_response
from mahiru.api.middleware import RequestGate
from mahiru.api.rate_limits import RateLimit, caller_identity
from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.config import CallerLimits
from mahiru.errors import MahiruError
from mahiru.services.site import SiteServices
from mahiru.services.site.refusals import Refusal, RefusalRecorder


def authenticate_callers(
    app: FastAPI,
    authenticator: CertificateAuthenticator,
    services: SiteServices,
    limits: CallerLimits,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> Callable[[], None]:
    """Check every caller before anything reads the request (docs/security.md).

    The external API takes registered sites only, the internal API the owner
    party's users, and the rest (the OpenAPI document, unknown paths) either.
    So a refused caller gets 401/403 whatever its body holds, never a
    validation error (or 429 beyond its rate of refusals). The routes still
    check admin roles and policy. Returns what writes the pending refusal
    summaries, for when the site stops.
    """
    recorder = RefusalRecorder(
        services.oversight.audit, clock, interval=limits.refusal_audit_interval_seconds
    )
    refusals = RateLimit(
        "refused requests",
        burst=limits.refused_burst,
        per_second=limits.refused_per_second,
        tracked=limits.tracked_identities,
        clock=clock,
    )
    external = RateLimit(
        "requests to the external API",
        burst=limits.external_burst,
        per_second=limits.external_per_second,
        tracked=limits.tracked_identities,
        clock=clock,
    )

    registered = services.replication.registered_sites

    def caller(request: Request) -> ServiceCaller | UserCaller:
        path = request.url.path
        if path.startswith("/external/"):
            service = authenticator.service(request)
            request.state.peer = registered.identify(service.identity, service.certificate)
            return service
        if path.startswith("/internal/"):
            return authenticator.user(request)
        try:
            return authenticator.service(request)
        except MahiruError:
            return authenticator.user(request)

    def known(request: Request) -> ServiceCaller | UserCaller | None:
        """The caller, if it is let in without reading the database; None to ask `identify`
        (which also records a refusal)."""
        path = request.scope["path"]
        try:
            if path.startswith("/external/"):
                service = authenticator.service(request)
                peer = registered.known(service.identity, service.certificate)
                if peer is None:
                    return None
                request.state.peer = peer
                return service
            if path.startswith("/internal/"):
                return authenticator.user(request)
        except MahiruError:
            return None
        return None

    async def authenticate(request: Request) -> Response | None:
        identified: ServiceCaller | UserCaller | MahiruError | None = known(request)
        if identified is None:
            # In a worker thread: identifying a site reads the registry replica.
            identified = await run_in_threadpool(identify, request)
        if isinstance(identified, MahiruError):
            return error_response(identified)
        request.state.caller = identified
        try:
            if isinstance(identified, ServiceCaller) and request.scope["path"].startswith(
                "/external/"
            ):
                external.check(str(identified.identity))
        except MahiruError as error:
            return error_response(error)
        if recorder.due():
            await run_in_threadpool(recorder.flush_due)
        return None

    app.add_middleware(RequestGate, check=authenticate)

    def identify(request: Request) -> ServiceCaller | UserCaller | MahiruError:
        """The caller, or the error to answer it with (its refusal recorded)."""
        try:
            return caller(request)
        except MahiruError as error:
            return refused(request, error)

    def refused(request: Request, error: MahiruError) -> MahiruError:
        """Record the refusal (folded); the error to answer: `error`, or 429 beyond the rate."""
        refusal = _refusal(authenticator, request, error)
        recorder.refused(refusal)
        try:
            refusals.check(refusal.identity)
        except MahiruError as limited:
            return limited
        return error

    return recorder.flush


def _refusal(
    authenticator: CertificateAuthenticator, request: Request, error: MahiruError
) -> Refusal:
    """What is recorded of a refused request: the certificate presented, the endpoint asked."""
    asked = {"method": request.method, "path": request.url.path}
    identity = caller_identity(authenticator, request)
    try:
        certificate = authenticator.certificate(request)
    except MahiruError:
        return Refusal(identity, error.message, "(no certificate)", asked)
    subject = certificate.subject.rfc4514_string()
    presented = {
        "subject": subject,
        "issuer": certificate.issuer.rfc4514_string(),
        "fingerprint": identity,
    }
    return Refusal(identity, error.message, subject, {**asked, **presented})
