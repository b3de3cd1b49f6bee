"""The one error tree of Mahiru.

Errors are grouped by what the caller can do about them. The HTTP layer maps
them to status codes and the CLI to exit codes, each in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class MahiruError(Exception):
    """Base of every error Mahiru raises on purpose."""

    type_name = "Internal"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON error shape shared by the CLI and the HTTP APIs."""
        return {"error": {"type": self.type_name, "message": self.message, "details": self.details}}


class InvalidInput(MahiruError):
    """The caller sent something malformed; fix the input and retry."""

    type_name = "InvalidInput"


class InvalidIdentifier(InvalidInput):
    """An identifier text that does not parse as the expected kind."""


class InvalidSignature(InvalidInput):
    """A signature that does not verify, or was made by the wrong party."""


class TooLarge(InvalidInput):
    """A request body or upload over its size limit (HTTP 413, however it was sent)."""


class NotFound(MahiruError):
    """The named thing does not exist (here)."""

    type_name = "NotFound"


class NotKnown(NotFound):
    """One answer for a named thing the caller may not know of: not there, or not theirs.

    Every route that takes an id (a job, a result, an audit record, a grant
    token) answers both cases with this, so a caller cannot tell a thing that
    exists but is not its business from a thing that does not exist: the
    status, the message and the details depend only on what it asked for.
    """

    def __init__(self, kind: str, name: object) -> None:
        super().__init__(f"{kind} {name} is not known here", {"kind": kind, "id": str(name)})


class PermissionDenied(MahiruError):
    """Policy or authorisation forbids this; `details` holds the explanation."""

    type_name = "PermissionDenied"


class ReleaseRejected(PermissionDenied):
    """A result's reviewer rejected its release to this party: final, with their reason
    (`details` name the `review`, the `reviewer` and the `reason`)."""

    type_name = "ReleaseRejected"


class Unauthenticated(MahiruError):
    """The caller could not be identified."""

    type_name = "Unauthenticated"


class Conflict(MahiruError):
    """The request conflicts with the current state (duplicate, wrong version)."""

    type_name = "Conflict"


class AwaitingReview(Conflict):
    """A result's release waits for its reviewer (a ReleaseReviewedBy rule holds it): ask
    again once they decided. `details` name the `review` and the `reviewer`."""

    type_name = "AwaitingReview"


class Unavailable(MahiruError):
    """A dependency is unreachable right now; retrying later may succeed."""

    type_name = "Unavailable"


class RateLimited(Unavailable):
    """The caller sent more than its share; retry after `retry_after` seconds.

    The details hold `retry_after_seconds`, which the HTTP layer also sends
    as the Retry-After header.
    """

    type_name = "RateLimited"

    @property
    def retry_after(self) -> int:
        """Whole seconds until a retry may succeed (at least 1)."""
        value = self.details.get("retry_after_seconds") if isinstance(self.details, dict) else None
        return value if isinstance(value, int) and value > 0 else 1


class Internal(MahiruError):
    """A bug or an unexpected state: not the caller's fault."""

    type_name = "Internal"


def path_redactor(*roots: object, placeholder: str = "<site data>") -> Callable[[str], str]:
    """A function that replaces the given folders' paths in a text by `placeholder`.

    A site's own folders are its business: error messages and step failure
    reasons that reach users and other parties name them only as `placeholder`.
    """
    texts = sorted({str(root) for root in roots if str(root) not in ("", ".", "/")}, key=len)
    texts.reverse()  # the longest first, so a folder inside another is replaced whole

    def redact(text: str) -> str:
        for root in texts:
            text = text.replace(root, placeholder)
        return text

    return redact
