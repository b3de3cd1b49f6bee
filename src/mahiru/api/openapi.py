"""What the registry's and the sites' apps share: how each is made and how it says who may call.

Both apps answer errors in one JSON shape, serve no interactive docs, name
operations after their routes, and describe in their OpenAPI document which
client certificate each operation needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from mahiru import __version__

#: The OpenAPI security schemes: every caller presents a client certificate.
NETWORK_CERTIFICATE = {
    "networkCertificate": {
        "type": "mutualTLS",
        "description": "A client certificate issued by the network CA (a registered site's).",
    }
}
USER_CERTIFICATE = {
    "userCertificate": {
        "type": "mutualTLS",
        "description": "A certificate from the site owner's user CA (role admin for changes).",
    }
}


def new_app(
    title: str, description: str, *, responses: Mapping[int | str, Any], lifespan: Any
) -> FastAPI:
    """A FastAPI app with the settings every Mahiru service uses."""
    return FastAPI(
        title=title,
        version=__version__,
        description=description,
        docs_url=None,
        redoc_url=None,
        responses=dict(responses),
        lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name,
    )


def describe_security(
    app: FastAPI, schemes: Mapping[str, Any], scheme_for_path: Callable[[str], str]
) -> None:
    """Say in the app's OpenAPI document which certificate (scheme) each path needs."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = dict(schemes)
            for path, operations in schema.get("paths", {}).items():
                for operation in operations.values():
                    operation["security"] = [{scheme_for_path(path): []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
