"""Loading the YAML files of the offline commands, with errors naming the file.

See docs/reference.md, "Command line".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mahiru.errors import InvalidInput
from mahiru.model.assets import SiteDescription
from mahiru.model.identifiers import AssetId, ResultId
from mahiru.model.serialization import (
    asset_from_dict,
    job_from_dict,
    load_yaml_text,
    site_from_dict,
)
from mahiru.model.workflow import Job
from mahiru.policy.rules import Rule, rule_from_dict
from mahiru.suggestions import closest

T = TypeVar("T")


def read_yaml(path: Path) -> Any:
    """Read and parse a YAML file; unreadable or malformed files are InvalidInput."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{path}: cannot read: {error}") from None
    return load_yaml_text(text, str(path))


def _in_file(path: Path, parse: Callable[[], T]) -> T:
    """Run `parse`, prefixing any InvalidInput with the file name."""
    try:
        return parse()
    except InvalidInput as error:
        raise InvalidInput(f"{path}: {error.message}", error.details) from None


def _section(path: Path, data: Any, key: str, optional: tuple[str, ...] = ()) -> list[Any]:
    expected = InvalidInput(f"{path}: expected a mapping with a '{key}' list")
    if not isinstance(data, Mapping):
        raise expected
    known = (key, *optional)
    unknown = sorted(str(name) for name in set(data) - set(known))
    fixes = {name: closest(name, known) for name in unknown}
    if key not in data and not any(fixes.values()):
        raise expected  # another kind of file altogether
    if unknown:
        # Name each with its likely fix: `rule:` for `rules:` is the usual slip.
        named = ", ".join(
            f"{name!r}" + (f" (did you mean {fix!r}?)" if fix else "")
            for name, fix in fixes.items()
        )
        noun = "key" if len(unknown) == 1 else "keys"
        raise InvalidInput(
            f"{path}: unknown top-level {noun} {named}; the file takes {', '.join(known)}"
        )
    items = data[key]
    if not isinstance(items, list):
        raise InvalidInput(f"{path}: '{key}' must be a list")
    return items


def _parse_each(path: Path, items: list[Any], parse: Callable[[Any], T]) -> list[T]:
    """Parse every entry, naming the file and the entry number in errors."""
    parsed: list[T] = []
    for number, item in enumerate(items, start=1):
        try:
            parsed.append(parse(item))
        except InvalidInput as error:
            raise InvalidInput(f"{path}: entry {number}: {error.message}", error.details) from None
    return parsed


def load_rules(path: Path) -> list[Rule]:
    """RULES.yaml: `rules: [...]`.

    Entries as `mahiru rules list --json` prints them (`{"rule_id", "source",
    "rule"}`, the rule signed) are read too: their rule, without the signature
    (the offline commands take rules as given).
    """
    return _parse_each(path, _section(path, read_yaml(path), "rules"), _rule_entry)


_LISTED_RULE_KEYS = {"rule_id", "source", "rule"}


def _rule_entry(item: Any) -> Rule:
    if isinstance(item, Mapping) and set(item) == _LISTED_RULE_KEYS:
        item = item["rule"]
    if isinstance(item, Mapping) and "signature" in item:
        item = {key: value for key, value in item.items() if key != "signature"}
    return rule_from_dict(item)


def load_sites(path: Path) -> tuple[list[SiteDescription], dict[AssetId | ResultId, int]]:
    """SITES.yaml: `sites: [...]`, optionally `assets: [{id, size}]` for the planner's sizes."""
    data = read_yaml(path)
    items = _section(path, data, "sites", ("assets",))
    sites = _parse_each(path, items, site_from_dict)
    ids = [str(site.id) for site in sites]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InvalidInput(f"{path}: duplicate site ids: {', '.join(duplicates)}")
    if not sites:
        raise InvalidInput(f"{path}: no sites")
    sizes: dict[AssetId | ResultId, int] = {}
    assets = data.get("assets") or []
    if not isinstance(assets, list):
        raise InvalidInput(f"{path}: 'assets' must be a list")
    for asset in _parse_each(path, assets, asset_from_dict):
        if asset.size is not None:
            sizes[asset.id] = asset.size
    return sites, sizes


def load_job(path: Path) -> Job:
    """JOB.yaml: submitter, workflow, inputs."""
    data = read_yaml(path)
    return _in_file(path, lambda: job_from_dict(data))
