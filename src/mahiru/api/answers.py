"""Encoded answers kept by the version of the data they were made from.

A change feed asked again and again with the same `since` (every peer's
replication, every few seconds) is read from the database, built into
objects and encoded to JSON only once per version of the feed: the next
callers get the bytes. An answer made at another version is never given.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from fastapi import Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

#: How many answers are kept (least recently given dropped first).
KEPT_ANSWERS = 64
#: Answers larger than this are not kept (bytes): a whole large feed is asked rarely.
KEPT_ANSWER_BYTES = 4 * 1024 * 1024


class EncodedAnswers:
    """JSON answers by what was asked, each with the version it was made at."""

    def __init__(self, kept: int = KEPT_ANSWERS) -> None:
        self._kept = kept
        self._lock = threading.Lock()
        self._answers: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()

    def get(self, asked: Hashable, version: int) -> bytes | None:
        """The answer to `asked` made at `version`, if it is kept."""
        with self._lock:
            kept = self._answers.get(asked)
            if kept is None or kept[0] != version:
                return None
            self._answers.move_to_end(asked)
            return kept[1]

    def put(self, asked: Hashable, version: int, body: bytes) -> None:
        """Keep the answer to `asked` made at `version` (replacing one of another version)."""
        if len(body) > KEPT_ANSWER_BYTES:
            return
        with self._lock:
            self._answers[asked] = (version, body)
            self._answers.move_to_end(asked)
            while len(self._answers) > self._kept:
                self._answers.popitem(last=False)


async def app_answers(request: Request) -> EncodedAnswers | None:
    """The app's kept answers (`app.state.answers`), if it keeps any."""
    answers = getattr(request.app.state, "answers", None)
    return answers if isinstance(answers, EncodedAnswers) else None


def json_answer(body: bytes) -> Response:
    """A JSON response with an already encoded body."""
    return Response(body, media_type="application/json")


async def kept_json(
    answers: EncodedAnswers | None, asked: Hashable, version: int, make: Callable[[], BaseModel]
) -> Response:
    """The answer to `asked` made at `version`: the kept one, or `make()`'s (run in a worker
    thread: it reads the database), encoded and kept.

    Read `version` before what `make` reads: the answer is then at least as new
    as the version it is kept under.
    """
    kept = answers.get(asked, version) if answers is not None else None
    if kept is None:
        kept = await run_in_threadpool(_encoded, make)
        if answers is not None:
            answers.put(asked, version, kept)
    return json_answer(kept)


def _encoded(make: Callable[[], BaseModel]) -> bytes:
    return make().model_dump_json(by_alias=True).encode()
