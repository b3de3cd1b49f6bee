"""A typed client of the registry's API, for sites, the CLI and scripts.

    with RegistryClient("https://registry:8443", TlsIdentity(cert, key, ca)) as registry:
        registry.register_party(party_record, main_key)
        registry.register_site(site_record, main_key)
        sites = registry.sites()
        batch = registry.changes_since(0)

Registrations are signed here, with the party's main key, which never leaves
the machine. Each is made against the registry's current version; when another
registration gets in first, the client signs again against the newer version
(a few times, after a short random pause). Requests that fail because the
registry is unreachable or unavailable are retried with a growing delay.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mahiru.client.http import DEFAULT_TIMEOUT, TlsIdentity, make_http_client, request
from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import Conflict, Internal, InvalidInput, Unavailable
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.registrations import (
    STALE_BASE_VERSION,
    Registration,
    RegistrationOutcome,
    SignedRegistration,
)
from mahiru.model.registry import ChangeBatch, PartyRecord, RegistryChange, SiteRecord
from mahiru.retry import Backoff, retry

T = TypeVar("T")

#: Makes the registration to sign from the registry's version and the time of signing.
RegistrationMaker = Callable[[int, datetime], Registration]

_SIGNING_ATTEMPTS = 5
#: Between signings: at most 0.25 s, 0.5 s, then 1 s, each drawn from its lowest fifth up, so
#: registrations racing each other do not retry in lockstep.
_SIGNING_BACKOFF = Backoff(0.25, cap=1.0, jitter=0.8)


class RegistryClient:
    """Talks to one registry over mutual TLS (or an injected transport, in tests).

    `identity` is this side's certificate and key plus the network CA; None
    uses no client certificate (only useful with a test transport or a proxy).
    Requests that find the registry unavailable are tried `retries` more
    times, after `retry_delay` seconds, doubling each time. `clock` gives the
    time registrations are signed at and is what the pauses sleep on.
    """

    def __init__(
        self,
        url: str,
        identity: TlsIdentity | None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retries: int = 2,
        retry_delay: float = 0.5,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if retries < 0 or retry_delay < 0:
            raise InvalidInput("retries and retry_delay must not be negative")
        self.url = url.rstrip("/")
        self._http = make_http_client(self.url, identity, transport=transport, timeout=timeout)
        self._retries = retries
        self._backoff = Backoff(retry_delay)
        self._clock = clock

    def close(self) -> None:
        """Close the connections; the client must not be used afterwards."""
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- reading -----------------------------------------------------------

    def version(self) -> int:
        """The registry's current version."""
        data = self._json("GET", "/version")
        return self._parse("version", lambda: _version(data))

    def parties(self) -> list[PartyRecord]:
        """Every registered party, by id."""
        data = self._json("GET", "/parties")
        return self._parse(
            "party list", lambda: [PartyRecord.from_dict(p) for p in data["parties"]]
        )

    def party(self, party_id: PartyId | str) -> PartyRecord:
        """One registered party; NotFound if it is not registered."""
        checked = party_id if isinstance(party_id, PartyId) else PartyId.parse(party_id)
        data = self._json("GET", f"/parties/{checked}")
        return self._parse("party", lambda: PartyRecord.from_dict(data))

    def sites(self) -> list[SiteRecord]:
        """Every registered site, by id."""
        data = self._json("GET", "/sites")
        return self._parse("site list", lambda: [SiteRecord.from_dict(s) for s in data["sites"]])

    def site(self, site_id: SiteId | str) -> SiteRecord:
        """One registered site; NotFound if it is not registered."""
        checked = site_id if isinstance(site_id, SiteId) else SiteId.parse(site_id)
        data = self._json("GET", f"/sites/{checked}")
        return self._parse("site", lambda: SiteRecord.from_dict(data))

    def changes_since(self, version: int, limit: int | None = None) -> ChangeBatch[RegistryChange]:
        """The changes after `version`, oldest first, and the version to ask from next.

        The registry returns at most `limit` changes (by default its own page
        size); call again with the returned version until no changes come back.
        A returned version lower than `version` means the registry was reset.
        """
        params: dict[str, int] = {"since": version}
        if limit is not None:
            params["limit"] = limit
        data = self._json("GET", "/changes", params=params)
        return self._parse(
            "change batch",
            lambda: ChangeBatch(
                [RegistryChange.from_dict(change) for change in data["changes"]],
                _version(data),
            ),
        )

    # --- registering -------------------------------------------------------

    def register_party(self, record: PartyRecord, main_key: Ed25519PrivateKey) -> int:
        """Register the party (or update its keys); return the registry version.

        For a first registration `main_key` is the key in `record`; for an
        update, the key registered now.
        """
        return self.apply(
            lambda base, now: Registration.put_party(record, base_version=base, issued_at=now),
            main_key,
        ).version

    def register_site(self, record: SiteRecord, main_key: Ed25519PrivateKey) -> int:
        """Register or update a site, signed with its owner's main key; return the version."""
        return self.apply(
            lambda base, now: Registration.put_site(record, base_version=base, issued_at=now),
            main_key,
        ).version

    def remove_site(self, site_id: SiteId | str, main_key: Ed25519PrivateKey) -> int:
        """Remove a site, signed with its owner's main key; return the registry version."""
        checked = site_id if isinstance(site_id, SiteId) else SiteId.parse(site_id)
        return self.apply(
            lambda base, now: Registration.remove_site(checked, base_version=base, issued_at=now),
            main_key,
        ).version

    def remove_party(self, party_id: PartyId | str, main_key: Ed25519PrivateKey) -> int:
        """Remove a party without sites, signed with its main key; return the version."""
        checked = party_id if isinstance(party_id, PartyId) else PartyId.parse(party_id)
        return self.apply(
            lambda base, now: Registration.remove_party(checked, base_version=base, issued_at=now),
            main_key,
        ).version

    def apply(self, make: RegistrationMaker, main_key: Ed25519PrivateKey) -> RegistrationOutcome:
        """Make a registration against the current version, sign it and submit it.

        If another registration changed the registry in between, make and sign
        it again (a few times) rather than fail.
        """
        return retry(
            lambda: self.submit(make(self.version(), self._clock.now()).sign(main_key)),
            backoff=_SIGNING_BACKOFF,
            clock=self._clock,
            attempts=_SIGNING_ATTEMPTS,
            retry_on=Conflict,
            retry_if=_stale,
        )

    def submit(self, document: SignedRegistration) -> RegistrationOutcome:
        """Send a signed registration document as it is; the registry's outcome."""
        data = self._json("POST", "/registrations", json=document.to_dict())
        return self._parse(
            "registration result",
            lambda: RegistrationOutcome(_version(data), _flag(data, "changed")),
        )

    # --- plumbing ----------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return its JSON body."""
        response = self._send(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise Internal(
                f"the registry at {self.url} sent a response that is not JSON to {method} {path}"
            ) from None

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request, trying again while the registry is unavailable."""
        return retry(
            lambda: request(self._http, method, path, **kwargs),
            backoff=self._backoff,
            clock=self._clock,
            attempts=self._retries + 1,
            retry_on=Unavailable,
        )

    def _parse(self, what: str, parse: Callable[[], T]) -> T:
        """Run `parse` on a response; malformed responses are the registry's fault."""
        try:
            return parse()
        except (InvalidInput, KeyError, TypeError) as error:
            message = error.message if isinstance(error, InvalidInput) else repr(error)
            raise Internal(
                f"the registry at {self.url} sent an invalid {what}: {message}"
            ) from None


def _stale(error: Exception) -> bool:
    """Whether a Conflict says another registration changed the registry first."""
    details = error.details if isinstance(error, Conflict) else None
    return isinstance(details, dict) and details.get("reason") == STALE_BASE_VERSION


def _version(data: Any) -> int:
    value = data["version"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"version must be an integer >= 0, got {value!r}")
    return value


def _flag(data: Any, key: str) -> bool:
    value = data[key]
    if not isinstance(value, bool):
        raise InvalidInput(f"{key} must be true or false, got {value!r}")
    return value
