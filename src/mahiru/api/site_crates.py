"""Serving a job's crate: the zip is written to a temporary file, then streamed.

The zip is written whole before the first byte is sent, so an image that
turns out damaged while it is read (the egress gate's reads are verified)
makes the answer an error, never a crate cut short.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO, Any

from fastapi.responses import StreamingResponse

from mahiru.crate_archives import write_crate
from mahiru.model.crates import JobCrate
from mahiru.services.jobs.crates import ImageReader

_CHUNK = 1024 * 1024

#: OpenAPI description of the crate download response.
CRATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The job's RO-Crate (Provenance Run Crate 0.5), as a zip.",
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    },
}


def crate_response(crate: JobCrate, images: dict[str, ImageReader], name: str) -> StreamingResponse:
    """A streamed `application/zip` answer with `crate` and its images, as `name`.zip."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed once streamed, by _chunks)
    try:
        write_crate(spool, crate, images)
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    headers = {
        "Content-Length": str(size),
        "Content-Disposition": f'attachment; filename="{name}.zip"',
    }
    return StreamingResponse(_chunks(spool), media_type="application/zip", headers=headers)


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(_CHUNK):
            yield chunk
