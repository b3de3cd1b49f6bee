"""Who may use a site's external API: sites registered in the registry replica.

The caller's network certificate names a site; that site must be in the
replica, and the certificate must carry the key of the certificate
registered for it. A certificate the network CA issued for a site id that
was never registered, or whose key differs from the registered one, is
refused.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mahiru.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from mahiru.model.identifiers import SiteId
from mahiru.model.registry import SiteRecord
from mahiru.pki import parse_certificate
from mahiru.storage import ReplicaRepository

#: How many identified callers are remembered.
REMEMBERED_SITES = 1024


class RegisteredSites:
    """Identifies callers of the external API as registered sites.

    Each site identified is remembered (for the REMEMBERED_SITES most recent)
    until the replicated registry is next written, so that a peer polling for
    changes costs no database read to identify.
    """

    def __init__(self, replica: ReplicaRepository) -> None:
        self._replica = replica
        self._lock = threading.Lock()
        #: (identity, certificate) -> (the replica's write count when read, the site).
        self._known: OrderedDict[tuple[str, x509.Certificate], tuple[int, SiteRecord]] = (
            OrderedDict()
        )

    def known(self, identity: str, certificate: x509.Certificate) -> SiteRecord | None:
        """The site `identify` found for this caller, if it is still as the replica says; None
        if it must be identified again (a database read)."""
        with self._lock:
            found = self._known.get((identity, certificate))
            if found is None or found[0] != self._replica.registry_writes:
                return None
            self._known.move_to_end((identity, certificate))
            return found[1]

    def identify(self, identity: str, certificate: x509.Certificate) -> SiteRecord:
        """The registered site that presented `certificate` naming `identity`.

        Raises PermissionDenied if the identity is not a registered site, and
        Unauthenticated if the certificate's key is not the registered one.
        """
        try:
            site_id = SiteId.parse(identity)
        except InvalidInput:
            raise PermissionDenied(
                f"{identity} is not a site; only registered sites may use the external API",
                {"caller": identity},
            ) from None
        writes = self._replica.registry_writes  # before reading: a write meanwhile is seen
        try:
            site = self._replica.site(site_id)
        except NotFound:
            raise PermissionDenied(
                f"{site_id} is not a registered site (as far as this site's registry replica"
                " knows); only registered sites may use the external API",
                {"caller": identity},
            ) from None
        try:
            registered = parse_certificate(site.tls_cert_pem, source=f"certificate of {site_id}")
        except InvalidInput:
            raise Unauthenticated(
                f"the certificate registered for {site_id} is unreadable", {"caller": identity}
            ) from None
        if _public_key(registered) != _public_key(certificate):
            raise Unauthenticated(
                f"the certificate presented by {site_id} does not match the one registered for it",
                {"caller": identity},
            )
        with self._lock:
            self._known[(identity, certificate)] = (writes, site)
            while len(self._known) > REMEMBERED_SITES:
                self._known.popitem(last=False)
        return site


def _public_key(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
