"""The registry service: who may register, update and remove parties and sites.

Every change arrives as a signed registration document (`registrations`) from
a caller authenticated by its network certificate, whose identity text the
HTTP layer passes in. What is checked, before anything is stored:

- every document: issued recently (`check_fresh`) and made against the
  current registry version (its `base_version`);
- put_party: the caller is the party itself (its party client certificate);
  the namespace is the one in the party's id, so nobody can claim another's
  namespace; a first registration is signed with the key in the record (proof
  of possession), an update with the key registered now; the user CA was made
  for this party;
- put_site: the caller is the owner party or the site itself; the owner is
  registered and the site's id is in the owner's namespace; signed with the
  owner's registered key; the site's TLS certificate is currently valid and
  was issued by the network CA for this site id; endpoints are http(s) URLs;
- remove_site: the caller is the owner or the site; signed by the owner;
- remove_party: the caller is the party; signed by it; it has no sites left.

The checks and the write run in one transaction, and the version the write
produced is compared with the document's base version before the commit, so
two documents made against the same version can never both apply.

See docs/reference.md, "HTTP APIs-9".
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import timedelta
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.registration_forms import MAX_AGE, RegistrationAction
from mahiru.model.registrations import (
    MAX_CLOCK_SKEW,
    STALE_BASE_VERSION,
    Registration,
    RegistrationOutcome,
    SignedRegistration,
    check_fresh,
)
from mahiru.model.registry import ChangeBatch, PartyRecord, RegistryChange, SiteRecord
from mahiru.pki import issued_by, parse_certificate, parse_party_public_key, peer_identity
from mahiru.pki import user_ca_party as _user_ca_party
from mahiru.storage.db import Database
from mahiru.storage.registry import RegistryRepository

logger = logging.getLogger("mahiru.registry")


class RegistryService:
    """The parties and sites of a network, changed only by signed, authorised documents.

    `network_ca` is the CA that must have issued every registered site's TLS
    certificate; `clock` gives the time documents are checked against.
    """

    def __init__(
        self,
        database: Database,
        repository: RegistryRepository,
        *,
        network_ca: x509.Certificate,
        clock: Clock = SYSTEM_CLOCK,
        max_age: timedelta = MAX_AGE,
        max_clock_skew: timedelta = MAX_CLOCK_SKEW,
    ) -> None:
        self._database = database
        self._repository = repository
        self._network_ca = network_ca
        self._clock = clock
        self._max_age = max_age
        self._max_clock_skew = max_clock_skew

    # --- queries -----------------------------------------------------------

    def version(self) -> int:
        """The registry's current version (0 while nothing was ever registered)."""
        return self._repository.version()

    def version_now(self) -> int | None:
        """The current version if the database can say it at once (a local SQLite file),
        so that an event loop may ask; else None: ask `version` in a worker thread.
        Either is never older than a registration completed before the call, by any worker.
        """
        return self._repository.version_now()

    def parties(self) -> list[PartyRecord]:
        """Every registered party, by id."""
        return self._repository.parties()

    def party(self, party_id: PartyId) -> PartyRecord:
        """One party; NotFound if it is not registered."""
        return self._repository.party(party_id)

    def sites(self) -> list[SiteRecord]:
        """Every registered site, by id."""
        return self._repository.sites()

    def site(self, site_id: SiteId) -> SiteRecord:
        """One site; NotFound if it is not registered."""
        return self._repository.site(site_id)

    def changes_since(
        self, version: int, *, limit: int | None = None
    ) -> ChangeBatch[RegistryChange]:
        """The changes after `version`, oldest first, and the version to ask from next.

        With `limit`, at most that many changes (see `RegistryRepository.changes_since`).
        """
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidInput(f"version must be an integer >= 0, got {version!r}")
        return self._repository.changes_since(version, limit=limit)

    # --- changes -----------------------------------------------------------

    def apply(self, caller: str, document: SignedRegistration) -> RegistrationOutcome:
        """Apply any registration document sent by `caller` (an identity text)."""
        action = document.registration.action
        if action is RegistrationAction.PUT_PARTY:
            return self.put_party(caller, document)
        if action is RegistrationAction.PUT_SITE:
            return self.put_site(caller, document)
        if action is RegistrationAction.REMOVE_PARTY:
            return self.remove_party(caller, document)
        return self.remove_site(caller, document)

    def put_party(self, caller: str, document: SignedRegistration) -> RegistrationOutcome:
        """Register a party or update its keys (see the module docstring for the rules)."""
        registration = self._fresh(document, RegistrationAction.PUT_PARTY)
        record = registration.record
        assert isinstance(record, PartyRecord)  # guaranteed by Registration
        _require_caller(
            caller,
            {str(record.id)},
            f"only {record.id} itself, with its party client certificate, may register it",
        )
        with self._database.transaction():
            self._check_base_version(registration)
            existing = self._find_party(record.id)
            if existing is None:
                key = _party_key(record)
                document.verify(key, signer=f"{record.id} (the key in its record)")
            else:
                document.verify(_party_key(existing), signer=str(record.id))
            _check_party_record(record)
            return self._commit(caller, registration, self._repository.put_party(record))

    def put_site(self, caller: str, document: SignedRegistration) -> RegistrationOutcome:
        """Register or update a site (see the module docstring for the rules)."""
        registration = self._fresh(document, RegistrationAction.PUT_SITE)
        record = registration.record
        assert isinstance(record, SiteRecord)  # guaranteed by Registration
        _require_caller(
            caller,
            {str(record.owner), str(record.id)},
            f"only its owner {record.owner} or the site {record.id} itself may register it",
        )
        with self._database.transaction():
            self._check_base_version(registration)
            owner = self._registered(record.owner, f"{record.id} names owner {record.owner}")
            if record.id.namespace != owner.namespace:
                raise PermissionDenied(
                    f"{record.id} is in namespace {record.id.namespace!r}, but its owner"
                    f" {owner.id} owns namespace {owner.namespace!r}; a party registers sites"
                    " only in its own namespace",
                    {"site": str(record.id), "owner": str(owner.id), "namespace": owner.namespace},
                )
            document.verify(_party_key(owner), signer=str(owner.id))
            self._check_site_record(record)
            return self._commit(caller, registration, self._repository.put_site(record))

    def remove_site(self, caller: str, document: SignedRegistration) -> RegistrationOutcome:
        """Remove a site; the document must be signed by its owner."""
        registration = self._fresh(document, RegistrationAction.REMOVE_SITE)
        site_id = registration.subject
        assert isinstance(site_id, SiteId)  # guaranteed by Registration
        with self._database.transaction():
            self._check_base_version(registration)
            site = self._repository.site(site_id)
            _require_caller(
                caller,
                {str(site.owner), str(site.id)},
                f"only its owner {site.owner} or the site {site.id} itself may remove it",
            )
            owner = self._repository.party(site.owner)
            document.verify(_party_key(owner), signer=str(owner.id))
            return self._commit(caller, registration, self._repository.remove_site(site_id))

    def remove_party(self, caller: str, document: SignedRegistration) -> RegistrationOutcome:
        """Remove a party that has no sites left; the document must be signed by it."""
        registration = self._fresh(document, RegistrationAction.REMOVE_PARTY)
        party_id = registration.subject
        assert isinstance(party_id, PartyId)  # guaranteed by Registration
        _require_caller(
            caller,
            {str(party_id)},
            f"only {party_id} itself, with its party client certificate, may remove it",
        )
        with self._database.transaction():
            self._check_base_version(registration)
            party = self._repository.party(party_id)
            document.verify(_party_key(party), signer=str(party_id))
            return self._commit(caller, registration, self._repository.remove_party(party_id))

    # --- helpers -----------------------------------------------------------

    def _fresh(self, document: SignedRegistration, action: RegistrationAction) -> Registration:
        """The document's registration, if it has this action and was issued recently."""
        registration = document.registration
        if registration.action is not action:
            raise InvalidInput(f"expected a {action} document, got {registration.action}")
        check_fresh(
            registration,
            self._clock.now(),
            max_age=self._max_age,
            max_clock_skew=self._max_clock_skew,
        )
        return registration

    def _check_base_version(self, registration: Registration) -> None:
        current = self._repository.version()
        if current != registration.base_version:
            raise _stale(registration, current)

    def _commit(
        self, caller: str, registration: Registration, version: int | None
    ) -> RegistrationOutcome:
        """Check the version a write produced against the document, inside its transaction.

        The write took the change-log lock, so what is read here is final: if
        another registration committed since `_check_base_version`, raising
        rolls this one back.
        """
        base = registration.base_version
        if version is None:
            current = self._repository.version()
            if current != base:
                raise _stale(registration, current)
            outcome = RegistrationOutcome(current, changed=False)
        elif version != base + 1:
            raise _stale(registration, version - 1)
        else:
            outcome = RegistrationOutcome(version, changed=True)
        logger.info(
            "registration applied" if outcome.changed else "registration changed nothing",
            extra={
                "action": registration.action.value,
                "subject": str(registration.subject),
                "caller": caller,
                "version": outcome.version,
            },
        )
        return outcome

    def _find_party(self, party_id: PartyId) -> PartyRecord | None:
        try:
            return self._repository.party(party_id)
        except NotFound:
            return None

    def _registered(self, party_id: PartyId, context: str) -> PartyRecord:
        party = self._find_party(party_id)
        if party is None:
            raise NotFound(
                f"{context}, which is not registered; register the party first",
                {"party": str(party_id)},
            )
        return party

    def _check_site_record(self, record: SiteRecord) -> None:
        """The site's certificate and endpoints must be usable by its peers."""
        what = f"the TLS certificate of {record.id}"
        certificate = parse_certificate(record.tls_cert_pem, source=what)
        if not issued_by(certificate, self._network_ca):
            raise InvalidInput(
                f"{what} was not issued by this network's CA", {"site": str(record.id)}
            )
        try:
            identity = peer_identity(certificate)
        except Unauthenticated as error:
            raise InvalidInput(f"{what}: {error.message}", error.details) from None
        if identity != str(record.id):
            raise InvalidInput(
                f"{what} was issued to {identity}, not to {record.id}",
                {"site": str(record.id), "certificate_identity": identity},
            )
        now = self._clock.now()
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise InvalidInput(
                f"{what} is expired or not yet valid (valid from"
                f" {certificate.not_valid_before_utc.isoformat()} to"
                f" {certificate.not_valid_after_utc.isoformat()})",
                {"site": str(record.id)},
            )
        for name, url in record.endpoints.to_dict().items():
            if url is not None:
                _check_url(url, f"the {name} endpoint of {record.id}")


def _stale(registration: Registration, current: int) -> Conflict:
    return Conflict(
        f"{registration} was made against registry version {registration.base_version},"
        f" but the registry is at version {current}; make and sign it again",
        {
            "reason": STALE_BASE_VERSION,
            "base_version": registration.base_version,
            "registry_version": current,
        },
    )


def _require_caller(caller: str, allowed: Collection[str], rule: str) -> None:
    # `rule` names whom the registered document itself names; the details list no one.
    if caller not in allowed:
        raise PermissionDenied(f"{rule}; the caller is {caller}", {"caller": caller})


def _party_key(record: PartyRecord) -> Ed25519PublicKey:
    return parse_party_public_key(record.public_key_pem, source=f"the public key of {record.id}")


def _check_party_record(record: PartyRecord) -> None:
    """A party owns the namespace of its id, and its user CA names it."""
    if record.namespace != record.id.namespace:
        raise PermissionDenied(
            f"{record.id} can only own namespace {record.id.namespace!r} (the one in its id),"
            f" not {record.namespace!r}",
            {"party": str(record.id), "namespace": record.namespace},
        )
    what = f"the user CA of {record.id}"
    user_ca = parse_certificate(record.user_ca_pem, source=what)
    try:
        owner = _user_ca_party(user_ca)
    except InvalidInput as error:
        raise InvalidInput(f"{what}: {error.message}", error.details) from None
    if owner != str(record.id):
        raise InvalidInput(
            f"{what} was made for {owner}, not for {record.id}",
            {"party": str(record.id), "user_ca_party": owner},
        )


def _check_url(url: str, what: str) -> None:
    """An absolute http(s) URL with a host, and no credentials, query or fragment."""
    problem = None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError as error:
        problem = str(error)
    else:
        if any(character.isspace() for character in url):
            problem = "it contains white space"
        elif parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "it is not an absolute http:// or https:// URL"
        elif parts.username is not None or parts.password is not None:
            problem = "it contains credentials"
        elif parts.query or parts.fragment:
            problem = "it has a query or fragment"
    if problem is not None:
        raise InvalidInput(
            f"{what} must be an http(s) URL such as https://host:8443/path, got {url!r}: {problem}",
            {"url": url},
        )
