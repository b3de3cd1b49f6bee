"""No collaborator bag of more than six parts: what wiring holds together is grouped into
named clusters (docs/architecture.md, "The composition root"), never handed around as one
wide context.

A *collaborator bag* is a dataclass that holds at least one collaborator: a function, or an
object of one of Mahiru's own classes that is not a value (a service, repository, port or
loop). Values are enums, exceptions, configurations (pydantic models), named tuples, and
dataclasses that hold no collaborator themselves; types of other libraries (datetime, Path,
certificates) are data too. So records, rows, wire values and status reports, however wide,
are not bags, and a dataclass that holds a bag is one.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import importlib
import pkgutil
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

import mahiru
from mahiru.bootstrap import Site, SiteOverrides, SiteStorage
from mahiru.model.identifiers import AssetId, PartyId, SiteId
from mahiru.services.jobs import JobPorts, JobServices
from mahiru.services.site import SiteServices
from mahiru.storage import SiteRepositories

MOST_PARTS = 6

#: Modules that run something when imported: the command line, and Alembic's scripts.
NOT_IMPORTED = ("mahiru.__main__", "mahiru.storage.migrations.")


def _modules() -> Iterator[str]:
    for module in pkgutil.walk_packages(mahiru.__path__, "mahiru."):
        if not module.name.startswith(NOT_IMPORTED):
            yield module.name


def _dataclasses() -> list[type]:
    """Every dataclass defined in a module of `mahiru`."""
    found: list[type] = []
    for name in _modules():
        for value in vars(importlib.import_module(name)).values():
            if (
                isinstance(value, type)
                and dataclasses.is_dataclass(value)
                and value.__module__ == name
            ):
                found.append(value)
    return found


def _collaborators(cls: type, seen: frozenset[type] = frozenset()) -> list[str]:
    """The fields of dataclass `cls` that hold a collaborator."""
    if cls in seen:
        return []
    hints = typing.get_type_hints(cls)
    return [
        field.name
        for field in dataclasses.fields(cls)
        if _is_collaborator(hints[field.name], seen | {cls})
    ]


def _is_collaborator(hint: object, seen: frozenset[type]) -> bool:
    origin = typing.get_origin(hint)
    if origin is collections.abc.Callable:
        return True
    if origin in (typing.Literal, typing.ClassVar):
        return False
    if origin is not None:  # a union, tuple, list, mapping: any part that is one
        return any(_is_collaborator(arg, seen) for arg in typing.get_args(hint) if arg is not ...)
    if hint is typing.Any or not isinstance(hint, type):
        return False
    if not hint.__module__.startswith("mahiru."):
        return False
    if issubclass(hint, (enum.Enum, BaseException, BaseModel, tuple)):
        return False
    if dataclasses.is_dataclass(hint):
        return bool(_collaborators(hint, seen))
    return True


@functools.cache
def _bags() -> dict[type, int]:
    """Each collaborator bag of `mahiru`, with its number of fields."""
    return {cls: len(dataclasses.fields(cls)) for cls in _dataclasses() if _collaborators(cls)}


def test_no_collaborator_bag_has_more_than_six_parts() -> None:
    """Every dataclass holding services, ports or functions has at most six fields: more
    are grouped into a named cluster that means something (`Replication`, `SiteOversight`,
    `OutgoingOverrides`, ...)."""
    wide = {
        f"{cls.__module__}.{cls.__qualname__}": count
        for cls, count in _bags().items()
        if count > MOST_PARTS
    }
    assert wide == {}


def test_the_composition_roots_parts_are_found_as_bags() -> None:
    """The walk sees the wiring the rule is about, so the rule cannot pass by finding
    nothing."""
    bags = _bags()
    for cls in (
        Site,
        SiteOverrides,
        SiteStorage,
        SiteServices,
        SiteRepositories,
        JobPorts,
        JobServices,
    ):
        assert cls in bags, cls


def _dataclass(name: str, types: dict[str, object]) -> type:
    made = dataclasses.make_dataclass(name, list(types.items()), frozen=True)
    made.__module__ = "mahiru.example"
    return made


class _Plain:
    """A Mahiru class with behaviour (not a dataclass)."""


_Plain.__module__ = "mahiru.services.example"


@pytest.mark.parametrize(
    ("types", "bag"),
    [
        ({"service": _Plain}, True),
        ({"clock": Callable[[], float]}, True),
        ({"maybe": _Plain | None, "many": tuple[_Plain, ...]}, True),
        ({f"f{i}": t for i, t in enumerate([SiteId, PartyId, AssetId, str, int, Path])}, False),
        ({"at": SiteId, "details": collections.abc.Mapping[str, typing.Any]}, False),
    ],
)
def test_a_bag_is_a_dataclass_holding_a_collaborator(types: dict[str, object], bag: bool) -> None:
    """Services, functions and optional or repeated ones make a bag; identifiers, text,
    numbers, paths and data mappings do not."""
    assert bool(_collaborators(_dataclass("Example", types))) is bag


def test_a_dataclass_holding_a_bag_is_a_bag() -> None:
    """A cluster of services held by another dataclass makes that one a bag too."""
    inner = _dataclass("Inner", {"service": _Plain})
    outer = _dataclass("Outer", {"site": SiteId, "inner": inner})
    assert _collaborators(outer) == ["inner"]
