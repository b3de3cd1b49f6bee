"""Reading who a certificate belongs to: a service identity, a user, or a user CA's party.

These functions read what a certificate claims. Whether to believe it is the TLS layer's
job (the chain must verify against the right CA); `user_identity` can also check the
issuing user CA itself, for when several CAs are trusted by one TLS endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from mahiru.errors import InvalidInput, Unauthenticated
from mahiru.pki.keys import parse_certificate
from mahiru.pki.names import (
    IDENTITY_URI_SCHEME,
    Role,
    check_party_id,
    check_service_identity,
    check_user_name,
    parse_role,
)

_ATTRIBUTE_LABELS = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
}


@dataclass(frozen=True, slots=True)
class UserIdentity:
    """A user as named by their certificate: user name, party id and role."""

    name: str
    party: str
    role: Role

    @property
    def is_admin(self) -> bool:
        """Whether the user has the `admin` role."""
        return self.role is Role.ADMIN

    @property
    def is_reviewer(self) -> bool:
        """Whether the user has the `reviewer` role (admins review too: see `Person.reviews`)."""
        return self.role is Role.REVIEWER


def peer_identity(certificate: x509.Certificate | bytes | str) -> str:
    """The service identity (`registry` or a site id) a registry or site certificate carries.

    Accepts a certificate object, DER bytes (as from `getpeercert(binary_form=True)`) or PEM.
    A certificate without exactly one well-formed `mahiru:` URI SAN is Unauthenticated.
    """
    cert = _as_certificate(certificate)
    prefix = f"{IDENTITY_URI_SCHEME}:"
    identities = [uri[len(prefix) :] for uri in _uri_names(cert) if uri.startswith(prefix)]
    if len(identities) != 1:
        raise Unauthenticated(
            "the certificate names no Mahiru service identity"
            if not identities
            else "the certificate names more than one Mahiru service identity",
            details={"subject": cert.subject.rfc4514_string(), "identities": identities},
        )
    try:
        return check_service_identity(identities[0])
    except InvalidInput as error:
        raise Unauthenticated(error.message, details=error.details) from None


def user_identity(
    certificate: x509.Certificate | bytes | str, *, issuer: x509.Certificate | None = None
) -> UserIdentity:
    """The user name, party id and role written in a user certificate.

    With `issuer` (the party's user CA), also checks that the certificate was signed by it
    and names the same party. Anything missing, malformed or mismatched is Unauthenticated.
    """
    cert = _as_certificate(certificate)
    try:
        name = check_user_name(_single_attribute(cert.subject, NameOID.COMMON_NAME))
        party = check_party_id(_single_attribute(cert.subject, NameOID.ORGANIZATION_NAME))
        role = parse_role(_single_attribute(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME))
    except InvalidInput as error:
        raise Unauthenticated(
            f"not a Mahiru user certificate: {error.message}",
            details={"subject": cert.subject.rfc4514_string()},
        ) from None
    if issuer is not None:
        if not issued_by(cert, issuer):
            raise Unauthenticated(
                f"the certificate of user {name!r} was not issued by the given user CA",
                details={"subject": cert.subject.rfc4514_string()},
            )
        ca_party = user_ca_party(issuer)
        if ca_party != party:
            raise Unauthenticated(
                f"user {name!r} claims party {party!r} but was certified by {ca_party!r}",
                details={"user": name, "party": party, "ca_party": ca_party},
            )
    return UserIdentity(name=name, party=party, role=role)


def user_ca_party(certificate: x509.Certificate | bytes | str) -> str:
    """The party id a user CA certificate was created for; InvalidInput if it names none."""
    cert = _as_certificate(certificate)
    if not is_ca(cert):
        raise InvalidInput(
            "the certificate is not a CA certificate",
            details={"subject": cert.subject.rfc4514_string()},
        )
    return check_party_id(_single_attribute(cert.subject, NameOID.ORGANIZATION_NAME))


def is_ca(certificate: x509.Certificate) -> bool:
    """Whether a certificate says it is a CA (basic constraints with `ca` set)."""
    basic = _basic_constraints(certificate)
    return basic is not None and basic.ca


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` names and signed `certificate` (the signature is verified)."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _as_certificate(certificate: x509.Certificate | bytes | str) -> x509.Certificate:
    """A certificate object from an object, DER bytes or PEM text."""
    if isinstance(certificate, x509.Certificate):
        return certificate
    return parse_certificate(certificate, source="peer certificate")


def _uri_names(cert: x509.Certificate) -> list[str]:
    """The URI subject alternative names of a certificate."""
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(extension.value.get_values_for_type(x509.UniformResourceIdentifier))


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    """The basic constraints of a certificate, if it has them."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _single_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    """The value of the one attribute `oid` in `name`; none or several is InvalidInput."""
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1 or not isinstance(values[0].value, str):
        label = _ATTRIBUTE_LABELS.get(oid, oid.dotted_string)
        raise InvalidInput(
            f"expected exactly one {label} in {name.rfc4514_string()!r}",
            details={"subject": name.rfc4514_string()},
        )
    return values[0].value
