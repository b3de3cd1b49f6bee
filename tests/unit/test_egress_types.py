"""The egress gate's outgoing values: only the gate (services/jobs/egress/) builds them."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mahiru.model.identifiers import SiteId
from mahiru.model.jobs import StepState, StepStatus
from mahiru.services.jobs.egress import StepView, values

SRC = Path(__file__).resolve().parents[2] / "src" / "mahiru"
GATE = SRC / "services" / "jobs" / "egress"
#: The values only the gate makes, and the key their constructors ask for.
GATE_BUILT = {"StepView", "LiveFile"}
GATE_KEY = {"_GATE", "_Gate"}


def _uses(tree: ast.AST) -> set[str]:
    """The names a module calls or refers to (plain names and attributes)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            found.update(alias.name for alias in node.names)
    return found


def _calls(tree: ast.AST) -> set[str]:
    called: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                called.add(func.id)
            elif isinstance(func, ast.Attribute):
                called.add(func.attr)
    return called


def test_no_module_outside_the_gate_holds_its_key_or_builds_its_values() -> None:
    """No module of src/ outside the gate's package names the gate's key or calls a
    gate-built type's constructor, so step data and live files leave only through the gate."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.is_relative_to(GATE):
            continue
        tree = ast.parse(path.read_text(), str(path))
        if (_uses(tree) & GATE_KEY) or (_calls(tree) & GATE_BUILT):
            offenders.append(str(path.relative_to(SRC)))
    assert offenders == []
    # The scan looks at the right names: the gate itself has them all.
    gate = [ast.parse(path.read_text()) for path in sorted(GATE.glob("*.py"))]
    assert set().union(*map(_uses, gate)) >= GATE_KEY
    assert set().union(*map(_calls, gate)) >= GATE_BUILT


def test_a_step_view_cannot_be_built_without_the_gates_key() -> None:
    """Any other key (a look-alike, None) is refused at run time too."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    status = StepStatus("j1", "s1", SiteId.parse("site:p1:s1"), StepState.WAITING, now, now)
    look_alike = type(values._GATE)()  # a second key, made outside the gate
    for key in (object(), None, look_alike):
        with pytest.raises(TypeError, match="egress gate"):
            StepView(status, key)  # type: ignore[arg-type]
