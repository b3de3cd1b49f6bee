"""Issuing certificates: the network CA, registry and site certificates, user CAs and users.

Who is who is written into every certificate so a server can tell who called:

- network CA: self-signed, CN `Mahiru network CA` (or a chosen name);
- registry and site certificates: issued by the network CA for both server and client
  authentication, identity text (`registry` or `site:<ns>:<name>`) in the subject CN and,
  authoritatively, as the URI SAN `mahiru:<identity>`;
- a party's user CA: self-signed, the party id in the subject O;
- user certificates: issued by a party's user CA for client authentication, the user name in
  the CN, the party id in the O and the role (`admin` or `user`) in the OU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mahiru.certificate_terms import CA_VALIDITY_DAYS as CA_VALIDITY_DAYS
from mahiru.certificate_terms import DEFAULT_DNS_NAMES as DEFAULT_DNS_NAMES
from mahiru.certificate_terms import DEFAULT_IP_ADDRESSES as DEFAULT_IP_ADDRESSES
from mahiru.certificate_terms import LEAF_VALIDITY_DAYS as LEAF_VALIDITY_DAYS
from mahiru.errors import InvalidInput
from mahiru.pki.identity import user_ca_party
from mahiru.pki.keys import CertifiedKey, generate_party_key, generate_tls_key
from mahiru.pki.names import (
    IDENTITY_URI_SCHEME,
    REGISTRY_IDENTITY,
    Role,
    check_dns_name,
    check_party_id,
    check_service_identity,
    check_site_id,
    check_user_name,
    parse_ip_address,
    parse_role,
)

NETWORK_CA_NAME = "Mahiru network CA"
USER_CA_NAME = "Mahiru user CA"

# Certificates start a little in the past so that peers with a slightly slow clock
# accept them right away.
_CLOCK_SKEW = timedelta(minutes=5)
_MAX_COMMON_NAME = 64


@dataclass(frozen=True)
class PartyCredentials:
    """A party's secrets: its Ed25519 main key and its user CA."""

    main_key: ed25519.Ed25519PrivateKey
    user_ca: CertifiedKey


def create_network_ca(
    name: str = NETWORK_CA_NAME, *, days: int = CA_VALIDITY_DAYS, now: datetime | None = None
) -> CertifiedKey:
    """A new self-signed network root CA, which issues the registry and site certificates."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(name))])
    return _create_ca(subject, days=days, now=now)


def issue_registry_certificate(
    ca: CertifiedKey,
    *,
    dns_names: Sequence[str] = DEFAULT_DNS_NAMES,
    ip_addresses: Sequence[str] = DEFAULT_IP_ADDRESSES,
    days: int = LEAF_VALIDITY_DAYS,
    now: datetime | None = None,
) -> CertifiedKey:
    """A TLS server and client certificate for the registry, issued by the network CA."""
    return _issue_service_certificate(
        ca, REGISTRY_IDENTITY, dns_names=dns_names, ip_addresses=ip_addresses, days=days, now=now
    )


def issue_site_certificate(
    ca: CertifiedKey,
    site_id: str,
    *,
    dns_names: Sequence[str] = DEFAULT_DNS_NAMES,
    ip_addresses: Sequence[str] = DEFAULT_IP_ADDRESSES,
    days: int = LEAF_VALIDITY_DAYS,
    now: datetime | None = None,
) -> CertifiedKey:
    """A TLS server and client certificate for a site, issued by the network CA.

    `site_id` must have the form `site:<namespace>:<name>`, else InvalidInput.
    """
    check_site_id(site_id)
    return _issue_service_certificate(
        ca, site_id, dns_names=dns_names, ip_addresses=ip_addresses, days=days, now=now
    )


def issue_party_client_certificate(
    ca: CertifiedKey,
    party_id: str,
    *,
    days: int = LEAF_VALIDITY_DAYS,
    now: datetime | None = None,
) -> CertifiedKey:
    """A TLS client certificate naming a party, issued by the network CA.

    A party's administrators use it to register the party and its sites at the
    registry; the registrations themselves are signed with the party's main key.
    """
    check_party_id(party_id)
    return _issue_service_certificate(
        ca, party_id, dns_names=(), ip_addresses=(), days=days, now=now
    )


def create_user_ca(
    party_id: str, *, days: int = CA_VALIDITY_DAYS, now: datetime | None = None
) -> CertifiedKey:
    """A new self-signed CA for a party's users, naming the party in its subject."""
    check_party_id(party_id)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, party_id),
            x509.NameAttribute(NameOID.COMMON_NAME, USER_CA_NAME),
        ]
    )
    return _create_ca(subject, days=days, now=now)


def create_party_credentials(
    party_id: str, *, days: int = CA_VALIDITY_DAYS, now: datetime | None = None
) -> PartyCredentials:
    """A fresh main key and user CA for a party."""
    return PartyCredentials(
        main_key=generate_party_key(), user_ca=create_user_ca(party_id, days=days, now=now)
    )


def issue_user_certificate(
    user_ca: CertifiedKey,
    user_name: str,
    role: Role | str,
    *,
    days: int = LEAF_VALIDITY_DAYS,
    now: datetime | None = None,
) -> CertifiedKey:
    """A TLS client certificate for a user of the party that owns `user_ca`, with a role."""
    check_user_name(user_name)
    checked_role = parse_role(str(role))
    party_id = user_ca_party(user_ca.certificate)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, party_id),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, checked_role.value),
            x509.NameAttribute(NameOID.COMMON_NAME, user_name),
        ]
    )
    key = generate_tls_key()
    builder = _leaf_builder(user_ca, subject, key.public_key(), days=days, now=now)
    builder = builder.add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    )
    certificate = builder.sign(user_ca.private_key, hashes.SHA256())
    return CertifiedKey(certificate=certificate, private_key=key)


def _create_ca(subject: x509.Name, *, days: int, now: datetime | None) -> CertifiedKey:
    """A self-signed CA certificate for `subject` that may only issue end-entity certificates."""
    key = generate_tls_key()
    start, end = _validity(days, now)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return CertifiedKey(certificate=certificate, private_key=key)


def _issue_service_certificate(
    ca: CertifiedKey,
    identity: str,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    days: int,
    now: datetime | None,
) -> CertifiedKey:
    """A server+client certificate carrying `identity` in its CN and as a URI SAN."""
    check_service_identity(identity)
    if isinstance(dns_names, str) or isinstance(ip_addresses, str):
        raise InvalidInput("dns_names and ip_addresses must be sequences of strings")
    alternative_names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(f"{IDENTITY_URI_SCHEME}:{identity}")
    ]
    alternative_names += [x509.DNSName(check_dns_name(name)) for name in dns_names]
    alternative_names += [x509.IPAddress(parse_ip_address(address)) for address in ip_addresses]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(identity))])
    key = generate_tls_key()
    certificate = (
        _leaf_builder(ca, subject, key.public_key(), days=days, now=now)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .sign(ca.private_key, hashes.SHA256())
    )
    return CertifiedKey(certificate=certificate, private_key=key)


def _leaf_builder(
    issuer: CertifiedKey,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    days: int,
    now: datetime | None,
) -> x509.CertificateBuilder:
    """The parts every end-entity certificate shares: issuer, validity, key usage, key ids."""
    start, end = _validity(days, now)
    # The issuer's own key is the authority key: it signed the certificate.
    issuer_public_key = issuer.private_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key),
            critical=False,
        )
    )


def _validity(days: int, now: datetime | None) -> tuple[datetime, datetime]:
    """The not-before and not-after times of a certificate valid for `days` from `now`."""
    if days < 1:
        raise InvalidInput(f"validity must be at least one day, not {days}", details={"days": days})
    start = (now or datetime.now(UTC)) - _CLOCK_SKEW
    return start, start + _CLOCK_SKEW + timedelta(days=days)


def _common_name(text: str) -> str:
    """`text` as a common name, which X.509 limits to 64 characters.

    A longer identity keeps only its last segment in the CN; the URI SAN, which has no such
    limit, remains the authoritative place to read the identity from.
    """
    if not text:
        raise InvalidInput("a certificate name may not be empty")
    if len(text) <= _MAX_COMMON_NAME:
        return text
    return text.rsplit(":", 1)[-1][:_MAX_COMMON_NAME]
