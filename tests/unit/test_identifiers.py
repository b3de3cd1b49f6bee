"""Identifiers: eight kinds plus `*`, strict parsing, and text forms that round-trip.

See docs/reference.md, "Identifiers".
"""

from __future__ import annotations

import copy
import pickle

import pytest

from mahiru.errors import InvalidIdentifier, InvalidInput
from mahiru.model.identifiers import (
    IDENTIFIER_CLASSES,
    WILDCARD,
    AssetCategoryId,
    AssetCollectionId,
    AssetId,
    PartyCategoryId,
    PartyId,
    ResultId,
    SiteCategoryId,
    SiteId,
    Wildcard,
    parse_identifier,
)

DIGEST = "0123456789abcdef" * 4

#: One valid text per kind, with the class that parses it and the value it means.
VALID = [
    ("party:p1.example.org:party1", PartyId, PartyId("p1.example.org", "party1")),
    ("party_category:p1.example.org:hospitals", PartyCategoryId, None),
    ("site:p1.example.org:site1", SiteId, SiteId("p1.example.org", "site1")),
    ("site_category:p1.example.org:trusted", SiteCategoryId, None),
    (
        "asset:p1.example.org:data1:p2.example.org:site2",
        AssetId,
        AssetId("p1.example.org", "data1", SiteId("p2.example.org", "site2")),
    ),
    ("asset_collection:p1.example.org:public", AssetCollectionId, None),
    ("asset_category:p1.example.org:scripts", AssetCategoryId, None),
    (f"result:{DIGEST}", ResultId, ResultId(DIGEST)),
]

#: Per kind: a valid text, and how many segments follow the kind.
SEGMENTS = {
    "party": 2,
    "party_category": 2,
    "site": 2,
    "site_category": 2,
    "asset": 4,
    "asset_collection": 2,
    "asset_category": 2,
}
NAMED_CLASSES = {cls.kind: cls for _, cls, _ in VALID if cls.kind in SEGMENTS}


def _text(kind: str, segments: list[str]) -> str:
    return ":".join([kind, *segments])


def _good_segments(kind: str) -> list[str]:
    return [f"seg{i}" for i in range(SEGMENTS[kind])]


@pytest.mark.parametrize(("text", "cls", "value"), VALID, ids=[v[0].split(":")[0] for v in VALID])
def test_valid_text_parses_to_its_kind_and_round_trips(text: str, cls: type, value: object) -> None:
    """Each kind's own parser and parse_identifier agree, and str() gives the text back."""
    parsed = cls.parse(text)
    assert type(parsed) is cls
    assert str(parsed) == text
    assert parse_identifier(text) == parsed
    assert cls.parse(str(parsed)) == parsed
    if value is not None:
        assert parsed == value
    assert repr(parsed) == f"{cls.__name__}({text!r})"


def test_every_kind_of_design_table_is_known() -> None:
    """The registry of kinds is exactly the reference's eight kinds plus the wildcard."""
    assert set(IDENTIFIER_CLASSES) == {*SEGMENTS, "result", "*"}


@pytest.mark.parametrize("segment", ["a", "A", "0", "a.b", "a-b", "a_b", "Z9._-x", "..", "-"])
@pytest.mark.parametrize("kind", sorted(SEGMENTS))
def test_every_legal_segment_character_is_accepted(kind: str, segment: str) -> None:
    """Letters, digits, '_', '.' and '-' are legal in every segment position."""
    for position in range(SEGMENTS[kind]):
        segments = _good_segments(kind)
        segments[position] = segment
        text = _text(kind, segments)
        assert str(NAMED_CLASSES[kind].parse(text)) == text


@pytest.mark.parametrize(
    "segment", ["", " ", "a b", "a/b", "a*b", "*", "a@b", "é", "a\n", "\ta", "a#", "a+b", "ä"]
)
@pytest.mark.parametrize("kind", sorted(SEGMENTS))
def test_empty_or_illegal_segment_is_rejected_naming_the_text(kind: str, segment: str) -> None:
    """An empty segment or one with an illegal character fails in every position."""
    for position in range(SEGMENTS[kind]):
        segments = _good_segments(kind)
        segments[position] = segment
        text = _text(kind, segments)
        with pytest.raises(InvalidIdentifier) as error:
            NAMED_CLASSES[kind].parse(text)
        assert repr(text) in error.value.message
        assert error.value.details == {"text": text}
        with pytest.raises(InvalidIdentifier):
            parse_identifier(text)


@pytest.mark.parametrize("kind", sorted(SEGMENTS))
@pytest.mark.parametrize("delta", [-1, 1, 2])
def test_wrong_segment_count_is_rejected(kind: str, delta: int) -> None:
    """Too few or too many segments fail with a message giving the expected count."""
    count = SEGMENTS[kind] + delta
    text = _text(kind, [f"s{i}" for i in range(count)])
    with pytest.raises(InvalidIdentifier) as error:
        NAMED_CLASSES[kind].parse(text)
    assert repr(text) in error.value.message
    assert f"expected {SEGMENTS[kind]}" in error.value.message
    with pytest.raises(InvalidIdentifier):
        parse_identifier(text)


@pytest.mark.parametrize("kind", sorted(SEGMENTS))
def test_bare_kind_without_segments_is_rejected(kind: str) -> None:
    """`party` or `party:` alone is not an identifier."""
    for text in (kind, f"{kind}:"):
        with pytest.raises(InvalidIdentifier):
            NAMED_CLASSES[kind].parse(text)
        with pytest.raises(InvalidIdentifier):
            parse_identifier(text)


@pytest.mark.parametrize(("text", "cls", "_value"), VALID, ids=[v[0].split(":")[0] for v in VALID])
def test_each_parser_rejects_every_other_kind(text: str, cls: type, _value: object) -> None:
    """A class's parse accepts only its own kind, even for look-alike prefixes."""
    for other_text, other_cls, _ in VALID:
        if other_cls is cls:
            continue
        with pytest.raises(InvalidIdentifier) as error:
            cls.parse(other_text)
        assert repr(other_text) in error.value.message
    with pytest.raises(InvalidIdentifier):
        cls.parse("*")


@pytest.mark.parametrize(
    "text",
    ["Party:p:n", "PARTY:p:n", " party:p:n", "party :p:n", "parties:p:n", "asset_collections:p:n"],
)
def test_kind_prefix_is_exact_and_case_sensitive(text: str) -> None:
    """Kinds match exactly: no case folding, no surrounding whitespace."""
    with pytest.raises(InvalidIdentifier):
        parse_identifier(text)


@pytest.mark.parametrize("value", [None, 5, 1.5, b"party:p:n", ["party", "p", "n"], {"a": 1}])
@pytest.mark.parametrize("cls", [cls for _, cls, _ in VALID])
def test_non_string_is_rejected(cls: type, value: object) -> None:
    """Only text is parsed; anything else is InvalidIdentifier, not a crash."""
    with pytest.raises(InvalidIdentifier):
        cls.parse(value)
    with pytest.raises(InvalidIdentifier):
        parse_identifier(value)


@pytest.mark.parametrize(
    "digest",
    [
        DIGEST.upper(),
        DIGEST[:-1],
        DIGEST + "0",
        "g" * 64,
        "",
        "0x" + DIGEST[2:],
        DIGEST[:32] + " " + DIGEST[33:],
    ],
)
def test_result_requires_a_lowercase_hex_sha256(digest: str) -> None:
    """A result id holds exactly 64 lowercase hex digits."""
    text = f"result:{digest}"
    with pytest.raises(InvalidIdentifier) as error:
        ResultId.parse(text)
    assert repr(text) in error.value.message
    with pytest.raises(InvalidIdentifier):
        parse_identifier(text)


def test_result_with_extra_segment_is_rejected() -> None:
    """`result:<hex>:x` has too many segments."""
    with pytest.raises(InvalidIdentifier):
        ResultId.parse(f"result:{DIGEST}:x")


@pytest.mark.parametrize("text", ["", ":", "thing:a:b", "asset-collection:a:b", "**", "* ", "x"])
def test_unknown_kind_is_rejected_listing_the_known_kinds(text: str) -> None:
    """parse_identifier names the text and the kinds it knows."""
    with pytest.raises(InvalidIdentifier) as error:
        parse_identifier(text)
    assert repr(text) in error.value.message
    assert "asset_collection" in error.value.message
    assert error.value.details == {"text": text}


@pytest.mark.parametrize(("text", "cls", "_value"), VALID, ids=[v[0].split(":")[0] for v in VALID])
def test_allowed_kinds_accept_only_those_kinds(text: str, cls: type, _value: object) -> None:
    """With `allowed`, the own kind passes and every other kind (and `*`) is rejected."""
    assert type(parse_identifier(text, (cls.kind,))) is cls
    assert type(parse_identifier(text, ("party", cls.kind, "*"))) is cls
    for other_text, other_cls, _ in VALID:
        if other_cls is cls:
            continue
        with pytest.raises(InvalidIdentifier) as error:
            parse_identifier(other_text, (cls.kind,))
        assert repr(other_text) in error.value.message
        assert cls.kind in error.value.message
        assert error.value.details == {"text": other_text, "allowed": [cls.kind]}
    with pytest.raises(InvalidIdentifier):
        parse_identifier("*", (cls.kind,))


def test_allowed_kinds_still_parse_strictly() -> None:
    """An allowed kind with a malformed body is still rejected."""
    with pytest.raises(InvalidIdentifier):
        parse_identifier("asset:p:n", ("asset",))


def test_wildcard_parses_only_where_allowed() -> None:
    """`*` is the wildcard: accepted when no restriction or `*` is allowed, else rejected."""
    assert parse_identifier("*") is WILDCARD
    assert parse_identifier("*", ("site", "*")) is WILDCARD
    assert Wildcard.parse("*") is WILDCARD
    assert str(WILDCARD) == "*"
    assert repr(WILDCARD) == "WILDCARD"
    with pytest.raises(InvalidIdentifier):
        parse_identifier("*", ("site", "site_category"))


@pytest.mark.parametrize("text", ["**", "*:*", "", " *", "party:*:*", "site:p:*"])
def test_wildcard_is_only_a_lone_star(text: str) -> None:
    """Anything but a lone `*` is not the wildcard, and `*` is no segment."""
    with pytest.raises(InvalidIdentifier):
        Wildcard.parse(text)
    with pytest.raises(InvalidIdentifier):
        parse_identifier(text, ("*", "party", "site"))


def test_wildcard_is_a_single_instance() -> None:
    """Every way of getting a wildcard gives the same object (code tests `is WILDCARD`)."""
    assert Wildcard() is WILDCARD
    assert copy.copy(WILDCARD) is WILDCARD
    assert copy.deepcopy(WILDCARD) is WILDCARD
    assert pickle.loads(pickle.dumps(WILDCARD)) is WILDCARD
    assert Wildcard() == WILDCARD
    assert hash(Wildcard()) == hash(WILDCARD)


def test_identifiers_are_values() -> None:
    """Equal texts give equal, hashable values; the same segments of another kind differ."""
    assert PartyId.parse("party:p:n") == PartyId("p", "n")
    assert hash(PartyId.parse("party:p:n")) == hash(PartyId("p", "n"))
    assert len({PartyId("p", "n"), PartyId.parse("party:p:n")}) == 1
    assert PartyId("p", "n") != SiteId("p", "n")
    assert AssetCollectionId("p", "n") != AssetCategoryId("p", "n")
    assert len({PartyId("p", "n"), SiteId("p", "n"), PartyCategoryId("p", "n")}) == 3


def test_identifiers_are_frozen() -> None:
    """Identifiers cannot be changed after construction."""
    party = PartyId("p", "n")
    with pytest.raises(AttributeError):
        party.name = "m"  # type: ignore[misc]


def test_identifiers_of_one_kind_sort_by_segments() -> None:
    """Ordering within a kind follows the segments, so sorted output is deterministic."""
    ids = [SiteId("b", "a"), SiteId("a", "b"), SiteId("a", "a")]
    assert sorted(ids) == [SiteId("a", "a"), SiteId("a", "b"), SiteId("b", "a")]


@pytest.mark.parametrize("cls", [cls for cls in NAMED_CLASSES.values() if cls is not AssetId])
@pytest.mark.parametrize(("namespace", "name"), [("", "n"), ("p", ""), ("p:q", "n"), ("p", 5)])
def test_constructor_validates_segments(cls: type, namespace: str, name: object) -> None:
    """Building an identifier directly is as strict as parsing one."""
    with pytest.raises(InvalidIdentifier):
        cls(namespace, name)


@pytest.mark.parametrize(
    ("namespace", "name", "site"),
    [
        ("", "n", SiteId("s", "t")),
        ("p", "a:b", SiteId("s", "t")),
        ("p", "n", "site:s:t"),
        ("p", "n", PartyId("s", "t")),
    ],
)
def test_asset_constructor_validates_segments_and_site(
    namespace: str, name: str, site: object
) -> None:
    """An asset id needs legal segments and a SiteId for the storing site."""
    with pytest.raises(InvalidIdentifier):
        AssetId(namespace, name, site)  # type: ignore[arg-type]


def test_result_constructor_validates_digest() -> None:
    """ResultId() rejects what ResultId.parse rejects."""
    with pytest.raises(InvalidIdentifier):
        ResultId("abc")


def test_asset_names_its_storing_site() -> None:
    """The last two segments of an asset id are the site that stores it."""
    asset = AssetId.parse("asset:p1:data:p2:site9")
    assert (asset.namespace, asset.name) == ("p1", "data")
    assert asset.site == SiteId("p2", "site9")


@pytest.mark.parametrize(
    ("text", "namespace"),
    [
        ("party:ns1:n", "ns1"),
        ("party_category:ns1:n", "ns1"),
        ("site:ns1:n", "ns1"),
        ("site_category:ns1:n", "ns1"),
        ("asset:ns1:n:ns2:site", "ns1"),
        ("asset_collection:ns1:n", "ns1"),
        ("asset_category:ns1:n", "ns1"),
        (f"result:{DIGEST}", None),
        ("*", None),
    ],
)
def test_an_identifier_carries_its_owning_namespace(text: str, namespace: str | None) -> None:
    """The owner is the identifier's own namespace (an asset's, not its site's)."""
    # Results and `*` belong to no namespace: they have none to give.
    assert getattr(parse_identifier(text), "namespace", None) == namespace


def test_invalid_identifier_is_invalid_input() -> None:
    """Callers can catch every bad identifier as InvalidInput (a 4xx / exit 2)."""
    assert issubclass(InvalidIdentifier, InvalidInput)
    with pytest.raises(InvalidInput):
        parse_identifier("nonsense")
