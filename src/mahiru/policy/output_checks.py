"""Running a review rule's checks on the files of a result: pure, on what the caller read.

The caller lists the result's files (`OutputFile`) and hands over the content
of those small enough to inspect; `run_checks` gives one `CheckResult` per
check the rule declares, each saying what passed or what failed first. The
checks fail closed: a file that might be a table but cannot be read (too
large to inspect, not text, not valid JSON) fails `min_count`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from mahiru.errors import InvalidInput
from mahiru.model.fields import BOOLEAN, Field, Shape, choice, flag, string, text
from mahiru.policy.review_checks import MinCount, ReviewChecks

#: The checks, in the order their results are given.
CHECK_NAMES = ("max_bytes", "file_types", "min_count")
#: How many offending paths a detail names before it says how many more there are.
_NAMED_PATHS = 10

CHECK_RESULT_SHAPE = Shape(
    "check result",
    "The outcome of one check of a review rule on a result's files.",
    (
        Field("check", choice(*CHECK_NAMES)),
        Field("passed", BOOLEAN),
        Field("detail", string(non_empty=True)),
    ),
)


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One file of a result: its path inside the result, its size in bytes, and its
    content when the caller read it (None: too large to inspect)."""

    path: str
    size: int
    content: bytes | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Whether one check (`max_bytes`, `file_types` or `min_count`) passed, and why."""

    check: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """The dict form."""
        return {"check": self.check, "passed": self.passed, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: object) -> CheckResult:
        """Parse the dict form strictly."""
        checked = CHECK_RESULT_SHAPE.check(data)
        check = text(checked, "check", "check result")
        if check not in CHECK_NAMES:
            raise InvalidInput(
                f"check result field 'check' must be one of {', '.join(CHECK_NAMES)}, got {check!r}"
            )
        return cls(
            check, flag(checked, "passed", "check result"), text(checked, "detail", "check result")
        )


def run_checks(checks: ReviewChecks, files: Sequence[OutputFile]) -> tuple[CheckResult, ...]:
    """One result per check `checks` declares (none if it declares none), in the order
    max_bytes, file_types, min_count; files are judged in path order."""
    ordered = sorted(files, key=lambda f: f.path)
    results: list[CheckResult] = []
    if checks.max_bytes is not None:
        results.append(_max_bytes(checks.max_bytes, ordered))
    if checks.file_types is not None:
        results.append(_file_types(checks.file_types, ordered))
    if checks.min_count is not None:
        results.append(_min_count(checks.min_count, ordered))
    return tuple(results)


def passed_all(results: Iterable[CheckResult]) -> bool:
    """Whether every check passed (true when there were none)."""
    return all(result.passed for result in results)


def _max_bytes(limit: int, files: Sequence[OutputFile]) -> CheckResult:
    total = sum(f.size for f in files)
    count = f"{len(files)} file{'' if len(files) == 1 else 's'}"
    if total <= limit:
        return CheckResult("max_bytes", True, f"{total} bytes in {count}, within {limit}")
    return CheckResult("max_bytes", False, f"{total} bytes in {count}, over the limit of {limit}")


def _extension(path: str) -> str:
    """The file's extension, lower-case, without the dot ('' if it has none)."""
    return PurePosixPath(path).suffix[1:].lower()


def _file_types(allowed: tuple[str, ...], files: Sequence[OutputFile]) -> CheckResult:
    listed = ", ".join(allowed)
    offending = [f.path for f in files if _extension(f.path) not in allowed]
    if not offending:
        return CheckResult("file_types", True, f"every file is of an allowed type ({listed})")
    named = ", ".join(offending[:_NAMED_PATHS])
    more = len(offending) - _NAMED_PATHS
    if more > 0:
        named += f" and {more} more"
    return CheckResult(
        "file_types", False, f"{len(offending)} not of an allowed type ({listed}): {named}"
    )


def _min_count(rule: MinCount, files: Sequence[OutputFile]) -> CheckResult:
    tables = 0
    for file in files:
        if _extension(file.path) not in _TABULAR:
            continue
        table = _table(file)
        if table is None:
            continue  # JSON that is not an array: not a table
        tables += 1
        problem = table if isinstance(table, str) else _count_problem(rule, table)
        if problem is not None:
            return CheckResult("min_count", False, f"{file.path}: {problem}")
    what = f"{rule.column} >= {rule.at_least}"
    if not tables:
        return CheckResult("min_count", True, f"no tabular file to check for {what}")
    return CheckResult("min_count", True, f"{what} in every row of {tables} tabular file(s)")


#: The extensions of files that may be tables: CSV with a header row, JSON arrays of objects.
_TABULAR = ("csv", "json")


@dataclass(frozen=True, slots=True)
class _Table:
    """A file read as a table: its header (CSV only) and its rows, numbered from 1."""

    header: tuple[str, ...] | None
    rows: list[Any]


def _table(file: OutputFile) -> _Table | str | None:
    """The file as a table, why it cannot be read as one (text), or None if it is JSON
    that is not an array (not a table)."""
    if file.content is None:
        return f"too large to inspect ({file.size} bytes), so not shown to pass"
    try:
        decoded = file.content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "not UTF-8 text, so it cannot be read as a table"
    if _extension(file.path) == "csv":
        reader = csv.DictReader(io.StringIO(decoded, newline=""))
        try:
            rows = list(reader)
        except csv.Error as error:
            return f"not a readable CSV table ({error})"
        return _Table(tuple(reader.fieldnames or ()), rows)
    try:
        document = json.loads(decoded)
    except ValueError:
        return "not valid JSON, so it cannot be read as a table"
    return _Table(None, document) if isinstance(document, list) else None


def _count_problem(rule: MinCount, table: _Table) -> str | None:
    """The first row whose count is missing or below the minimum, or None."""
    if table.header is not None and rule.column not in table.header:
        return f"the table has no column {rule.column!r}"
    for number, row in enumerate(table.rows, start=1):
        if not isinstance(row, dict):
            return f"row {number} is not an object, so it has no column {rule.column!r}"
        if rule.column not in row:
            return f"row {number} has no column {rule.column!r}"
        value = row[rule.column]
        count = _number(value)
        if count is None:
            return f"row {number}: {rule.column} = {value!r} is not a number"
        if count < rule.at_least:
            return f"row {number}: {rule.column} = {value!r}, below {rule.at_least}"
    return None


def _number(value: object) -> int | float | None:
    """A count cell as a number: a JSON number, or CSV text that reads as one; None for
    anything else, NaN and the infinities included (they count nothing)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None
