"""The nine rule types of reference: Rules, their kind checks and canonical byte form.

Rules are immutable values. `rule_from_dict` parses the YAML/JSON form
strictly (unknown fields and wrong kinds are InvalidInput); `canonical_bytes`
is the exact byte string that signatures cover. Every field is an identifier
or text, except the optional `checks` of ReleaseReviewedBy (a ReviewChecks),
which the dict form leaves out when it declares none.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeAlias

from mahiru.errors import InvalidInput
from mahiru.model.canonical import canonical_json
from mahiru.model.fields import Field, Shape, const, mapping, optional, string
from mahiru.model.identifiers import (
    AssetCategoryId,
    AssetCollectionId,
    AssetId,
    Identifier,
    PartyCategoryId,
    PartyId,
    SiteCategoryId,
    SiteId,
    Wildcard,
    identifier_pattern,
    parse_identifier,
)
from mahiru.policy.review_checks import NO_CHECKS, REVIEW_CHECKS_SHAPE, ReviewChecks
from mahiru.suggestions import did_you_mean

_OUTPUT_NAME = re.compile(r"[A-Za-z0-9_-]+|\*")


@dataclass(frozen=True, slots=True)
class _Rule:
    """Common behaviour of all rule types."""

    #: field name -> identifier kinds allowed in it
    kinds: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: the field whose namespace owner must sign the rule
    signer_field: ClassVar[str] = ""
    type_name: ClassVar[str] = ""
    #: The field the rule store indexes rules of this kind by.
    index_field: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name, allowed in self.kinds.items():
            value = getattr(self, name)
            if getattr(value, "kind", None) not in allowed:
                raise InvalidInput(
                    f"{self.type_name} field {name!r}: {value!r} is not one of {', '.join(allowed)}"
                )
        # Text fields too, so a constructed rule always survives to_dict/rule_from_dict.
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "checks":
                if not isinstance(value, ReviewChecks):
                    raise InvalidInput(
                        f"{self.type_name} field 'checks' must be ReviewChecks, got {value!r}"
                    )
                continue
            if f.name == "output" and not (
                isinstance(value, str) and _OUTPUT_NAME.fullmatch(value)
            ):
                raise InvalidInput(
                    f"{self.type_name} field 'output' must be an output name or '*', got {value!r}"
                )
            if f.name not in self.kinds and not isinstance(value, str):
                raise InvalidInput(f"{self.type_name} field {f.name!r} must be text, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """The serialised form, with `type` first; checks only when some are declared."""
        out: dict[str, Any] = {"type": self.type_name}
        for name, value in self._shown():
            out[name] = value.to_dict() if isinstance(value, ReviewChecks) else str(value)
        return out

    def _shown(self) -> list[tuple[str, object]]:
        """The fields and their values, without empty checks: a rule written without
        checks must sign the same bytes as it did before checks existed."""
        shown = ((f.name, getattr(self, f.name)) for f in fields(self))
        return [(name, value) for name, value in shown if value != NO_CHECKS]

    def canonical_bytes(self) -> bytes:
        """The exact bytes a signature covers: sorted-key compact JSON, UTF-8."""
        return canonical_json(self.to_dict())

    def rule_id(self) -> str:
        """A stable id: the hex sha256 of the canonical bytes."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def signer_namespace(self) -> str:
        """The namespace whose owning party must sign this rule."""
        value = getattr(self, self.signer_field)
        assert not isinstance(value, Wildcard)  # kind checks forbid it in signer fields
        return str(value.namespace)

    def __str__(self) -> str:
        args = ", ".join(f"{name}={value}" for name, value in self._shown())
        return f"{self.type_name}({args})"


@dataclass(frozen=True, slots=True)
class InAssetCollection(_Rule):
    """`asset` is in `collection`; signed by the owner of the asset."""

    asset: AssetId | AssetCollectionId
    collection: AssetCollectionId

    kinds: ClassVar[dict[str, tuple[str, ...]]] = {
        "asset": ("asset", "asset_collection"),
        "collection": ("asset_collection",),
    }
    signer_field: ClassVar[str] = "asset"
    type_name: ClassVar[str] = "InAssetCollection"
    index_field: ClassVar[str] = "asset"


@dataclass(frozen=True, slots=True)
class InAssetCategory(_Rule):
    """`asset` is in `category`; signed by the owner of the category."""

    asset: AssetId | AssetCategoryId
    category: AssetCategoryId

    kinds: ClassVar[dict[str, tuple[str, ...]]] = {
        "asset": ("asset", "asset_category"),
        "category": ("asset_category",),
    }
    signer_field: ClassVar[str] = "category"
    type_name: ClassVar[str] = "InAssetCategory"
    index_field: ClassVar[str] = "asset"


@dataclass(frozen=True, slots=True)
class InPartyCategory(_Rule):
    """`party` is in `category`; signed by the owner of the category."""

    party: PartyId | PartyCategoryId
    category: PartyCategoryId

    kinds: ClassVar[dict[str, tuple[str, ...]]] = {
        "party": ("party", "party_category"),
        "category": ("party_category",),
    }
    signer_field: ClassVar[str] = "category"
    type_name: ClassVar[str] = "InPartyCategory"
    index_field: ClassVar[str] = "party"


@dataclass(frozen=True, slots=True)
class InSiteCategory(_Rule):
    """`site` is in `category`; signed by the owner of the category."""

    site: SiteId | SiteCategoryId
    category: SiteCategoryId

    kinds: ClassVar[dict[str, tuple[str, ...]]] = {
        "site": ("site", "site_category"),
        "category": ("site_category",),
    }
    signer_field: ClassVar[str] = "category"
    type_name: ClassVar[str] = "InSiteCategory"
    index_field: ClassVar[str] = "site"


@dataclass(frozen=True, slots=True)
class MayAccess(_Rule):
    """`site` may access `asset`; signed by the owner of the asset."""

    site: SiteId | SiteCategoryId | Wildcard
    asset: AssetId | AssetCollectionId

    kinds: ClassVar[dict[str, tuple[str, ...]]] = {
        "site": ("site", "site_category", "*"),
        "asset": ("asset", "asset_collection"),
    }
    signer_field: ClassVar[str] = "asset"
    type_name: ClassVar[str] = "MayAccess"
    index_field: ClassVar[str] = "asset"


@dataclass(frozen=True, slots=True)
class MayUse(_Rule):
    """`party` may use `asset` under `conditions`; signed by the owner of the asset."""

    party: PartyId | PartyCategoryId | Wildcard
    asset: AssetId | AssetCollectionId
    conditions: str

    kinds: ClassVar[dict[str, tuple[str, ...]]] = {
        "party": ("party", "party_category", "*"),
        "asset": ("asset", "asset_collection"),
    }
    signer_field: ClassVar[str] = "asset"
    type_name: ClassVar[str] = "MayUse"
    index_field: ClassVar[str] = "asset"


@dataclass(frozen=True, slots=True)
class ResultOfDataIn(_Rule):
    """Results of `compute` on `data` (output `output`) go in `collection`; data owner signs."""

    data: AssetId | AssetCollectionId
    compute: AssetId | AssetCategoryId | Wildcard
    output: str
    collection: AssetCollectionId

    kinds: ClassVar[dict[str, tuple[str, ...]]] = {
        "data": ("asset", "asset_collection"),
        "compute": ("asset", "asset_category", "*"),
        "collection": ("asset_collection",),
    }
    signer_field: ClassVar[str] = "data"
    type_name: ClassVar[str] = "ResultOfDataIn"
    index_field: ClassVar[str] = "data"


@dataclass(frozen=True, slots=True)
class ResultOfComputeIn(_Rule):
    """Results of `compute` on `data` (output `output`) go in `collection`; compute owner signs."""

    data: AssetId | AssetCategoryId | Wildcard
    compute: AssetId | AssetCollectionId
    output: str
    collection: AssetCollectionId

    kinds: ClassVar[dict[str, tuple[str, ...]]] = {
        "data": ("asset", "asset_category", "*"),
        "compute": ("asset", "asset_collection"),
        "collection": ("asset_collection",),
    }
    signer_field: ClassVar[str] = "compute"
    type_name: ClassVar[str] = "ResultOfComputeIn"
    index_field: ClassVar[str] = "compute"


@dataclass(frozen=True, slots=True)
class ReleaseReviewedBy(_Rule):
    """Results derived from `asset` leave only once `reviewer` approves; asset owner signs.

    `asset` covers a result whose lineage (workflow inputs, and the collections
    its permissions name) includes it or something in it; `checks` are run on
    the result's files for the reviewer. See reference: Rules.
    """

    asset: AssetId | AssetCollectionId
    reviewer: PartyId | PartyCategoryId
    checks: ReviewChecks = NO_CHECKS

    kinds: ClassVar[dict[str, tuple[str, ...]]] = {
        "asset": ("asset", "asset_collection"),
        "reviewer": ("party", "party_category"),
    }
    signer_field: ClassVar[str] = "asset"
    type_name: ClassVar[str] = "ReleaseReviewedBy"
    index_field: ClassVar[str] = "asset"


Rule: TypeAlias = (
    InAssetCollection
    | InAssetCategory
    | InPartyCategory
    | InSiteCategory
    | MayAccess
    | MayUse
    | ResultOfDataIn
    | ResultOfComputeIn
    | ReleaseReviewedBy
)

RULE_TYPES: dict[str, type[Rule]] = {
    cls.type_name: cls
    for cls in (
        InAssetCollection,
        InAssetCategory,
        InPartyCategory,
        InSiteCategory,
        MayAccess,
        MayUse,
        ResultOfDataIn,
        ResultOfComputeIn,
        ReleaseReviewedBy,
    )
}


def _rule_shape(cls: type[Rule]) -> Shape:
    """The fields of a rule type's dict form: `type`, then each field and what it holds."""

    def value(name: str) -> Field:
        if name in cls.kinds:
            return Field(name, string(pattern=identifier_pattern(*cls.kinds[name])))
        if name == "output":
            return Field(name, string(pattern=f"^({_OUTPUT_NAME.pattern})$"))
        if name == "checks":
            return optional(name, REVIEW_CHECKS_SHAPE.json_schema())
        return Field(name, string())

    summary = (cls.__doc__ or "").strip().splitlines()[0]
    return Shape(
        f"{cls.type_name} rule",
        summary,
        (Field("type", const(cls.type_name)), *(value(f.name) for f in fields(cls))),
        headed=True,
    )


#: The dict form of each rule type, by type name.
RULE_SHAPES: dict[str, Shape] = {name: _rule_shape(cls) for name, cls in RULE_TYPES.items()}


def rule_from_dict(data: Mapping[str, Any]) -> Rule:
    """Parse one rule from its dict form, checking type, fields and identifier kinds."""
    mapping(data, "a rule")
    type_name = data.get("type")
    cls = RULE_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise InvalidInput(
            f"unknown rule type {type_name!r}"
            f"{did_you_mean(type_name, RULE_TYPES) if isinstance(type_name, str) else ''}"
            f" (known: {', '.join(RULE_TYPES)})",
            {"rule": dict(data)},
        )
    RULE_SHAPES[cls.type_name].check(data, details={"rule": dict(data)})
    expected = {f.name for f in fields(cls)}
    values: dict[str, Identifier | str | ReviewChecks] = {}
    for name in sorted(expected & set(data)):
        value = data[name]
        if name == "checks":
            try:
                values[name] = ReviewChecks.from_dict(value, f"{type_name} checks")
            except InvalidInput as error:
                raise InvalidInput(error.message, {"rule": dict(data)}) from None
        elif name in cls.kinds:
            try:
                values[name] = parse_identifier(value, cls.kinds[name])
            except InvalidInput as error:
                raise InvalidInput(
                    f"{type_name} field {name!r}: {error.message}", {"rule": dict(data)}
                ) from None
        elif name == "output":
            if not isinstance(value, str) or not _OUTPUT_NAME.fullmatch(value):
                raise InvalidInput(
                    f"{type_name} field 'output' must be an output name or '*', got {value!r}",
                    {"rule": dict(data)},
                )
            values[name] = value
        else:
            if not isinstance(value, str):
                raise InvalidInput(
                    f"{type_name} field {name!r} must be text, got {value!r}", {"rule": dict(data)}
                )
            values[name] = value
    return cls(**values)  # type: ignore[arg-type]
