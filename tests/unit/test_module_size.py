"""No module of the package grows past 400 lines: a module a newcomer can read in one sitting."""

from __future__ import annotations

from pathlib import Path

import mahiru

#: The most lines a module of `src/mahiru` may have (issue 24's rule for the house).
MOST_LINES = 400


def _lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def test_no_module_is_over_400_lines() -> None:
    package = Path(mahiru.__file__).parent
    modules = sorted(package.rglob("*.py"))
    assert len(modules) > 100  # the walk really finds the package
    over = {str(m.relative_to(package)): _lines(m) for m in modules if _lines(m) > MOST_LINES}
    assert over == {}, f"modules over {MOST_LINES} lines: {over}"


def test_the_count_is_of_lines(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("a = 1\n" * (MOST_LINES + 1))
    assert _lines(sample) == MOST_LINES + 1
