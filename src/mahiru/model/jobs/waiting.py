"""Why a step that has not finished does not move on: a `Waiting` value.

The part of a site that met the obstacle says it (handing steps over to a
peer, fetching an input, asking for live access, the container engine, a
reviewer, the steps it needs); `since` is when the step first met it and
`attempts` how many tries in a row have met it since. `site` names the peer
it waits for, if any, so a page can point at that peer's entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mahiru.errors import InvalidInput
from mahiru.model.fields import check_fields, integer, text, timestamp
from mahiru.model.identifiers import SiteId
from mahiru.model.jobs.checks import aware, site_field


@dataclass(frozen=True, slots=True)
class Waiting:
    """What a step waits for (`reason`, for people), since when, after how many tries,
    and at which other site (None: at this one, or none)."""

    reason: str
    since: datetime
    attempts: int = 1
    site: SiteId | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str) or not self.reason:
            raise InvalidInput(f"a waiting reason must be non-empty text, got {self.reason!r}")
        aware(self.since, "waiting since")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise InvalidInput(f"waiting attempts must be an integer, got {self.attempts!r}")
        if self.attempts < 1:
            raise InvalidInput(f"waiting attempts must be at least 1, got {self.attempts}")
        if self.site is not None and not isinstance(self.site, SiteId):
            raise InvalidInput(f"a waiting step's site must be a SiteId, got {self.site!r}")

    def again(self, site: SiteId | None) -> Waiting:
        """The same wait after one more try met it (at `site`, now)."""
        return Waiting(self.reason, self.since, self.attempts + 1, site)

    def describe(self) -> str:
        """One line for people: the reason, since when, and how many tries."""
        tries = "1 try" if self.attempts == 1 else f"{self.attempts} tries"
        return f"{self.reason} (since {self.since.isoformat(timespec='seconds')}, {tries})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (every field present, nulls included)."""
        return {
            "reason": self.reason,
            "since": self.since.isoformat(),
            "attempts": self.attempts,
            "site": None if self.site is None else str(self.site),
        }

    @classmethod
    def from_dict(cls, data: object) -> Waiting:
        """Parse the JSON form strictly: InvalidInput on any missing, unknown or bad field."""
        what = "waiting"
        d = check_fields(data, what, _KEYS)
        return cls(
            reason=text(d, "reason", what),
            since=timestamp(d, "since", what),
            attempts=integer(d, "attempts", what, minimum=1),
            site=None if d["site"] is None else site_field(d, "site", what),
        )


_KEYS = frozenset(Waiting.__dataclass_fields__)
