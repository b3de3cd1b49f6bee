"""A Shape declares a dict form's fields once: its check is `check_fields`, word for word,
and its JSON Schema is a valid schema that accepts exactly those fields."""

from __future__ import annotations

import jsonschema_rs
import pytest

from mahiru.errors import InvalidInput
from mahiru.model.fields import Field, Shape, check_fields, names_to, optional, string, whole
from mahiru.model.identifiers import identifier_pattern, parse_identifier

THING = Shape(
    "thing",
    "A thing for the tests.",
    (
        Field("id", string(pattern=identifier_pattern("party"))),
        Field("size", whole(minimum=0)),
        optional("labels", names_to(string())),
    ),
)


def _errors(shape: Shape, data: object) -> str:
    with pytest.raises(InvalidInput) as error:
        shape.check(data)
    return error.value.message


@pytest.mark.parametrize(
    "data",
    [
        {"size": 1},
        {"id": "party:a:b", "size": 1, "colour": "red"},
        {"colour": "red"},
        ["id"],
        None,
    ],
)
def test_a_shape_checks_its_fields_as_check_fields_does(data: object) -> None:
    """The same error, message and details, as `check_fields` with the shape's field sets."""
    with pytest.raises(InvalidInput) as expected:
        check_fields(data, "thing", {"id", "size"}, {"labels"})
    with pytest.raises(InvalidInput) as got:
        THING.check(data)
    assert (got.value.message, got.value.details) == (
        expected.value.message,
        expected.value.details,
    )


def test_a_headed_shape_words_its_errors_as_headed_check_fields_does() -> None:
    """`headed` is passed through: "thing has wrong fields: missing id, size"."""
    headed = Shape("thing", "", THING.fields, headed=True)
    assert _errors(headed, {}) == "thing has wrong fields: missing id, size"


def test_a_shape_returns_the_data_it_accepts() -> None:
    """Required fields and some optional ones: the mapping itself comes back."""
    data = {"id": "party:a:b", "size": 3}
    assert THING.check(data) is data


def test_the_json_schema_is_valid_and_accepts_exactly_the_fields() -> None:
    """A valid JSON Schema: required fields required, unknown fields refused, types kept."""
    schema = THING.json_schema()
    jsonschema_rs.meta.validate(schema)
    validator = jsonschema_rs.validator_for(schema)
    assert validator.is_valid({"id": "party:a:b", "size": 0, "labels": {"x": "y"}})
    assert not validator.is_valid({"id": "party:a:b"})
    assert not validator.is_valid({"id": "party:a:b", "size": 0, "colour": "red"})
    assert not validator.is_valid({"id": "site:a:b", "size": 0})
    assert not validator.is_valid({"id": "party:a:b", "size": -1})
    assert not validator.is_valid({"id": "party:a:b", "size": 0, "labels": {"x": 1}})


def test_the_json_schema_is_a_fresh_copy() -> None:
    """Changing one schema handed out changes neither the shape nor the next one."""
    first = THING.json_schema()
    first["properties"]["labels"]["additionalProperties"]["type"] = "integer"
    assert THING.json_schema()["properties"]["labels"] == names_to(string())


IDENTIFIERS = [
    ("party", "party:p1.org:p1"),
    ("site", "site:p1.org:site-1"),
    ("asset", "asset:p1.org:data_1:p1.org:site1"),
    ("asset_collection", "asset_collection:ns:c"),
    ("result", "result:" + "ab" * 32),
    ("*", "*"),
]
NOT_IDENTIFIERS = [
    "party:p1.org",
    "party:p1.org:p1:x",
    "party:p1.org:p 1",
    "party::p1",
    "asset:a:b:c",
    "result:" + "AB" * 32,
    "result:abc",
    "**",
    " party:a:b",
    "party:a:b\n",
]


@pytest.mark.parametrize(("kind", "text"), IDENTIFIERS)
def test_an_identifier_pattern_matches_what_the_parser_accepts(kind: str, text: str) -> None:
    """Each kind's text form matches its pattern, and only its own kind's."""
    parse_identifier(text, (kind,))
    for other, _ in IDENTIFIERS:
        matches = jsonschema_rs.is_valid(string(pattern=identifier_pattern(other)), text)
        assert matches == (other == kind), (other, text)


@pytest.mark.parametrize("text", NOT_IDENTIFIERS)
def test_an_identifier_pattern_refuses_what_the_parser_refuses(text: str) -> None:
    """Text the parser refuses matches no kind's pattern."""
    kinds = tuple(kind for kind, _ in IDENTIFIERS)
    with pytest.raises(InvalidInput):
        parse_identifier(text, kinds)
    assert not jsonschema_rs.is_valid(string(pattern=identifier_pattern(*kinds)), text)
