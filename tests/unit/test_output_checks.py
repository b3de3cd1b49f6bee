"""A review rule's checks run on a result's files (reference: Rules, ReleaseReviewedBy):
size, file types and minimum counts, each passing or failing with a detail that says why."""

from __future__ import annotations

import json

import pytest

from mahiru.errors import InvalidInput
from mahiru.policy.output_checks import (
    CheckResult,
    OutputFile,
    passed_all,
    run_checks,
)
from mahiru.policy.review_checks import MinCount, ReviewChecks

COUNTS = ReviewChecks(min_count=MinCount("n", 10))


def csv_file(path: str, text: str) -> OutputFile:
    data = text.encode()
    return OutputFile(path, len(data), data)


def json_file(path: str, value: object) -> OutputFile:
    data = json.dumps(value).encode()
    return OutputFile(path, len(data), data)


def only(checks: ReviewChecks, *files: OutputFile) -> CheckResult:
    (result,) = run_checks(checks, files)
    return result


# --- which checks run -------------------------------------------------------------------


def test_one_result_per_declared_check_in_a_fixed_order() -> None:
    """max_bytes, file_types, min_count: each declared check gives one result, in that order."""
    checks = ReviewChecks(max_bytes=100, file_types=("csv",), min_count=MinCount("n", 1))
    results = run_checks(checks, [csv_file("a.csv", "n\n5\n")])
    assert [r.check for r in results] == ["max_bytes", "file_types", "min_count"]
    assert passed_all(results)
    assert [r.check for r in run_checks(ReviewChecks(file_types=("csv",)), [])] == ["file_types"]


def test_no_checks_declared_gives_no_results_and_passes() -> None:
    """A rule without checks leaves it all to the reviewer."""
    assert run_checks(ReviewChecks(), [OutputFile("x.bin", 10**9, None)]) == ()
    assert passed_all(())


def test_passed_all_is_false_if_any_check_failed() -> None:
    results = (CheckResult("max_bytes", True, "ok"), CheckResult("file_types", False, "no"))
    assert not passed_all(results)


# --- max_bytes --------------------------------------------------------------------------


def test_max_bytes_passes_up_to_the_limit_counting_every_file() -> None:
    """The total of all files' sizes is compared, and equal to the limit passes."""
    files = [OutputFile("a.csv", 60, None), OutputFile("b/c.bin", 40, None)]
    result = only(ReviewChecks(max_bytes=100), *files)
    assert result.passed
    assert result.detail == "100 bytes in 2 files, within 100"


def test_max_bytes_fails_over_the_limit_saying_total_and_limit() -> None:
    files = [OutputFile("a.csv", 60, None), OutputFile("b.csv", 41, None)]
    result = only(ReviewChecks(max_bytes=100), *files)
    assert not result.passed
    assert result.detail == "101 bytes in 2 files, over the limit of 100"


# --- file_types -------------------------------------------------------------------------


def test_file_types_passes_when_every_file_is_allowed_whatever_its_case() -> None:
    """Extensions are compared in lower case: `TABLE.CSV` is a csv file."""
    files = [OutputFile("out/TABLE.CSV", 1), OutputFile("summary.Json", 1)]
    result = only(ReviewChecks(file_types=("csv", "json")), *files)
    assert result.passed, result.detail


def test_file_types_fails_listing_every_offending_path() -> None:
    """Files of other types, and files without an extension, are named in path order."""
    files = [
        OutputFile("z.csv", 1),
        OutputFile("plot.png", 1),
        OutputFile("README", 1),
        OutputFile(".csv", 1),  # a hidden file named .csv has no extension
        OutputFile("data.csv.gz", 1),
    ]
    result = only(ReviewChecks(file_types=("csv",)), *files)
    assert not result.passed
    assert result.detail == "4 not of an allowed type (csv): .csv, README, data.csv.gz, plot.png"


def test_file_types_names_at_most_ten_paths() -> None:
    files = [OutputFile(f"f{i:02}.txt", 1) for i in range(13)]
    result = only(ReviewChecks(file_types=("csv",)), *files)
    assert result.detail.endswith("f09.txt and 3 more")
    assert result.detail.startswith("13 not of an allowed type")


# --- min_count --------------------------------------------------------------------------


def test_min_count_passes_a_csv_whose_every_row_is_at_least_the_minimum() -> None:
    result = only(COUNTS, csv_file("t.csv", "group,n\na,10\nb,250\n"))
    assert result.passed
    assert result.detail == "n >= 10 in every row of 1 tabular file(s)"


def test_min_count_fails_a_csv_naming_file_row_and_value() -> None:
    """The first row below the minimum is named (rows counted after the header)."""
    result = only(COUNTS, csv_file("out/t.csv", "group,n\na,12\nb,3\nc,2\n"))
    assert not result.passed
    assert result.detail == "out/t.csv: row 2: n = '3', below 10"


def test_min_count_passes_and_fails_json_arrays_of_records() -> None:
    good = json_file("t.json", [{"g": "a", "n": 10}, {"g": "b", "n": 11.5}])
    assert only(COUNTS, good).passed
    bad = json_file("t.json", [{"g": "a", "n": 10}, {"g": "b", "n": 9}])
    result = only(COUNTS, bad)
    assert not result.passed
    assert result.detail == "t.json: row 2: n = 9, below 10"


@pytest.mark.parametrize(
    ("file", "detail"),
    [
        (csv_file("t.csv", "group,count\na,50\n"), "t.csv: the table has no column 'n'"),
        (csv_file("t.csv", ""), "t.csv: the table has no column 'n'"),
        (json_file("t.json", [{"n": 50}, {"count": 50}]), "t.json: row 2 has no column 'n'"),
        (
            json_file("t.json", [{"n": 50}, 7]),
            "t.json: row 2 is not an object, so it has no column 'n'",
        ),
    ],
    ids=["csv", "empty csv", "json", "json row not an object"],
)
def test_min_count_fails_a_table_without_the_column(file: OutputFile, detail: str) -> None:
    result = only(COUNTS, file)
    assert not result.passed
    assert result.detail == detail


@pytest.mark.parametrize(
    ("file", "detail"),
    [
        (csv_file("t.csv", "n,g\n,a\n"), "t.csv: row 1: n = '' is not a number"),
        (csv_file("t.csv", "g,n\na\n"), "t.csv: row 1: n = None is not a number"),
        (csv_file("t.csv", "n\nmany\n"), "t.csv: row 1: n = 'many' is not a number"),
        (csv_file("t.csv", "n\nnan\n"), "t.csv: row 1: n = 'nan' is not a number"),
        (json_file("t.json", [{"n": "ten"}]), "t.json: row 1: n = 'ten' is not a number"),
        (json_file("t.json", [{"n": True}]), "t.json: row 1: n = True is not a number"),
        (json_file("t.json", [{"n": None}]), "t.json: row 1: n = None is not a number"),
    ],
)
def test_min_count_fails_a_count_that_is_not_a_number(file: OutputFile, detail: str) -> None:
    """An empty, textual or missing count proves nothing, so it fails."""
    result = only(COUNTS, file)
    assert not result.passed
    assert result.detail == detail


def test_min_count_reads_counts_written_as_text_in_json() -> None:
    """A count is a number, or text that reads as one: a JSON "12" counts as 12."""
    assert only(COUNTS, json_file("t.json", [{"n": "12"}, {"n": " 40 "}])).passed
    assert not only(COUNTS, json_file("t.json", [{"n": "9.5"}])).passed


def test_min_count_ignores_files_that_are_not_tables() -> None:
    """Other file types, and JSON that is not an array, are not subject to the check."""
    files = [
        OutputFile("plot.png", 3, b"\x89PN"),
        json_file("summary.json", {"n": 1, "mean": 3.5}),
        OutputFile("huge.bin", 10**12, None),
    ]
    result = only(COUNTS, *files)
    assert result.passed
    assert result.detail == "no tabular file to check for n >= 10"


@pytest.mark.parametrize("path", ["big.csv", "big.json"])
def test_min_count_fails_a_table_too_large_to_inspect(path: str) -> None:
    """Content the caller did not read cannot be shown to pass, so it fails."""
    result = only(COUNTS, OutputFile(path, 5_000_000, None))
    assert not result.passed
    assert result.detail == f"{path}: too large to inspect (5000000 bytes), so not shown to pass"


@pytest.mark.parametrize(
    ("file", "detail"),
    [
        (OutputFile("t.csv", 2, b"\xff\xfe"), "t.csv: not UTF-8 text"),
        (OutputFile("t.json", 5, b"[{]"), "t.json: not valid JSON"),
    ],
)
def test_min_count_fails_a_table_it_cannot_read(file: OutputFile, detail: str) -> None:
    result = only(COUNTS, file)
    assert not result.passed
    assert result.detail.startswith(detail)


def test_min_count_reads_a_csv_with_a_byte_order_mark_and_quoted_cells() -> None:
    result = only(COUNTS, csv_file("t.csv", '\ufeff"n","note"\n"12","a, b"\n'))
    assert result.passed, result.detail


def test_min_count_names_the_first_failing_file_in_path_order() -> None:
    files = [
        csv_file("b.csv", "n\n1\n"),
        csv_file("a.csv", "n\n20\n"),
        json_file("c.json", [{"n": 2}]),
    ]
    assert only(COUNTS, *files).detail == "b.csv: row 1: n = '1', below 10"


# --- the dict form of a result ----------------------------------------------------------


def test_check_results_round_trip_through_their_dict_form() -> None:
    for result in run_checks(
        ReviewChecks(max_bytes=1, file_types=("csv",), min_count=MinCount("n", 1)),
        [csv_file("a.csv", "n\n0\n")],
    ):
        data = json.loads(json.dumps(result.to_dict()))
        assert data == {"check": result.check, "passed": result.passed, "detail": result.detail}
        assert CheckResult.from_dict(data) == result


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"check": "max_bytes", "passed": True}, "missing detail"),
        ({"check": "max_bytes", "passed": True, "detail": "x", "extra": 1}, "extra"),
        ({"check": "colour", "passed": True, "detail": "x"}, "'check' must be one of"),
        ({"check": "max_bytes", "passed": "yes", "detail": "x"}, "'passed'"),
        ({"check": "max_bytes", "passed": True, "detail": ""}, "'detail'"),
        (["max_bytes"], "must be a mapping"),
    ],
)
def test_a_bad_check_result_is_refused(data: object, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        CheckResult.from_dict(data)
