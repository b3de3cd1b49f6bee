"""Who may use a site's external API: sites registered in the registry replica.

The caller's network certificate names a site; that site must be in the
replica, and the certificate must carry the key of the certificate
registered for it. A certificate the network CA issued for a site id that
was never registered, or whose key differs from the registered one, is
refused.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mahiru.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from mahiru.model.identifiers import SiteId
from mahiru.model.registry import SiteRecord
from mahiru.pki import parse_certificate
from mahiru.storage import ReplicaRepository


class RegisteredSites:
    """Identifies callers of the external API as registered sites."""

    def __init__(self, replica: ReplicaRepository) -> None:
        self._replica = replica

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
        return site


def _public_key(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
