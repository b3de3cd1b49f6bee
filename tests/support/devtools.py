"""Driving headless Chromium page by page over the DevTools protocol, through the pipe
Chromium opens with `--remote-debugging-pipe` (fd 3 to it, fd 4 from it; messages are JSON
ended by a NUL byte): navigate, run an expression in the page, wait for a page to load.

The tests use it to click through the dashboard as a person would; an expression run
this way is the test's, not the page's, so the pages' policy of no script still holds.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.browser import PAGE_TIMEOUT, Browser


class DevTools:
    """One page of a running Chromium, driven over the DevTools pipe."""

    def __init__(self, process: subprocess.Popen[bytes], to_chromium: int, from_chromium: int):
        self._process = process
        self._out = to_chromium
        self._in = from_chromium
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        targets = self._call("Target.getTargets")["targetInfos"]
        page = next(t["targetId"] for t in targets if t["type"] == "page")
        self._session = self._call("Target.attachToTarget", targetId=page, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """The result of `method` on the page; AssertionError on a protocol error."""
        return self._call(method, self._session, **params)

    def navigate(self, url: str) -> None:
        """Open `url` and wait until it has loaded."""
        with self.loading():
            self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of `expression`, run in the page."""
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression!r} failed: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    @contextmanager
    def loading(self) -> Iterator[None]:
        """Wait, after the block, for the page the block made the browser open to load."""
        self._events.clear()
        yield
        deadline = time.monotonic() + PAGE_TIMEOUT
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            self._events.append(self._read(deadline))

    def _call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + PAGE_TIMEOUT
        while True:
            answer = self._read(deadline)
            if answer.get("id") != self._next_id:
                self._events.append(answer)
                continue
            if "error" in answer:
                raise AssertionError(f"{method}: {answer['error']}")
            result: dict[str, Any] = answer["result"]
            return result

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._in], [], [], max(left, 0))
            if not ready:
                raise AssertionError("chromium did not answer in time")
            chunk = os.read(self._in, 65536)
            if not chunk:
                raise AssertionError(f"chromium left (exit {self._process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed


@contextmanager
def devtools(browser: Browser) -> Iterator[DevTools]:
    """`browser` started headless on a blank page, driven over the DevTools pipe; stopped
    after the block."""
    to_read, to_chromium = os.pipe()  # Chromium reads commands from its fd 3
    from_chromium, to_write = os.pipe()  # and writes answers and events to its fd 4

    def on_fds_3_and_4() -> None:  # in the child, before Chromium starts
        high = os.dup(to_read), os.dup(to_write)
        os.dup2(high[0], 3)
        os.dup2(high[1], 4)

    process = browser.start(
        "--remote-debugging-pipe",
        "about:blank",
        # Inherited are only the descriptors made so: the two dup2 makes (Python opens
        # every other one not to be inherited).
        close_fds=False,
        preexec_fn=on_fds_3_and_4,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(to_read)
    os.close(to_write)
    try:
        yield DevTools(process, to_chromium, from_chromium)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        os.close(to_chromium)
        os.close(from_chromium)
