"""A response's head is written with its body's first bytes, in one write; a head without a
body soon after is not held back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mahiru.server.protocol import JOINED_BODY_BYTES, HeadWithBody


class _Recorded(asyncio.Transport):
    """A transport that keeps what is written to it, and whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _turn(loop: asyncio.AbstractEventLoop) -> None:
    """Let the loop run what is due now."""
    loop.run_until_complete(asyncio.sleep(0))


def test_a_head_and_a_small_body_go_out_in_one_write(loop: asyncio.AbstractEventLoop) -> None:
    """Head, then body: one write of both, and nothing more at the next turn."""
    transport = _Recorded()
    response = HeadWithBody(transport, loop)
    response.write(b"HEAD\r\n\r\n")
    assert transport.writes == []
    response.write(b"body")
    response.write(b"more")
    _turn(loop)
    assert transport.writes == [b"HEAD\r\n\r\nbody", b"more"]


def test_a_large_first_body_write_is_not_copied_onto_the_head(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """A first body write over JOINED_BODY_BYTES follows the head as a write of its own."""
    transport = _Recorded()
    response = HeadWithBody(transport, loop)
    big = b"x" * (JOINED_BODY_BYTES + 1)
    response.write(b"HEAD")
    response.write(big)
    assert transport.writes == [b"HEAD", big]


def test_a_head_alone_goes_out_at_the_next_turn_or_before_a_close(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """A head whose body is slow to come is written at the loop's next turn; one followed by
    a close is written before the connection closes."""
    transport = _Recorded()
    response = HeadWithBody(transport, loop)
    response.write(b"HEAD")
    _turn(loop)
    assert transport.writes == [b"HEAD"]
    response.write(b"late body")
    assert transport.writes == [b"HEAD", b"late body"]

    closing = _Recorded()
    response = HeadWithBody(closing, loop)
    response.write(b"HEAD")
    response.close()
    assert closing.writes == [b"HEAD"] and closing.closed
    _turn(loop)
    assert closing.writes == [b"HEAD"]
