"""The site app: one FastAPI app serving the internal API (`/internal`) and the external one
(`/external`), so two proxies can expose them separately.

`create_site_app` serves a site built by the composition root
(`mahiru.bootstrap.build_site`): it mounts the middleware, the routers and
the metrics route, and starts and stops the site's background loops with the
app; it builds nothing of the site itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mahiru.api.errors import error_responses, install_error_handlers
from mahiru.api.middleware import install_middleware
from mahiru.api.openapi import NETWORK_CERTIFICATE, USER_CERTIFICATE, describe_security, new_app
from mahiru.api.routes.site import mount_site_routes
from mahiru.api.routes.site.dashboard.pages import BASE as DASHBOARD
from mahiru.api.site_callers import authenticate_callers
from mahiru.api.site_models import ErrorOut
from mahiru.bootstrap import Site
from mahiru.errors import path_redactor

logger = logging.getLogger("mahiru.site")


def create_site_app(
    site: Site, *, start_replication: bool = True, start_jobs: bool = True
) -> FastAPI:
    """The app serving `site` (built by `mahiru.bootstrap.build_site`).

    With `start_replication`, replication runs in the background while the
    app runs; `POST /internal/replication/run` runs a round on demand. With
    `start_jobs`, the job services (step execution and job following) run
    while the app runs. At shutdown the loops stop and the site is closed
    (`Site.close`: what `build_site` opened).
    """
    config, services, jobs = site.config, site.services, site.jobs
    authenticator, metrics = site.edge.authenticator, site.edge.metrics
    to_close: list[Callable[[], None]] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "site starting",
            extra={
                "site": config.site_id,
                "owner": config.owner,
                "database": site.storage.database.url,
                "internal_url": config.internal_url,
                "external_url": config.external_url,
            },
        )
        if start_replication:
            services.replication.loop.start()
        if start_jobs:
            jobs.start()
        try:
            yield
        finally:
            if start_jobs:
                jobs.stop()
            services.replication.loop.stop()
            for close in reversed(to_close):
                close()
            site.close()
            logger.info("site stopped", extra={"site": config.site_id})

    app = new_app(
        f"Mahiru site {config.site_id}",
        "The internal API (/internal) serves the users of the site's owner party; the"
        " external API (/external) serves the other registered sites.",
        responses=_ERROR_RESPONSES,
        lifespan=lifespan,
    )
    app.state.site = site
    app.state.services = services
    app.state.jobs = jobs
    install_error_handlers(app, redact=path_redactor(config.data_dir.resolve(), config.data_dir))
    # The pending refusal summaries are written before the database closes.
    to_close.append(authenticate_callers(app, authenticator, services, config.callers))
    # Added after authentication, so they wrap it: refused requests are logged too.
    install_middleware(
        app,
        body_limit=config.max_body_bytes,
        unlimited=("/internal/assets/",),
        metrics=metrics,
        origins=[url for url in (config.internal_url, config.external_url) if url],
        forms=(f"{DASHBOARD}/",),
        polls=("/external/rules/changes",),  # each peer's replication, every few seconds
    )

    mount_site_routes(
        app,
        services=services,
        authenticator=authenticator,
        clock=site.clock,
        metrics=metrics,
        metrics_scrapers=site.config.metrics_scrapers,
    )
    describe_security(
        app,
        {**USER_CERTIFICATE, **NETWORK_CERTIFICATE},
        lambda path: "networkCertificate" if path.startswith("/external/") else "userCertificate",
    )
    return app


_ERROR_RESPONSES = error_responses(ErrorOut, "The site failed or a dependency is unavailable.")
