"""The policy engine is private to the site's policy view: callers decide through the view
(audited), plan through it, or read through a `PolicyReader`; none holds the engine."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

from mahiru.model.identifiers import AssetId, SiteId
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.permissions import primary
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.store import RuleStore
from mahiru.services.site.policy_view import PolicyReader, PolicyView

SRC = Path(__file__).resolve().parents[2] / "src" / "mahiru"
VIEW = SRC / "services" / "site" / "policy_view.py"
#: The view's and the reader's private names for the engine and its snapshot.
PRIVATE = {"engine", "_engine", "_snapshot", "_current"}


def _public_results(cls: type) -> dict[str, object]:
    """What each public method returns and each public property holds, by annotation."""
    results: dict[str, object] = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_"):
            continue
        function = member.fget if isinstance(member, property) else member
        if callable(function):
            results[name] = typing.get_type_hints(function).get("return")
    return results


def test_neither_the_view_nor_its_reader_hands_out_the_engine() -> None:
    """No public method or property of either returns a PolicyEngine (or anything holding
    one in its type), and the reader keeps its engine in a private slot only."""
    for cls in (PolicyView, PolicyReader):
        for name, returned in _public_results(cls).items():
            assert "PolicyEngine" not in repr(returned), f"{cls.__name__}.{name}"
    assert not hasattr(PolicyView, "engine")
    assert PolicyReader.__slots__ == ("_engine",)


def test_nothing_outside_the_policy_view_reaches_for_its_engine() -> None:
    """No module but the view's own names the view's or a reader's engine or snapshot
    (`policy.engine`, `view._current()`, `reader._engine`, ...)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path == VIEW:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
                owner = ast.unparse(node.value).lower()
                if any(word in owner for word in ("policy", "view", "reader")):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, found


def test_the_reader_answers_from_the_engine_it_was_given() -> None:
    """A reader is a window on one snapshot: what it says is what that engine says."""
    site = SiteId.parse("site:p.example.org:site1")
    asset = AssetId.parse("asset:p.example.org:data:p.example.org:site1")
    grant = rule_from_dict({"type": "MayAccess", "site": str(site), "asset": str(asset)})
    reader = PolicyReader(PolicyEngine(RuleStore([grant])))
    assert reader.may_access(site, primary(asset), str(asset)).allowed
    assert reader.rules() == [grant]
    assert reader.rule_count() == 1
