"""The names certificates carry: identities, user names and roles, and how to check them.

Identifier texts are validated here with a local check of their form only, so that the
PKI does not depend on the domain model; the model parses them properly at its own edge.
"""

from __future__ import annotations

import ipaddress
import re

from mahiru.certificate_terms import Role as Role  # re-exported
from mahiru.errors import InvalidInput

REGISTRY_IDENTITY = "registry"
"""The identity text of the registry's TLS certificate."""

IDENTITY_URI_SCHEME = "mahiru"
"""Service certificates carry their identity as the URI SAN `mahiru:<identity>`."""

_SEGMENT = r"[A-Za-z0-9_.-]+"
_SITE_ID = re.compile(rf"site:{_SEGMENT}:{_SEGMENT}")
_PARTY_ID = re.compile(rf"party:{_SEGMENT}:{_SEGMENT}")
# User names become a common name (at most 64 characters) and a file name, so they are
# kept to characters that are safe in both, and may not start with a dot.
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}")
_DNS_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"(\*\.)?{_DNS_LABEL}(\.{_DNS_LABEL})*\.?")


def check_site_id(text: str) -> str:
    """Return `text` if it has the form `site:<namespace>:<name>`, else raise InvalidInput."""
    if not _SITE_ID.fullmatch(text):
        raise InvalidInput(
            f"not a site identifier: {text!r} (expected site:<namespace>:<name>)",
            details={"identifier": text},
        )
    return text


def check_party_id(text: str) -> str:
    """Return `text` if it has the form `party:<namespace>:<name>`, else raise InvalidInput."""
    if not _PARTY_ID.fullmatch(text):
        raise InvalidInput(
            f"not a party identifier: {text!r} (expected party:<namespace>:<name>)",
            details={"identifier": text},
        )
    return text


def check_service_identity(text: str) -> str:
    """Return `text` if it names a network member, else raise InvalidInput.

    Network members are the registry, sites, and parties (a party's client
    certificate lets its administrators talk to the registry).
    """
    if text == REGISTRY_IDENTITY:
        return text
    if not (_SITE_ID.fullmatch(text) or _PARTY_ID.fullmatch(text)):
        raise InvalidInput(
            f"not a service identity: {text!r} (expected 'registry', site:<namespace>:<name>"
            " or party:<namespace>:<name>)",
            details={"identifier": text},
        )
    return text


def check_user_name(text: str) -> str:
    """Return `text` if it is a valid user name, else raise InvalidInput.

    A user name is 1 to 64 characters from letters, digits and `_ . @ + -`, not starting
    with a punctuation character.
    """
    if not _USER_NAME.fullmatch(text):
        raise InvalidInput(
            f"not a valid user name: {text!r} (use 1-64 letters, digits or _.@+-, "
            "starting with a letter or digit)",
            details={"user": text},
        )
    return text


def parse_role(text: str) -> Role:
    """The role named by `text` (`admin`, `user` or `reviewer`); anything else is InvalidInput."""
    try:
        return Role(text)
    except ValueError:
        names = ", ".join(repr(role.value) for role in Role)
        raise InvalidInput(
            f"not a role: {text!r} (expected one of {names})", details={"role": text}
        ) from None


def check_dns_name(text: str) -> str:
    """Return `text` if it is a plausible DNS name (optionally a `*.` wildcard)."""
    if len(text) > 253 or not _DNS_NAME.fullmatch(text):
        raise InvalidInput(f"not a valid DNS name: {text!r}", details={"dns_name": text})
    return text


def parse_ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 or IPv6 address written in `text`; anything else is InvalidInput."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidInput(
            f"not a valid IP address: {text!r}", details={"ip_address": text}
        ) from None
