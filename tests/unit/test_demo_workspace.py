"""What `mahiru demo` leaves behind, and what `make demo` says while it installs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from mahiru.demo import runner
from mahiru.demo.runner import leave_workspace

ROOT = Path(__file__).resolve().parents[2]


def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "mahiru-demo-x"
    (root / "network" / "pki").mkdir(parents=True)
    (root / "network" / "pki" / "ca.key").write_text("secret")
    return root


def test_a_workspace_to_remove_is_removed_ca_key_and_all(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    out = io.StringIO()
    leave_workspace(root, remove=True, console=Console(file=out, soft_wrap=True))
    assert not root.exists()
    assert f"removed the workspace {root}" in out.getvalue()


def test_a_workspace_kept_is_named_with_how_to_remove_it(tmp_path: Path) -> None:
    """A --workdir or a failed run stays, and the last line says where and how to remove it."""
    root = workspace(tmp_path)
    out = io.StringIO()
    leave_workspace(root, remove=False, console=Console(file=out, soft_wrap=True))
    assert (root / "network" / "pki" / "ca.key").is_file()
    assert f"the workspace {root} stays" in out.getvalue()
    assert f"rm -rf {root}" in out.getvalue()


def test_a_workspace_that_cannot_be_removed_says_how_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files the demo cannot delete (a container's, say) leave the folder named, not a traceback."""
    root = workspace(tmp_path)

    def refuse(path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(runner.shutil, "rmtree", refuse)
    out = io.StringIO()
    leave_workspace(root, remove=True, console=Console(file=out, soft_wrap=True))
    assert "could not remove the workspace" in out.getvalue()
    assert f"rm -rf {root}" in out.getvalue()


def test_make_demo_says_what_it_installs_before_installing() -> None:
    """The venv recipe echoes a line about the package install before its first pip install."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(STAMP): pyproject.toml\n", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()]
    first_install = next(i for i, line in enumerate(lines) if "pip install" in line)
    announced = [line for line in lines[:first_install] if line.startswith("@echo")]
    assert announced and "Installing Mahiru and its Python packages" in announced[0]
