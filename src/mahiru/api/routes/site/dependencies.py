"""What a site's routes are handed: the services on the app's state, and the verified caller.

`create_site_app` puts the collaborators on `app.state` (`services`, `jobs`,
`authenticator`, `clock`); these small dependencies read them, so a route
names what it needs in its signature (`services: Services, caller: Admin`).
Each caller dependency also keeps the caller on the request, for the access log.
They are coroutines, run on the event loop: a plain function would be run in
a worker thread, a hop that costs more than what they do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from mahiru.api.auth import CertificateAuthenticator, ServiceCaller, UserCaller
from mahiru.clock import Clock
from mahiru.errors import PermissionDenied
from mahiru.model.registry import SiteRecord
from mahiru.services.jobs import JobServices
from mahiru.services.site import SiteServices


async def site_services(request: Request) -> SiteServices:
    """The site's services (assets, rules, policy, replication, logs)."""
    services: SiteServices = request.app.state.services
    return services


async def job_services(request: Request) -> JobServices:
    """The site's job services (submissions, hand-over, egress, live grants)."""
    jobs: JobServices = request.app.state.jobs
    return jobs


async def authenticator(request: Request) -> CertificateAuthenticator:
    """What checks the callers' certificates."""
    auth: CertificateAuthenticator = request.app.state.authenticator
    return auth


async def site_clock(request: Request) -> Clock:
    """The site's clock."""
    clock: Clock = request.app.state.clock
    return clock


Services = Annotated[SiteServices, Depends(site_services)]
Jobs = Annotated[JobServices, Depends(job_services)]
Authenticator = Annotated[CertificateAuthenticator, Depends(authenticator)]
SiteClock = Annotated[Clock, Depends(site_clock)]


async def user(request: Request, auth: Authenticator) -> UserCaller:
    """The caller: any user of the site's owner party."""
    caller = auth.user(request)
    request.state.caller = caller
    return caller


async def admin(caller: Annotated[UserCaller, Depends(user)]) -> UserCaller:
    """The caller: a user of the site's owner party with the admin role."""
    if not caller.is_admin:
        raise PermissionDenied(f"{caller} is not an admin of this site")
    return caller


async def reviewer(caller: Annotated[UserCaller, Depends(user)]) -> UserCaller:
    """The caller: a user of the site's owner party with the reviewer or admin role."""
    if not caller.person.reviews:
        raise PermissionDenied(
            f"{caller} may not see or decide reviews: that takes the reviewer (or admin)"
            " role in their certificate"
        )
    return caller


async def registered_peer(request: Request, services: Services, auth: Authenticator) -> SiteRecord:
    """The caller: a registered site, known by its certificate (as the authentication
    middleware found it, if it did)."""
    peer = getattr(request.state, "peer", None)
    if isinstance(peer, SiteRecord) and isinstance(
        getattr(request.state, "caller", None), ServiceCaller
    ):
        return peer
    caller = auth.service(request)
    request.state.caller = caller
    sites = services.replication.registered_sites
    # In a worker thread: identifying a site reads the registry replica.
    return await run_in_threadpool(sites.identify, caller.identity, caller.certificate)


User = Annotated[UserCaller, Depends(user)]
Admin = Annotated[UserCaller, Depends(admin)]
Reviewer = Annotated[UserCaller, Depends(reviewer)]
Peer = Annotated[SiteRecord, Depends(registered_peer)]
