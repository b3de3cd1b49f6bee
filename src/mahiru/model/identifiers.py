"""Identifiers of parties, sites, assets and their groupings (reference: Identifiers).

Every identifier is a frozen value with a strict parser and a text form that
round-trips through it. `parse_identifier` reads any kind; each class's
`parse` accepts only its own kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, NewType, TypeAlias, TypeVar

from mahiru.errors import InvalidIdentifier

_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

T = TypeVar("T", bound="_Named")


def _segments(text: object, kind: str, count: int) -> list[str]:
    """Split `text` into the segments after its `kind:` prefix, strictly."""
    if not isinstance(text, str):
        raise InvalidIdentifier(f"expected a {kind} identifier, got {text!r}")
    parts = text.split(":")
    if parts[0] != kind:
        raise InvalidIdentifier(
            f"{text!r} is not a {kind} identifier (expected '{kind}:...')", {"text": text}
        )
    if len(parts) != count + 1:
        raise InvalidIdentifier(
            f"{text!r} has {len(parts) - 1} segments after '{kind}:', expected {count}",
            {"text": text},
        )
    for segment in parts[1:]:
        if not _SEGMENT.fullmatch(segment):
            raise InvalidIdentifier(
                f"{text!r} has an empty or illegal segment {segment!r}"
                " (allowed: letters, digits, '_', '.', '-')",
                {"text": text},
            )
    return parts[1:]


@dataclass(frozen=True, slots=True, order=True)
class _Named:
    """An identifier of the form `<kind>:<namespace>:<name>`."""

    namespace: str
    name: str

    kind: ClassVar[str] = ""

    @classmethod
    def parse(cls: type[T], text: str) -> T:
        """Parse the text form, raising InvalidIdentifier naming the text."""
        namespace, name = _segments(text, cls.kind, 2)
        return cls(namespace, name)

    def __post_init__(self) -> None:
        for segment in (self.namespace, self.name):
            if not isinstance(segment, str) or not _SEGMENT.fullmatch(segment):
                raise InvalidIdentifier(f"illegal {self.kind} segment {segment!r}")

    def __str__(self) -> str:
        return f"{self.kind}:{self.namespace}:{self.name}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


@dataclass(frozen=True, slots=True, order=True, repr=False)
class PartyId(_Named):
    """A party (organisation): `party:<namespace>:<name>`."""

    kind: ClassVar[str] = "party"


@dataclass(frozen=True, slots=True, order=True, repr=False)
class PartyCategoryId(_Named):
    """A category of parties: `party_category:<namespace>:<name>`."""

    kind: ClassVar[str] = "party_category"


@dataclass(frozen=True, slots=True, order=True, repr=False)
class SiteId(_Named):
    """A site: `site:<namespace>:<name>`."""

    kind: ClassVar[str] = "site"


@dataclass(frozen=True, slots=True, order=True, repr=False)
class SiteCategoryId(_Named):
    """A category of sites: `site_category:<namespace>:<name>`."""

    kind: ClassVar[str] = "site_category"


@dataclass(frozen=True, slots=True, order=True, repr=False)
class AssetCollectionId(_Named):
    """A collection of assets: `asset_collection:<namespace>:<name>`."""

    kind: ClassVar[str] = "asset_collection"


@dataclass(frozen=True, slots=True, order=True, repr=False)
class AssetCategoryId(_Named):
    """A category of assets: `asset_category:<namespace>:<name>`."""

    kind: ClassVar[str] = "asset_category"


@dataclass(frozen=True, slots=True, order=True)
class AssetId:
    """An asset stored at a site: `asset:<ns>:<name>:<site_ns>:<site_name>`."""

    namespace: str
    name: str
    site: SiteId

    kind: ClassVar[str] = "asset"

    @classmethod
    def parse(cls, text: str) -> AssetId:
        """Parse the text form, raising InvalidIdentifier naming the text."""
        namespace, name, site_ns, site_name = _segments(text, cls.kind, 4)
        return cls(namespace, name, SiteId(site_ns, site_name))

    def __post_init__(self) -> None:
        for segment in (self.namespace, self.name):
            if not isinstance(segment, str) or not _SEGMENT.fullmatch(segment):
                raise InvalidIdentifier(f"illegal asset segment {segment!r}")
        if not isinstance(self.site, SiteId):
            raise InvalidIdentifier(f"asset site must be a SiteId, got {self.site!r}")

    def __str__(self) -> str:
        return f"asset:{self.namespace}:{self.name}:{self.site.namespace}:{self.site.name}"

    def __repr__(self) -> str:
        return f"AssetId({str(self)!r})"


@dataclass(frozen=True, slots=True, order=True)
class ResultId:
    """An intermediate or final workflow result: `result:<hex sha256>`."""

    digest: str

    kind: ClassVar[str] = "result"

    @classmethod
    def parse(cls, text: str) -> ResultId:
        """Parse the text form, raising InvalidIdentifier naming the text."""
        (digest,) = _segments(text, cls.kind, 1)
        return cls(digest)

    def __post_init__(self) -> None:
        if not isinstance(self.digest, str) or not _SHA256_HEX.fullmatch(self.digest):
            raise InvalidIdentifier(
                f"'result:{self.digest}' does not hold a lowercase hex sha256 digest",
                {"text": f"result:{self.digest}"},
            )

    def __str__(self) -> str:
        return f"result:{self.digest}"

    def __repr__(self) -> str:
        return f"ResultId({str(self)!r})"


@dataclass(frozen=True, slots=True, order=True)
class Wildcard:
    """`*`: any value, allowed only in the rule fields that say so."""

    kind: ClassVar[str] = "*"
    _instance: ClassVar[Wildcard | None] = None

    def __new__(cls) -> Wildcard:
        # A single instance, because the policy code tests `value is WILDCARD`.
        if cls._instance is None:
            cls._instance = object.__new__(cls)
        return cls._instance

    @classmethod
    def parse(cls, text: str) -> Wildcard:
        """Parse `*`."""
        if text != "*":
            raise InvalidIdentifier(f"{text!r} is not the wildcard '*'", {"text": text})
        return WILDCARD

    def __str__(self) -> str:
        return "*"

    def __repr__(self) -> str:
        return "WILDCARD"


WILDCARD = Wildcard()

Identifier: TypeAlias = (
    PartyId
    | PartyCategoryId
    | SiteId
    | SiteCategoryId
    | AssetId
    | AssetCollectionId
    | AssetCategoryId
    | ResultId
    | Wildcard
)

#: Things that may appear in a permission requirement.
AssetLike: TypeAlias = AssetId | AssetCollectionId | ResultId

IDENTIFIER_CLASSES: dict[str, type[Identifier]] = {
    cls.kind: cls
    for cls in (
        PartyId,
        PartyCategoryId,
        SiteId,
        SiteCategoryId,
        AssetId,
        AssetCollectionId,
        AssetCategoryId,
        ResultId,
        Wildcard,
    )
}


def identifier_pattern(*kinds: str) -> str:
    """A JSON Schema (ECMA 262) pattern matching the text of an identifier of one of `kinds`.

    It says what `parse_identifier(text, kinds)` accepts, so the two cannot disagree.
    """
    segment = _SEGMENT.pattern
    forms = {
        "asset": f"asset(:{segment}){{4}}",
        "result": f"result:{_SHA256_HEX.pattern}",
        "*": r"\*",
    }
    return "^(" + "|".join(forms.get(kind, f"{kind}(:{segment}){{2}}") for kind in kinds) + ")$"


def parse_identifier(text: object, allowed: tuple[str, ...] | None = None) -> Identifier:
    """Parse an identifier of any kind, or only of the `allowed` kinds.

    Raises InvalidIdentifier naming the text and, with `allowed`, the kinds
    that would have been accepted.
    """
    if not isinstance(text, str):
        raise InvalidIdentifier(f"expected an identifier text, got {text!r}")
    kind = "*" if text == "*" else text.split(":", 1)[0]
    cls = IDENTIFIER_CLASSES.get(kind)
    if cls is None:
        known = ", ".join(k for k in IDENTIFIER_CLASSES if k != "*")
        raise InvalidIdentifier(
            f"{text!r} has unknown kind {kind!r} (known: {known}, or '*')", {"text": text}
        )
    if allowed is not None and kind not in allowed:
        raise InvalidIdentifier(
            f"{text!r} is a {kind} identifier, but only {', '.join(allowed)} is allowed here",
            {"text": text, "allowed": list(allowed)},
        )
    return cls.parse(text)


#: A job's id: text checked by `mahiru.model.jobs.check_job_id` (1 to 128 letters,
#: digits, '_', '.' or '-'); new ones are 32 random hexadecimal digits.
JobId = NewType("JobId", str)
