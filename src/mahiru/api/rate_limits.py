"""Per-identity rate limits: a token bucket for each caller, in memory, for a bounded
number of callers.

Each identity (a certificate's fingerprint, a site id, an address) gets a
bucket `burst` tokens deep, refilled at `per_second`; a request takes one
token or is refused with RateLimited, which says when the next token comes.
Only the `tracked` most recently seen identities are remembered: a flood of
new identities pushes out the oldest buckets, never grows the memory, and a
forgotten identity simply starts again with a full bucket.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

from cryptography.hazmat.primitives import hashes
from fastapi import Request

from mahiru.api.auth import CertificateAuthenticator
from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import MahiruError, RateLimited


def caller_identity(authenticator: CertificateAuthenticator, request: Request) -> str:
    """Whom a request counts against: its certificate's SHA-256 fingerprint, else its address."""
    try:
        certificate = authenticator.certificate(request)
    except MahiruError:
        return f"address {request.client.host if request.client else 'unknown'}"
    return certificate.fingerprint(hashes.SHA256()).hex()


class RateLimit:
    """Token buckets per identity; `check` takes a token or raises RateLimited."""

    def __init__(
        self, what: str, *, burst: int, per_second: float, tracked: int, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._what = what
        self._burst = float(burst)
        self._rate = per_second
        self._tracked = tracked
        self._clock = clock
        self._lock = threading.Lock()
        #: identity -> (tokens, when they were counted), least recently seen first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, identity: str) -> None:
        """Take one of `identity`'s tokens; RateLimited (with Retry-After) if it has none."""
        now = self._clock.monotonic()
        with self._lock:
            tokens, then = self._buckets.pop(identity, (self._burst, now))
            tokens = min(self._burst, tokens + (now - then) * self._rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[identity] = (tokens, now)
            while len(self._buckets) > self._tracked:
                self._buckets.popitem(last=False)
        if not allowed:
            wait = max(1, math.ceil((1.0 - tokens) / self._rate))
            raise RateLimited(
                f"too many {self._what} from this caller; retry in {wait} s",
                {"retry_after_seconds": wait},
            )

    def __len__(self) -> int:
        """How many identities are tracked now."""
        with self._lock:
            return len(self._buckets)
