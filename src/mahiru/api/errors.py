"""Mapping of errors to HTTP status codes and the one JSON error shape: the only place it happens.

Every error response body is `{"error": {"type", "message", "details"}}`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mahiru.errors import (
    Conflict,
    Internal,
    InvalidInput,
    MahiruError,
    NotFound,
    PermissionDenied,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
)

logger = logging.getLogger("mahiru.api")

STATUS_CODES: dict[type[MahiruError], int] = {
    InvalidInput: 400,
    TooLarge: 413,
    Unauthenticated: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
    RateLimited: 429,
    Internal: 500,
}

_HTTP_TYPES = {
    400: "InvalidInput",
    401: "Unauthenticated",
    403: "PermissionDenied",
    404: "NotFound",
    405: "InvalidInput",
    409: "Conflict",
    411: "InvalidInput",
    413: "InvalidInput",
    415: "InvalidInput",
    429: "RateLimited",
    503: "Unavailable",
}


def status_for(error: MahiruError) -> int:
    """The HTTP status of an error: the nearest class in the tree that has one."""
    for cls in type(error).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500


def error_responses(model: type[Any], failed: str) -> dict[int | str, dict[str, Any]]:
    """The error responses every operation documents, one answer per kind of refusal."""
    return {
        401: {
            "model": model,
            "description": "No identity: no client certificate, or one from no CA this"
            " service knows.",
        },
        403: {
            "model": model,
            "description": "A known caller that may not do this (the wrong kind of"
            " certificate, role or namespace, or a policy denial).",
        },
        413: {"model": model, "description": "The body is over its limit, however it is sent."},
        "4XX": {"model": model, "description": "The request was refused (bad input: 400/404/409)."},
        "5XX": {"model": model, "description": failed},
    }


def error_body(type_name: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON error shape."""
    return {"error": {"type": type_name, "message": message, "details": details}}


def error_headers(error: MahiruError) -> dict[str, str] | None:
    """The headers an error's response carries besides its body (Retry-After for a 429)."""
    if isinstance(error, RateLimited):
        return {"Retry-After": str(error.retry_after)}
    return None


def error_response(error: MahiruError) -> JSONResponse:
    """The response for a Mahiru error."""
    return JSONResponse(
        error.to_dict(), status_code=status_for(error), headers=error_headers(error)
    )


def install_error_handlers(app: FastAPI, *, redact: Callable[[str], str] | None = None) -> None:
    """Make every error of `app`, expected or not, come out in the JSON error shape.

    With `redact`, a Mahiru error's message and details pass through it first
    (a site's own folder paths stay out of what callers read).
    """

    async def on_mahiru_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, MahiruError)
        if redact is None:
            return error_response(error)
        body = json.loads(redact(json.dumps(error.to_dict())))
        return JSONResponse(body, status_code=status_for(error), headers=error_headers(error))

    async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        problems = [
            {
                "location": ".".join(str(part) for part in problem.get("loc", ())),
                "problem": str(problem.get("msg", "")),
            }
            for problem in error.errors()
        ]
        summary = "; ".join(f"{p['location']}: {p['problem']}" for p in problems[:5])
        return JSONResponse(
            error_body("InvalidInput", f"invalid request: {summary}", problems), status_code=400
        )

    async def on_http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        type_name = _HTTP_TYPES.get(error.status_code, "Internal")
        return JSONResponse(
            error_body(type_name, str(error.detail)),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse(
            error_body("Internal", "internal server error; see the server log"), status_code=500
        )

    app.add_exception_handler(MahiruError, on_mahiru_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
