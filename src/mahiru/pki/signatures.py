"""Signatures made with a site's TLS key, checked with its registered certificate.

A site signs what it vouches for (result receipts) with the private key of
its TLS certificate; anyone holding the registry's record of the site (its
certificate) can check the signature, offline.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from mahiru.errors import InvalidSignature
from mahiru.pki.keys import TlsPrivateKey, parse_certificate


def sign_with_tls_key(key: TlsPrivateKey, data: bytes) -> bytes:
    """Sign `data` with a site's TLS private key (ECDSA over SHA-256)."""
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify_with_certificate(
    certificate_pem: str, data: bytes, signature: bytes, *, who: str
) -> None:
    """Check `signature` over `data` with the public key of a certificate.

    Raises InvalidSignature naming `who` if it does not verify.
    """
    key = parse_certificate(certificate_pem, source=f"certificate of {who}").public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            raise InvalidSignature(f"{who}'s certificate has a key type that cannot sign")
    except _CryptoInvalidSignature:
        raise InvalidSignature(
            f"the signature does not verify with the registered certificate of {who}"
        ) from None
