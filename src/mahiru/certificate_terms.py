"""What Mahiru's certificates say and how long they last, apart from the crypto library.

`mahiru.pki` builds and checks the certificates (and re-exports these); they
live here so that `mahiru certs --help` can show the defaults and the roles
without loading the crypto library.
"""

from __future__ import annotations

from enum import StrEnum

#: Days a CA (the network's, a party's user CA) is valid for, unless told otherwise.
CA_VALIDITY_DAYS = 3650
#: Days a service's or a user's certificate is valid for, unless told otherwise.
LEAF_VALIDITY_DAYS = 730
#: The names a service certificate carries when none are given (loopback).
DEFAULT_DNS_NAMES = ("localhost",)
DEFAULT_IP_ADDRESSES = ("127.0.0.1",)


class Role(StrEnum):
    """What a user may do at their party's site: admins also upload assets and rules;
    reviewers (and admins) also see and decide the reviews of results their party is to
    review, with no other power beyond a plain user's."""

    ADMIN = "admin"
    USER = "user"
    REVIEWER = "reviewer"
