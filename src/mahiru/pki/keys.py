"""Keys and certificates as values, and their PEM text forms.

TLS keys are ECDSA P-256: every TLS stack we meet (OpenSSL, nginx, browsers, httpx)
accepts them for server and client authentication. Party main keys are Ed25519, because
they only sign rules and registrations, where short deterministic signatures are wanted.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mahiru.errors import InvalidInput

TlsPrivateKey = ec.EllipticCurvePrivateKey
"""The private key type of every TLS certificate Mahiru issues."""


@dataclass(frozen=True)
class CertifiedKey:
    """A certificate together with the private key of the public key it certifies."""

    certificate: x509.Certificate
    private_key: TlsPrivateKey


def generate_tls_key() -> TlsPrivateKey:
    """A fresh ECDSA P-256 private key for a TLS certificate or a certificate authority."""
    return ec.generate_private_key(ec.SECP256R1())


def generate_party_key() -> ed25519.Ed25519PrivateKey:
    """A fresh Ed25519 main key for a party (it signs rules and registry registrations)."""
    return ed25519.Ed25519PrivateKey.generate()


def private_key_pem(key: TlsPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    """The unencrypted PKCS#8 PEM form of a private key."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey) -> str:
    """The SubjectPublicKeyInfo PEM text of an Ed25519 public key (or of a private key's)."""
    public = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def certificate_pem(certificate: x509.Certificate) -> str:
    """The PEM text of a certificate."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def parse_certificate(data: bytes | str, *, source: str = "certificate") -> x509.Certificate:
    """A certificate from its PEM text or DER bytes; malformed input is InvalidInput.

    `source` names where the data came from (a file name, a request field) in the error.
    """
    raw = data.encode("ascii", errors="replace") if isinstance(data, str) else data
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError as error:
        raise InvalidInput(
            f"{source} is not a valid X.509 certificate: {error}", details={"source": source}
        ) from None


def parse_tls_private_key(data: bytes, *, source: str = "private key") -> TlsPrivateKey:
    """An ECDSA private key from unencrypted PEM; anything else is InvalidInput naming `source`."""
    key = _parse_private_key(data, source)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput(
            f"{source} is not an ECDSA private key (TLS keys are ECDSA P-256)",
            details={"source": source},
        )
    return key


def parse_party_private_key(data: bytes, *, source: str = "party key") -> ed25519.Ed25519PrivateKey:
    """An Ed25519 private key from unencrypted PEM; anything else is InvalidInput."""
    key = _parse_private_key(data, source)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput(
            f"{source} is a TLS key (ECDSA), not a party's signing key: sign with the party's"
            " main key (party.key from `mahiru certs party`)",
            details={"source": source},
        )
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InvalidInput(f"{source} is not an Ed25519 private key", details={"source": source})
    return key


def parse_party_public_key(
    data: bytes | str, *, source: str = "party public key"
) -> ed25519.Ed25519PublicKey:
    """An Ed25519 public key from its PEM text; anything else is InvalidInput naming `source`."""
    raw = data.encode("ascii", errors="replace") if isinstance(data, str) else data
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError) as error:
        raise InvalidInput(
            f"{source} is not a valid PEM public key: {error}", details={"source": source}
        ) from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise InvalidInput(f"{source} is not an Ed25519 public key", details={"source": source})
    return key


def _parse_private_key(data: bytes, source: str) -> object:
    """Any unencrypted PEM private key; encrypted or malformed ones are InvalidInput."""
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        # TypeError means the key is encrypted: we never write encrypted keys.
        raise InvalidInput(
            f"{source} is not a valid unencrypted PEM private key: {error}",
            details={"source": source},
        ) from None


def check_key_matches(certified: CertifiedKey, *, source: str = "key pair") -> CertifiedKey:
    """Return `certified` if its private key belongs to its certificate, else InvalidInput."""
    if certified.private_key.public_key() != certified.certificate.public_key():
        raise InvalidInput(
            f"{source}: the private key does not match the certificate",
            details={"source": source},
        )
    return certified
