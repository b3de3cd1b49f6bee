"""Field checks shared by the strict parsers: exact messages naming what, which field and why."""

from __future__ import annotations

from typing import Any

import pytest

from mahiru.errors import InvalidInput
from mahiru.model.fields import check_fields, flag, mapping, name_map, optional_text, text


@pytest.mark.parametrize(("value", "type_name"), [(None, "NoneType"), ([1], "list"), ("x", "str")])
def test_non_mappings_are_rejected_naming_their_type(value: object, type_name: str) -> None:
    """Both `mapping` and `check_fields` say what had to be a mapping and what it was."""
    for check in (lambda: mapping(value, "job"), lambda: check_fields(value, "job", {"id"})):
        with pytest.raises(InvalidInput) as error:
            check()
        assert error.value.message == f"job must be a mapping, got {type_name}"
        assert error.value.details is None


def test_exact_fields_are_accepted_and_returned() -> None:
    """A mapping with every required and some optional fields comes back as it is."""
    data = {"id": "a", "name": "b"}
    assert check_fields(data, "thing", {"id"}, {"name", "size"}) is data


def test_missing_and_unknown_fields_are_listed_sorted_in_one_error() -> None:
    """One error names every missing and every unknown field, each group sorted."""
    data = {"b": 1, "z": 2, "y": 3}
    with pytest.raises(InvalidInput) as error:
        check_fields(data, "thing", {"a", "b", "c"}, {"d"})
    assert error.value.message == "thing: missing a, c; unknown field(s) y, z"
    assert error.value.details == {"missing": ["a", "c"], "unknown": ["y", "z"]}


def test_headed_wording_says_wrong_fields_first() -> None:
    """With `headed`, the message opens with "has wrong fields" and lists bare names."""
    data = {"b": 1, "z": 2}
    with pytest.raises(InvalidInput) as error:
        check_fields(data, "site record", {"a", "b"}, headed=True)
    assert error.value.message == "site record has wrong fields: missing a; unknown z"


@pytest.mark.parametrize("headed", [False, True])
def test_wrong_fields_carry_the_given_details(headed: bool) -> None:
    """Callers choose the error details (for example the offending document)."""
    data = {"a": 1, "b": 2}
    with pytest.raises(InvalidInput) as error:
        check_fields(data, "thing", {"a"}, headed=headed, details={"data": data})
    assert error.value.details == {"data": data}


def test_non_string_unknown_keys_are_reported_not_crashed_on() -> None:
    """YAML may produce integer keys; they are named by their text, not a TypeError."""
    data: dict[Any, Any] = {"a": 1, 2: "x", "note": "y"}
    with pytest.raises(InvalidInput, match=r"^thing: unknown field\(s\) 2, note$"):
        check_fields(data, "thing", {"a"})
    with pytest.raises(InvalidInput, match=r"^thing has wrong fields: unknown 2, note$"):
        check_fields(data, "thing", {"a"}, headed=True)


def test_name_map_accepts_text_keys_and_treats_none_as_empty() -> None:
    """A mapping keyed by names is returned; None stands for no entries."""
    assert name_map({"x": 1}, "inputs") == {"x": 1}
    assert name_map(None, "inputs") == {}


@pytest.mark.parametrize("value", [[], "x", {1: "a"}])
def test_name_map_rejects_other_values(value: object) -> None:
    """Anything but a mapping from text is rejected, naming what it was for."""
    with pytest.raises(InvalidInput) as error:
        name_map(value, "step 'a' inputs")
    assert error.value.message == "step 'a' inputs must be a mapping of names"


def test_text_returns_non_empty_text() -> None:
    """A text field comes back as it is."""
    assert text({"id": "a"}, "id", "party record") == "a"


@pytest.mark.parametrize("value", ["", None, 5, ["a"]])
def test_text_rejects_empty_or_other_values(value: object) -> None:
    """An empty or non-text value is an error naming the field and the value."""
    with pytest.raises(InvalidInput) as error:
        text({"id": value}, "id", "party record")
    assert error.value.message == f"party record field 'id' must be non-empty text, got {value!r}"


def test_optional_text_allows_null_and_absence() -> None:
    """Null and an absent key both mean no value; text comes back as it is."""
    assert optional_text({"reason": None}, "reason", "job status") is None
    assert optional_text({}, "reason", "job status") is None
    assert optional_text({"reason": "gone"}, "reason", "job status") == "gone"


@pytest.mark.parametrize("value", ["", 5, False])
def test_optional_text_rejects_empty_or_other_values(value: object) -> None:
    """An empty or non-text value is an error that also says null was allowed."""
    with pytest.raises(InvalidInput) as error:
        optional_text({"reason": value}, "reason", "job status")
    assert error.value.message == (
        f"job status field 'reason' must be non-empty text or null, got {value!r}"
    )


def test_flag_returns_booleans() -> None:
    """True and false come back as they are."""
    assert flag({"has_store": True}, "has_store", "site record") is True
    assert flag({"has_store": False}, "has_store", "site record") is False


@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_flag_rejects_non_booleans(value: object) -> None:
    """Truthy or falsy values that are not booleans are errors naming the field."""
    with pytest.raises(InvalidInput) as error:
        flag({"has_store": value}, "has_store", "site record")
    assert error.value.message == (
        f"site record field 'has_store' must be true or false, got {value!r}"
    )
