"""Serving and receiving asset images over HTTP: streamed, with digests and Range requests.

Downloads support a single byte range (`Range: bytes=N-`, `bytes=N-M`,
`bytes=-N`) so an interrupted transfer resumes where it stopped; `If-Range`
with the image's ETag (`"sha256:<hex>"`) makes sure the resumed part belongs
to the same image. A malformed or multi-part Range is ignored (the whole
image is sent), as HTTP allows.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response

from mahiru.api.errors import error_body
from mahiru.services.site import ImageFile

DIGEST_HEADER = "X-Mahiru-Digest"

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

#: OpenAPI descriptions of the image download responses.
IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The whole image (a container image archive).",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    206: {
        "description": "The requested byte range of the image.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    416: {"description": "The range starts beyond the end of the image."},
}

#: OpenAPI description of a streamed image upload body.
IMAGE_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The image (a container image archive), streamed as raw bytes.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte positions `header` asks for, or None to send all.

    Returns (size, size - 1) - an empty, unsatisfiable range - when the range
    starts at or beyond the end.
    """
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0:
            return (size, size - 1)
        return (max(size - suffix, 0), size - 1)
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        return (size, size - 1)
    last = int(last_text) if last_text else size - 1
    return (first, min(last, size - 1))


def image_response(image: ImageFile, range_header: str | None, if_range: str | None) -> Response:
    """A streamed response with the image, or the requested part of it."""
    etag = f'"sha256:{image.digest}"'
    headers = {
        DIGEST_HEADER: f"sha256:{image.digest}",
        "ETag": etag,
        "Accept-Ranges": "bytes",
    }
    wanted = None
    if range_header and (if_range is None or if_range.strip() == etag):
        wanted = parse_range(range_header, image.size)
    if wanted is None:
        headers["Content-Length"] = str(image.size)
        return StreamingResponse(
            image.read(),
            media_type="application/octet-stream",
            headers=headers,
        )
    first, last = wanted
    if first >= image.size:
        body = error_body(
            "InvalidInput",
            f"the requested range starts beyond the end of the image ({image.size} bytes)",
            {"size": image.size},
        )
        return JSONResponse(
            body, status_code=416, headers={"Content-Range": f"bytes */{image.size}"}
        )
    length = last - first + 1
    headers["Content-Length"] = str(length)
    headers["Content-Range"] = f"bytes {first}-{last}/{image.size}"
    return StreamingResponse(
        image.read(first, length),
        status_code=206,
        media_type="application/octet-stream",
        headers=headers,
    )
