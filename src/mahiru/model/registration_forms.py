"""The wire forms of signed registration documents: their actions, fields and JSON Schema.

Declared once, as Shapes: `mahiru.model.registrations` parses documents with
them, and the registry's API documents its request body with them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum

from mahiru.model.fields import Field, Shape, const, one_of, string, whole
from mahiru.model.identifiers import identifier_pattern
from mahiru.model.registry import PARTY_RECORD_SHAPE, SITE_RECORD_SHAPE

MAX_AGE = timedelta(minutes=15)
"""How long after its `issued_at` time a document is still accepted."""

#: The text form of a document's `issued_at`: UTC, whole seconds.
TIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


class RegistrationAction(StrEnum):
    """What a registration document asks the registry to do."""

    PUT_PARTY = "put_party"
    PUT_SITE = "put_site"
    REMOVE_PARTY = "remove_party"
    REMOVE_SITE = "remove_site"

    @property
    def is_removal(self) -> bool:
        """Whether the document names only an id (removals) rather than a whole record."""
        return self in (RegistrationAction.REMOVE_PARTY, RegistrationAction.REMOVE_SITE)

    @property
    def is_about_site(self) -> bool:
        """Whether the subject is a site (else a party)."""
        return self in (RegistrationAction.PUT_SITE, RegistrationAction.REMOVE_SITE)


def _document_shape(action: RegistrationAction, subject: Field, summary: str) -> Shape:
    return Shape(
        f"{action} document",
        summary,
        (
            Field("action", const(action.value)),
            subject,
            Field(
                "base_version",
                {
                    **whole(minimum=0),
                    "description": "The registry version the document was made against; it"
                    " applies only while the registry is still at exactly this version.",
                },
            ),
            Field(
                "issued_at",
                string(
                    pattern=f"^{TIME_TEXT.pattern}$",
                    description="When the document was signed (UTC); accepted for"
                    f" {MAX_AGE.total_seconds() / 60:g} minutes.",
                ),
            ),
        ),
        headed=True,
    )


#: The unsigned form of each action's document (`Registration.to_dict`).
DOCUMENT_SHAPES = {
    RegistrationAction.PUT_PARTY: _document_shape(
        RegistrationAction.PUT_PARTY,
        Field("record", PARTY_RECORD_SHAPE.json_schema()),
        "Register a party or update its keys.",
    ),
    RegistrationAction.PUT_SITE: _document_shape(
        RegistrationAction.PUT_SITE,
        Field("record", SITE_RECORD_SHAPE.json_schema()),
        "Register a site or update it.",
    ),
    RegistrationAction.REMOVE_PARTY: _document_shape(
        RegistrationAction.REMOVE_PARTY,
        Field("id", string(pattern=identifier_pattern("party"))),
        "Remove a party that has no sites left.",
    ),
    RegistrationAction.REMOVE_SITE: _document_shape(
        RegistrationAction.REMOVE_SITE,
        Field("id", string(pattern=identifier_pattern("site"))),
        "Remove a site.",
    ),
}
#: Each action's signed document (`SignedRegistration.to_dict`): its fields and the signature.
SIGNED_DOCUMENT_SHAPES = {
    action: shape.with_fields(
        Field(
            "signature",
            string(
                pattern=r"^[A-Za-z0-9+/]{86}==$",
                description="Base64 Ed25519 signature by the main key of the subject's"
                " namespace owner over the canonical JSON (sorted keys, no white space,"
                " UTF-8) of all other fields.",
            ),
        ),
        what=shape.what,
        description=shape.description,
    )
    for action, shape in DOCUMENT_SHAPES.items()
}
#: A signed registration document of any action.
SIGNED_DOCUMENT_SCHEMA = one_of(
    *(shape.json_schema() for shape in SIGNED_DOCUMENT_SHAPES.values()), discriminator="action"
)
