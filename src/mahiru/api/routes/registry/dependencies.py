"""What the registry's routes are handed: the registry service on the app's state, the
caller the authentication middleware let in, and the check of query parameters.

They are coroutines, run on the event loop: a plain function would be run in a
worker thread, a hop that costs more than what they do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from mahiru.api.answers import EncodedAnswers, app_answers
from mahiru.api.auth import ServiceCaller
from mahiru.errors import Internal, InvalidInput
from mahiru.services.registry import RegistryService


async def registry_service(request: Request) -> RegistryService:
    """The registry service of the app."""
    service: RegistryService = request.app.state.registry
    return service


async def registry_version(request: Request) -> int:
    """The registry's current version, read as the request arrives.

    Never cached in this process: other workers of the registry may have
    written. On a local SQLite file it is read at once on the event loop
    (microseconds); elsewhere in a worker thread.
    """
    service: RegistryService = request.app.state.registry
    version = service.version_now()
    return version if version is not None else await run_in_threadpool(service.version)


async def authenticated_caller(request: Request) -> ServiceCaller:
    """The caller the authentication middleware let in."""
    caller = getattr(request.state, "caller", None)
    if not isinstance(caller, ServiceCaller):
        raise Internal("the request reached a handler without being authenticated")
    return caller


def only_query(*allowed: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing query parameters other than `allowed`."""

    async def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - set(allowed))
        if unknown:
            expected = ", ".join(allowed) if allowed else "none"
            raise InvalidInput(
                f"unknown query parameter(s): {', '.join(unknown)} (expected: {expected})",
                {"unknown": unknown},
            )

    return check


Registry = Annotated[RegistryService, Depends(registry_service)]
Caller = Annotated[ServiceCaller, Depends(authenticated_caller)]
Answers = Annotated[EncodedAnswers | None, Depends(app_answers)]
Version = Annotated[int, Depends(registry_version)]

#: The dependencies of a route that takes no query parameters.
NO_QUERY = [Depends(only_query())]
