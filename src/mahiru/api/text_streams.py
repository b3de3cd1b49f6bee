"""Plain text sent as it is written: a followed step's log, as a streamed response.

The service gives the log as pieces, an empty piece meaning "nothing new yet";
each piece is asked for in a worker thread (it reads the database and the
runner), and the pauses between are awaited here, so a quiet step holds no
worker thread however long it is followed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from mahiru.services.jobs.step_logs import FOLLOW_POLL_SECONDS


async def _paced(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    while True:
        piece = await run_in_threadpool(next, pieces, None)
        if piece is None:
            return
        if piece:
            yield piece
        else:
            await asyncio.sleep(FOLLOW_POLL_SECONDS)


def streamed_text(pieces: Iterator[bytes]) -> StreamingResponse:
    """`pieces` as a `text/plain` answer, each sent as it comes (not cached or buffered)."""
    return StreamingResponse(
        _paced(pieces),
        media_type="text/plain; charset=utf-8",
        # Sent as written: no proxy buffering (nginx), nothing kept by caches.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
