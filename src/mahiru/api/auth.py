"""Who is calling: the verified client certificate, and the identity it carries.

The certificate comes from one of two places (docs/security.md):
- the TLS connection itself, when the app serves TLS (the default); our uvicorn
  protocol puts it in the ASGI scope as `extensions.tls.client_cert_chain`;
- the `X-Mahiru-Client-Cert` header set by an nginx proxy that verified it,
  accepted only from the configured trusted proxy addresses.

Either way the app checks the issuer signature and validity dates itself, so a
misconfigured proxy cannot make it trust a foreign certificate.
"""

from __future__ import annotations

import datetime
import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography import x509
from fastapi import Request

from mahiru.errors import PermissionDenied, Unauthenticated
from mahiru.model.identifiers import PartyId
from mahiru.model.people import Person
from mahiru.pki import UserIdentity, issued_by, peer_identity, user_identity

CLIENT_CERT_HEADER = "x-mahiru-client-cert"
CLIENT_VERIFY_HEADER = "x-mahiru-client-verify"


@dataclass(frozen=True, slots=True)
class ServiceCaller:
    """A registry, site or party client certified by the network CA."""

    identity: str
    certificate: x509.Certificate

    def __str__(self) -> str:
        return self.identity


@dataclass(frozen=True, slots=True)
class UserCaller:
    """A user certified by the site owner's user CA."""

    user: UserIdentity
    certificate: x509.Certificate

    @property
    def party(self) -> PartyId:
        """The user's party."""
        return PartyId.parse(self.user.party)

    @property
    def is_admin(self) -> bool:
        """Whether the user has the admin role."""
        return self.user.is_admin

    @property
    def person(self) -> Person:
        """The user as the site's jobs and audit log name them (`name@party`), with their role."""
        return Person(
            self.user.name, self.party, admin=self.is_admin, reviewer=self.user.is_reviewer
        )

    def __str__(self) -> str:
        return f"user:{self.user.name}@{self.user.party}"


#: How many certificates an authenticator remembers its findings for.
REMEMBERED_CERTIFICATES = 1024


@dataclass(frozen=True, slots=True)
class _Findings:
    """What a certificate says, found once: parsing it and checking its issuer's signature
    cost more than the rest of a cheap request (docs/performance.md)."""

    certificate: x509.Certificate
    #: The service identity, or why it has none; None if the network CA did not issue it.
    service: str | Unauthenticated | None
    #: The user it names, or why it names none; None if the user CA did not issue it.
    user: UserIdentity | Unauthenticated | None


class CertificateAuthenticator:
    """Finds and checks the caller's certificate for an app.

    `network_ca` certifies services; `user_ca` (sites only) certifies the
    owner party's users; `trusted_proxies` are the addresses whose certificate
    header is believed (empty: never). What a certificate says is worked out
    once and remembered (for the REMEMBERED_CERTIFICATES most recently seen);
    its validity dates are checked on every request.
    """

    def __init__(
        self,
        network_ca: x509.Certificate,
        *,
        user_ca: x509.Certificate | None = None,
        trusted_proxies: Collection[str] = (),
    ) -> None:
        self.network_ca = network_ca
        self.user_ca = user_ca
        self.trusted_proxies = frozenset(trusted_proxies)
        self._lock = threading.Lock()
        self._findings: OrderedDict[str, _Findings] = OrderedDict()

    def certificate(self, request: Request) -> x509.Certificate:
        """The caller's client certificate, or Unauthenticated."""
        return self._examine(request).certificate

    def _pem(self, request: Request) -> str:
        """The caller's client certificate as PEM text, or Unauthenticated."""
        tls = request.scope.get("extensions", {}).get("tls") or {}
        chain = tls.get("client_cert_chain") or []
        if chain:
            first = chain[0]
            return first.decode("latin-1") if isinstance(first, bytes) else str(first)
        header = request.headers.get(CLIENT_CERT_HEADER)
        client = request.client.host if request.client else None
        if header and client in self.trusted_proxies:
            if request.headers.get(CLIENT_VERIFY_HEADER, "SUCCESS") != "SUCCESS":
                raise Unauthenticated("the proxy could not verify the client certificate")
            return unquote(header)
        raise Unauthenticated("a client certificate is required")

    def _examine(self, request: Request) -> _Findings:
        """The findings on the caller's certificate, remembered from before if it was seen."""
        pem = self._pem(request)
        with self._lock:
            found = self._findings.get(pem)
            if found is not None:
                self._findings.move_to_end(pem)
                return found
        found = self._find(_load_pem(pem))
        with self._lock:
            self._findings[pem] = found
            while len(self._findings) > REMEMBERED_CERTIFICATES:
                self._findings.popitem(last=False)
        return found

    def _find(self, cert: x509.Certificate) -> _Findings:
        service: str | Unauthenticated | None = None
        if issued_by(cert, self.network_ca):
            try:
                service = peer_identity(cert)
            except Unauthenticated as error:
                service = error
        user: UserIdentity | Unauthenticated | None = None
        if self.user_ca is not None and issued_by(cert, self.user_ca):
            try:
                user = user_identity(cert, issuer=self.user_ca)
            except Unauthenticated as error:
                user = error
        return _Findings(cert, service, user)

    def _check_dates(self, cert: x509.Certificate) -> None:
        now = datetime.datetime.now(datetime.UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise Unauthenticated("the client certificate is expired or not yet valid")

    def service(self, request: Request) -> ServiceCaller:
        """A caller certified by the network CA (a site, the registry or a party client)."""
        found = self._examine(request)
        if found.service is None:
            if found.user is not None:
                raise PermissionDenied(
                    "this is the external API, for registered sites: a user certificate"
                    " works at the internal API (/internal)"
                )
            raise Unauthenticated("the client certificate was not issued by the network CA")
        self._check_dates(found.certificate)
        if isinstance(found.service, Unauthenticated):
            raise _again(found.service)
        return ServiceCaller(found.service, found.certificate)

    def user(self, request: Request) -> UserCaller:
        """A user of the owner party, certified by its user CA."""
        if self.user_ca is None:
            raise Unauthenticated("this service has no users")
        found = self._examine(request)
        if found.user is None:
            if found.service is not None:
                raise PermissionDenied(
                    "this is the internal API, for users with a certificate of this site's"
                    " owner's user CA; site and party-client certificates work at the"
                    " external API (/external) and the registry"
                )
            raise Unauthenticated("the client certificate was not issued by this site's user CA")
        self._check_dates(found.certificate)
        if isinstance(found.user, Unauthenticated):
            raise _again(found.user)
        return UserCaller(found.user, found.certificate)

    def admin(self, request: Request) -> UserCaller:
        """A user with the admin role."""
        caller = self.user(request)
        if not caller.is_admin:
            raise PermissionDenied(f"{caller} is not an admin of this site")
        return caller


def _again(error: Unauthenticated) -> Unauthenticated:
    """A fresh copy of a remembered refusal, to raise (a raised error keeps its traceback)."""
    return Unauthenticated(error.message, details=error.details)


def _load_pem(text: str | bytes) -> x509.Certificate:
    data = text.encode() if isinstance(text, str) else text
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise Unauthenticated("the client certificate is malformed") from None
