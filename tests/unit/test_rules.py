"""The nine rule types (reference: Rules): field kinds, strict parsing, canonical bytes, signer."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import fields
from typing import Any

import pytest

from mahiru.errors import InvalidInput
from mahiru.model.identifiers import (
    WILDCARD,
    AssetCollectionId,
    AssetId,
    SiteId,
    Wildcard,
    parse_identifier,
)
from mahiru.model.serialization import load_yaml_text
from mahiru.policy.rules import (
    RULE_TYPES,
    InAssetCategory,
    InAssetCollection,
    MayAccess,
    ResultOfComputeIn,
    ResultOfDataIn,
    rule_from_dict,
)

#: reference: Rules, transcribed: identifier fields and the kinds each allows.
KINDS: dict[str, dict[str, set[str]]] = {
    "InAssetCollection": {
        "asset": {"asset", "asset_collection"},
        "collection": {"asset_collection"},
    },
    "InAssetCategory": {"asset": {"asset", "asset_category"}, "category": {"asset_category"}},
    "InPartyCategory": {"party": {"party", "party_category"}, "category": {"party_category"}},
    "InSiteCategory": {"site": {"site", "site_category"}, "category": {"site_category"}},
    "MayAccess": {"site": {"site", "site_category", "*"}, "asset": {"asset", "asset_collection"}},
    "MayUse": {"party": {"party", "party_category", "*"}, "asset": {"asset", "asset_collection"}},
    "ResultOfDataIn": {
        "data": {"asset", "asset_collection"},
        "compute": {"asset", "asset_category", "*"},
        "collection": {"asset_collection"},
    },
    "ResultOfComputeIn": {
        "data": {"asset", "asset_category", "*"},
        "compute": {"asset", "asset_collection"},
        "collection": {"asset_collection"},
    },
    "ReleaseReviewedBy": {
        "asset": {"asset", "asset_collection"},
        "reviewer": {"party", "party_category"},
    },
}
#: reference: Rules, transcribed: text fields.
TEXT_FIELDS: dict[str, dict[str, str]] = {
    "MayUse": {"conditions": "for research only"},
    "ResultOfDataIn": {"output": "*"},
    "ResultOfComputeIn": {"output": "output0"},
}
#: reference: Rules, transcribed: the field whose owner must sign.
SIGNER_FIELD = {
    "InAssetCollection": "asset",
    "InAssetCategory": "category",
    "InPartyCategory": "category",
    "InSiteCategory": "category",
    "MayAccess": "asset",
    "MayUse": "asset",
    "ResultOfDataIn": "data",
    "ResultOfComputeIn": "compute",
    "ReleaseReviewedBy": "asset",
}
#: reference: Rules, transcribed: fields that may be left out (with a valid value each).
OPTIONAL_FIELDS: dict[str, dict[str, Any]] = {
    "ReleaseReviewedBy": {"checks": {"max_bytes": 1000}},
}
ALL_KINDS = [
    "party",
    "party_category",
    "site",
    "site_category",
    "asset",
    "asset_collection",
    "asset_category",
    "result",
    "*",
]


def sample(kind: str, namespace: str = "ns.example.org") -> str:
    """A valid identifier text of `kind` in `namespace` (assets stored at another site)."""
    if kind == "*":
        return "*"
    if kind == "result":
        return "result:" + "cd" * 32
    if kind == "asset":
        return f"asset:{namespace}:thing:elsewhere.org:site9"
    return f"{kind}:{namespace}:thing"


def valid_dict(type_name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A valid rule dict whose identifier fields each have their own namespace `ns-<field>`."""
    data: dict[str, Any] = {"type": type_name}
    for field, kinds in KINDS[type_name].items():
        kind = sorted(kinds - {"*"})[0]
        data[field] = sample(kind, f"ns-{field}")
    data.update(TEXT_FIELDS.get(type_name, {}))
    data.update(overrides or {})
    return data


ALLOWED = [(t, f, k) for t, fields in KINDS.items() for f, ks in fields.items() for k in sorted(ks)]
DISALLOWED = [
    (t, f, k)
    for t, fields in KINDS.items()
    for f, ks in fields.items()
    for k in ALL_KINDS
    if k not in ks
]
FIELDS = [(t, f) for t in KINDS for f in [*KINDS[t], *TEXT_FIELDS.get(t, {})]]


def test_the_rule_types_are_those_of_the_design() -> None:
    """Exactly the nine rule types of reference: Rules exist, with exactly its fields."""
    assert set(RULE_TYPES) == set(KINDS)
    for type_name, cls in RULE_TYPES.items():
        assert {f.name for f in fields(cls)} == {
            *KINDS[type_name],
            *TEXT_FIELDS.get(type_name, {}),
            *OPTIONAL_FIELDS.get(type_name, {}),
        }


@pytest.mark.parametrize(
    ("type_name", "optional"),
    [(t, False) for t in sorted(KINDS)] + [(t, True) for t in sorted(OPTIONAL_FIELDS)],
)
def test_valid_rule_parses_and_round_trips(type_name: str, optional: bool) -> None:
    """A valid dict (with or without its optional fields) gives a rule whose to_dict is
    that dict, type first."""
    data = valid_dict(type_name, OPTIONAL_FIELDS[type_name] if optional else None)
    rule = rule_from_dict(data)
    assert type(rule) is RULE_TYPES[type_name]
    assert rule.to_dict() == data
    assert next(iter(rule.to_dict())) == "type"
    assert rule_from_dict(rule.to_dict()) == rule
    assert rule_from_dict(json.loads(json.dumps(rule.to_dict()))) == rule


@pytest.mark.parametrize(("type_name", "field", "kind"), ALLOWED)
def test_every_allowed_kind_is_accepted(type_name: str, field: str, kind: str) -> None:
    """Each field accepts every kind the design allows it, the wildcard only where listed."""
    rule = rule_from_dict(valid_dict(type_name, {field: sample(kind)}))
    value = getattr(rule, field)
    assert value.kind == kind
    assert str(value) == sample(kind)
    if kind == "*":
        assert value is WILDCARD


@pytest.mark.parametrize(("type_name", "field", "kind"), DISALLOWED)
def test_every_other_kind_is_rejected(type_name: str, field: str, kind: str) -> None:
    """A field given an identifier of a kind it does not allow is rejected, naming the field."""
    with pytest.raises(InvalidInput) as error:
        rule_from_dict(valid_dict(type_name, {field: sample(kind)}))
    assert error.value.message.startswith(f"{type_name} field {field!r}")
    assert repr(sample(kind)) in error.value.message


@pytest.mark.parametrize(("type_name", "field", "kind"), DISALLOWED)
def test_constructor_applies_the_same_kind_checks(type_name: str, field: str, kind: str) -> None:
    """Building a rule in code cannot bypass the kind checks of parsing."""
    values = {
        name: (parse_identifier(value) if name in KINDS[type_name] else value)
        for name, value in valid_dict(type_name).items()
        if name != "type"
    }
    values[field] = parse_identifier(sample(kind))
    with pytest.raises(InvalidInput) as error:
        RULE_TYPES[type_name](**values)
    assert f"field {field!r}" in error.value.message


@pytest.mark.parametrize(("type_name", "field"), [(t, f) for t, f, _ in ALLOWED if f in KINDS[t]])
@pytest.mark.parametrize("value", ["", "asset:x", "thing:a:b", "site:a:b c", 5, None, ["*"]])
def test_malformed_identifier_fields_are_rejected(type_name: str, field: str, value: Any) -> None:
    """Identifier fields are parsed strictly."""
    with pytest.raises(InvalidInput) as error:
        rule_from_dict(valid_dict(type_name, {field: value}))
    assert f"field {field!r}" in error.value.message
    assert error.value.details == {"rule": valid_dict(type_name, {field: value})}


@pytest.mark.parametrize(("type_name", "field"), FIELDS)
def test_every_field_is_required(type_name: str, field: str) -> None:
    """Leaving out any field is an error naming it."""
    data = valid_dict(type_name)
    del data[field]
    with pytest.raises(InvalidInput) as error:
        rule_from_dict(data)
    assert error.value.message == f"{type_name} rule has wrong fields: missing {field}"


@pytest.mark.parametrize(
    ("type_name", "extra"),
    [
        (t, extra)
        for t in sorted(KINDS)
        for extra in ["signature", "comment", "Asset", "conditions", "output", "category", "checks"]
        if extra not in valid_dict(t) and extra not in OPTIONAL_FIELDS.get(t, {})
    ],
)
def test_unknown_fields_are_rejected(type_name: str, extra: str) -> None:
    """A field the type does not have is an error naming it (also another type's field)."""
    data = valid_dict(type_name)
    data[extra] = "x"
    with pytest.raises(InvalidInput) as error:
        rule_from_dict(data)
    assert error.value.message == f"{type_name} rule has wrong fields: unknown {extra}"


def test_missing_and_unknown_fields_are_reported_together() -> None:
    """One error lists everything wrong with the field set."""
    with pytest.raises(InvalidInput) as error:
        rule_from_dict({"type": "MayAccess", "site": "*", "assets": "asset_collection:p:c"})
    assert error.value.message == "MayAccess rule has wrong fields: missing asset; unknown assets"


def test_non_string_unknown_keys_are_reported_not_crashed_on() -> None:
    """YAML may produce integer keys; they are named in an InvalidInput, not a TypeError."""
    data: dict[Any, Any] = valid_dict("MayAccess")
    data[1] = "x"
    data["note"] = "y"
    with pytest.raises(InvalidInput) as error:
        rule_from_dict(data)
    assert "unknown 1, note" in error.value.message


@pytest.mark.parametrize("type_value", [None, "", "mayaccess", "Revocation", "Rule", 5, ["MayUse"]])
def test_unknown_or_missing_type_is_rejected_listing_the_types(type_value: Any) -> None:
    """The type must be one of the nine names, exactly."""
    data = valid_dict("MayAccess", {"type": type_value})
    if type_value is None:
        del data["type"]
    with pytest.raises(InvalidInput) as error:
        rule_from_dict(data)
    assert "unknown rule type" in error.value.message
    assert "ResultOfComputeIn" in error.value.message


@pytest.mark.parametrize("data", [None, "MayAccess", ["type", "MayAccess"], 5])
def test_non_mapping_is_rejected(data: Any) -> None:
    """A rule is a mapping."""
    with pytest.raises(InvalidInput):
        rule_from_dict(data)


@pytest.mark.parametrize("type_name", ["ResultOfDataIn", "ResultOfComputeIn"])
@pytest.mark.parametrize("output", ["*", "output0", "a", "out-put_2"])
def test_output_accepts_a_name_or_wildcard(type_name: str, output: str) -> None:
    """`output` is a step output name or `*`."""
    assert rule_from_dict(valid_dict(type_name, {"output": output})).output == output


@pytest.mark.parametrize("type_name", ["ResultOfDataIn", "ResultOfComputeIn"])
@pytest.mark.parametrize("output", ["", "**", "a.b", "a b", "@a", "a*", 5, None])
def test_output_rejects_anything_else(type_name: str, output: Any) -> None:
    """Anything but a name or a lone `*` is rejected, by parsing and by construction."""
    with pytest.raises(InvalidInput) as error:
        rule_from_dict(valid_dict(type_name, {"output": output}))
    assert "'output'" in error.value.message
    rule = rule_from_dict(valid_dict(type_name))
    values = {f.name: getattr(rule, f.name) for f in fields(rule)}
    values["output"] = output
    with pytest.raises(InvalidInput):
        type(rule)(**values)


@pytest.mark.parametrize("conditions", [None, 5, ["x"], {"a": "b"}])
def test_conditions_must_be_text(conditions: Any) -> None:
    """MayUse conditions are free text, and only text."""
    with pytest.raises(InvalidInput) as error:
        rule_from_dict(valid_dict("MayUse", {"conditions": conditions}))
    assert "'conditions' must be text" in error.value.message


@pytest.mark.parametrize("conditions", ["", "any use", "ünïcode: ok, even 'quotes'"])
def test_conditions_accept_any_text(conditions: str) -> None:
    """Conditions are not interpreted, so any text (even empty) is kept as is."""
    rule = rule_from_dict(valid_dict("MayUse", {"conditions": conditions}))
    assert rule.conditions == conditions  # type: ignore[union-attr]


# --- canonical bytes and ids ------------------------------------------------------------


def test_canonical_bytes_are_sorted_compact_json() -> None:
    """The signed bytes are exactly sorted-key compact UTF-8 JSON of the dict form."""
    rule = rule_from_dict(
        {"type": "MayAccess", "site": "site:p1:site1", "asset": "asset_collection:p1:public"}
    )
    assert rule.canonical_bytes() == (
        b'{"asset":"asset_collection:p1:public","site":"site:p1:site1","type":"MayAccess"}'
    )
    assert rule.rule_id() == hashlib.sha256(rule.canonical_bytes()).hexdigest()


@pytest.mark.parametrize("type_name", sorted(KINDS))
def test_canonical_bytes_do_not_depend_on_key_order(type_name: str) -> None:
    """Every ordering of a rule's keys gives the same rule, bytes and id."""
    data = valid_dict(type_name)
    reference = rule_from_dict(data)
    for keys in itertools.permutations(data):
        shuffled = {key: data[key] for key in keys}
        rule = rule_from_dict(shuffled)
        assert rule == reference
        assert rule.canonical_bytes() == reference.canonical_bytes()
        assert rule.rule_id() == reference.rule_id()


@pytest.mark.parametrize("type_name", sorted(KINDS))
def test_canonical_bytes_are_stable_across_copies(type_name: str) -> None:
    """Parsing the same rule again, or from its own JSON, gives identical bytes."""
    rule = rule_from_dict(valid_dict(type_name))
    again = rule_from_dict(json.loads(rule.canonical_bytes()))
    assert again.canonical_bytes() == rule.canonical_bytes()
    assert hash(again) == hash(rule)


def test_canonical_bytes_distinguish_every_field_and_the_type() -> None:
    """Changing any field, or only the type, changes the bytes and the id."""
    rules = [rule_from_dict(valid_dict(t)) for t in KINDS]
    for type_name, field in FIELDS:
        base = valid_dict(type_name)
        changed = dict(base)
        changed[field] = (
            "other"
            if field in TEXT_FIELDS.get(type_name, {})
            else sample(sorted(KINDS[type_name][field] - {"*"})[0], "changed.org")
        )
        rules.append(rule_from_dict(changed))
    data_rule = ResultOfDataIn(
        AssetId("p", "d", SiteId("p", "s")),
        AssetId("q", "c", SiteId("q", "s")),
        "*",
        AssetCollectionId("p", "c"),
    )
    compute_rule = ResultOfComputeIn(
        data_rule.data,
        data_rule.compute,
        "*",
        data_rule.collection,  # type: ignore[arg-type]
    )
    assert data_rule != compute_rule
    rules += [data_rule, compute_rule]
    assert len({rule.canonical_bytes() for rule in rules}) == len(rules)
    assert len({rule.rule_id() for rule in rules}) == len(rules)


def test_canonical_bytes_are_ascii_for_unicode_conditions() -> None:
    """Non-ASCII conditions are escaped, so the bytes do not depend on an encoding choice."""
    rule = rule_from_dict(valid_dict("MayUse", {"conditions": "für Forschung"}))
    assert rule.canonical_bytes().isascii()
    assert rule_from_dict(json.loads(rule.canonical_bytes())) == rule


# --- signer authority -------------------------------------------------------------------


@pytest.mark.parametrize("type_name", sorted(KINDS))
def test_signer_namespace_is_that_of_the_design_field(type_name: str) -> None:
    """The rule is signed by the owner of the signing field's namespace, no other field's."""
    rule = rule_from_dict(valid_dict(type_name))
    assert rule.signer_namespace() == f"ns-{SIGNER_FIELD[type_name]}"


@pytest.mark.parametrize(
    ("type_name", "kind"),
    [(t, k) for t, f, k in ALLOWED if f == SIGNER_FIELD[t]],
)
def test_signer_namespace_for_every_kind_of_the_signer_field(type_name: str, kind: str) -> None:
    """Whatever kind the signer field holds, its namespace decides (an asset's, not its site's)."""
    field = SIGNER_FIELD[type_name]
    rule = rule_from_dict(valid_dict(type_name, {field: sample(kind, "owner.org")}))
    assert rule.signer_namespace() == "owner.org"


@pytest.mark.parametrize("type_name", sorted(KINDS))
def test_signer_field_never_allows_the_wildcard(type_name: str) -> None:
    """Nobody owns `*`, so the signer field must not accept it."""
    with pytest.raises(InvalidInput):
        rule_from_dict(valid_dict(type_name, {SIGNER_FIELD[type_name]: "*"}))


def test_in_asset_category_is_signed_by_the_category_owner() -> None:
    """Putting someone's asset in your category is your statement, not the asset owner's."""
    rule = InAssetCategory(
        AssetId("asset-owner.org", "a", SiteId("asset-owner.org", "s")),
        parse_identifier("asset_category:category-owner.org:cat"),  # type: ignore[arg-type]
    )
    assert rule.signer_namespace() == "category-owner.org"


def test_in_asset_collection_is_signed_by_the_asset_owner() -> None:
    """Putting an asset in a collection is the asset owner's statement."""
    rule = InAssetCollection(
        AssetId("asset-owner.org", "a", SiteId("site-owner.org", "s")),
        AssetCollectionId("collection-owner.org", "c"),
    )
    assert rule.signer_namespace() == "asset-owner.org"


# --- values -----------------------------------------------------------------------------


def test_rules_are_frozen_hashable_values() -> None:
    """Equal rules are equal and hash equal; rules cannot be changed."""
    one = rule_from_dict(valid_dict("MayAccess"))
    two = rule_from_dict(valid_dict("MayAccess"))
    assert one == two
    assert len({one, two}) == 1
    with pytest.raises(AttributeError):
        one.site = WILDCARD  # type: ignore[misc]


def test_rule_text_form_names_type_and_fields() -> None:
    """str(rule) is what explanations show."""
    rule = MayAccess(Wildcard(), AssetCollectionId("p1", "public"))
    assert str(rule) == "MayAccess(site=*, asset=asset_collection:p1:public)"
    assert rule.site is WILDCARD


def test_design_example_rules_parse() -> None:
    """Every rule of the RULES.yaml example in reference: Command line is valid."""
    text = """
rules:
  - {type: MayAccess, site: "site:p1.example.org:site1", asset: "asset_collection:p1.example.org:public"}
  - {type: InAssetCollection, asset: "asset:p1.example.org:data1:p1.example.org:site1", collection: "asset_collection:p1.example.org:public"}
  - {type: ResultOfDataIn, data: "asset_collection:p1.example.org:public", compute: "*", output: "*", collection: "asset_collection:p1.example.org:public"}
  - {type: ResultOfComputeIn, data: "*", compute: "asset:p1.example.org:script:p1.example.org:site1", output: "*", collection: "asset_collection:p1.example.org:public"}
  - {type: MayUse, party: "party:p1.example.org:p1", asset: "asset_collection:p1.example.org:public", conditions: "any use"}
  - {type: InSiteCategory, site: "site:p1.example.org:site1", category: "site_category:p1.example.org:trusted"}
"""  # noqa: E501
    rules = [rule_from_dict(d) for d in load_yaml_text(text, "rules")["rules"]]
    assert [type(r).__name__ for r in rules] == [
        "MayAccess",
        "InAssetCollection",
        "ResultOfDataIn",
        "ResultOfComputeIn",
        "MayUse",
        "InSiteCategory",
    ]
    assert all(r.signer_namespace() == "p1.example.org" for r in rules)
