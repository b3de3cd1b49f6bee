"""Signatures made with a site's TLS key, checked with its registered certificate.

A site signs what it vouches for (result receipts) with the private key of
its TLS certificate; anyone holding the registry's record of the site (its
certificate) can check the signature, offline.

`SiteSignatures` is the one check of a site's signature: the certificate
registered for the site must name that very site (its `mahiru:` identity),
and must carry an ECDSA key, the only kind a site signs with. So a signature
by a party's Ed25519 main key, or by another site's key, or a certificate
recorded under another site's id, never passes for a site's.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from mahiru.errors import InvalidInput, InvalidSignature, Unauthenticated
from mahiru.model.identifiers import SiteId
from mahiru.pki.identity import peer_identity
from mahiru.pki.keys import TlsPrivateKey, parse_certificate


def sign_with_tls_key(key: TlsPrivateKey, data: bytes) -> bytes:
    """Sign `data` with a site's TLS private key (ECDSA over SHA-256)."""
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


class SiteSignatures:
    """Checks signatures made by sites with their TLS keys, against their registered
    certificates (`certificate_of(site)`: its PEM, or None for an unknown site).

    Each site's certificate is read and checked once, and its key kept, so
    checking many signatures of a few sites costs one verification each. Make
    one per verification (of a chain, say): a site's registered certificate may
    change between them.
    """

    def __init__(self, certificate_of: Callable[[SiteId], str | None]) -> None:
        self._certificate_of = certificate_of
        self._keys: dict[SiteId, ec.EllipticCurvePublicKey] = {}

    def __call__(self, site: SiteId, data: bytes, signature: bytes) -> None:
        """InvalidSignature unless `site`'s registered certificate verifies `signature`."""
        key = self._keys.get(site)
        if key is None:
            key = self._key(site)
            self._keys[site] = key
        try:
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except _CryptoInvalidSignature:
            raise InvalidSignature(
                f"the signature does not verify with the registered certificate of {site}",
                {"site": str(site)},
            ) from None

    def _key(self, site: SiteId) -> ec.EllipticCurvePublicKey:
        pem = self._certificate_of(site)
        if pem is None:
            raise InvalidSignature(f"{site} is not a registered site", {"site": str(site)})
        try:
            certificate = parse_certificate(pem, source=f"certificate of {site}")
            identity = peer_identity(certificate)
        except (InvalidInput, Unauthenticated) as error:
            raise InvalidSignature(
                f"the certificate registered for {site} is unusable: {error.message}",
                {"site": str(site)},
            ) from None
        if identity != str(site):
            raise InvalidSignature(
                f"the certificate registered for {site} was issued to {identity}",
                {"site": str(site), "certificate_identity": identity},
            )
        key = certificate.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise InvalidSignature(
                f"the certificate registered for {site} has no ECDSA key, the only kind"
                " a site signs with",
                {"site": str(site)},
            )
        return key
