"""`mahiru plan` and `mahiru policy explain`, run as the installed command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "compute_to_data"
MAHIRU = str(Path(sys.executable).parent / "mahiru")
SITE1 = "site:party1.mahiru.example.org:site1"
SITE2 = "site:party2.mahiru.example.org:site2"
PARTY1 = "party:party1.mahiru.example.org:party1"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the installed `mahiru` command."""
    return subprocess.run(
        [MAHIRU, *map(str, args)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def plan(rules: Path, sites: Path, job: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run("plan", "--rules", rules, "--sites", sites, "--job", job, *extra)


def example_data(name: str) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((EXAMPLE / f"{name}.yaml").read_text())


def write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_plan_json_puts_the_step_at_site2() -> None:
    """The bundled example plans `compute` at site2, where the data is."""
    result = plan(EXAMPLE / "rules.yaml", EXAMPLE / "sites.yaml", EXAMPLE / "job.yaml", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"plan": {"compute": SITE2}}


def test_plan_denied_exits_3_with_json_explanation(tmp_path: Path) -> None:
    """Without site2's MayAccess on the input, nobody may run the step: exit 3 and why."""
    rules = example_data("rules")
    rules["rules"] = [
        r for r in rules["rules"] if not (r["type"] == "MayAccess" and ":input:" in r["asset"])
    ]
    result = plan(
        write(tmp_path, "rules", rules), EXAMPLE / "sites.yaml", EXAMPLE / "job.yaml", "--json"
    )
    assert result.returncode == 3
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "PermissionDenied"
    assert "compute" in error["message"]
    text = json.dumps(error["details"])
    assert SITE1 in text and SITE2 in text
    assert "no MayAccess for asset:party2.mahiru.example.org:input" in text


def test_plan_denied_human_output_lists_reasons(tmp_path: Path) -> None:
    """The human form of a denial goes to stderr and names each site's reason."""
    rules = example_data("rules")
    rules["rules"] = [r for r in rules["rules"] if r["type"] != "MayUse"]
    result = plan(write(tmp_path, "rules", rules), EXAMPLE / "sites.yaml", EXAMPLE / "job.yaml")
    assert result.returncode == 3
    assert "may not use result" in result.stderr
    assert "Traceback" not in result.stderr


def _job_with(**changes: object) -> dict:  # type: ignore[type-arg]
    job = example_data("job")
    job["workflow"].update(changes)
    return job


BAD_JOBS = {
    "cycle": (
        _job_with(
            steps=[
                {
                    "name": "a",
                    "compute_asset": "asset:x:s:x:site1",
                    "inputs": {"i": "b.o"},
                    "outputs": {"o": None},
                },
                {
                    "name": "b",
                    "compute_asset": "asset:x:s:x:site1",
                    "inputs": {"i": "a.o"},
                    "outputs": {"o": None},
                },
            ],
            outputs={"result": "a.o"},
        ),
        "cycle through steps: a, b",
    ),
    "unknown source": (
        _job_with(outputs={"result": "compute.nothing"}),
        "compute.nothing",
    ),
    "bad identifier": (
        {**example_data("job"), "submitter": "site:a:b"},
        "'site:a:b' is not a party identifier",
    ),
    "unknown field": ({**example_data("job"), "priority": 3}, "unknown field(s) priority"),
}


@pytest.mark.parametrize("case", list(BAD_JOBS))
def test_invalid_job_exits_2_with_one_line(case: str, tmp_path: Path) -> None:
    """An invalid job file gives exit 2 and one error line naming the file and problem."""
    data, message = BAD_JOBS[case]
    job = write(tmp_path, "job", data)
    result = plan(EXAMPLE / "rules.yaml", EXAMPLE / "sites.yaml", job)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {job}")
    assert message in lines[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("rules: [\n  {type: MayAccess", "invalid YAML at line"),
        ("rules: [{type: MayPerhaps}]", "unknown rule type 'MayPerhaps'"),
        (
            "rules: [{type: MayAccess, site: 'party:a:b', asset: 'asset:a:b:a:s'}]",
            "only site, site_category, * is allowed",
        ),
        ("- just a list", "expected a mapping with a 'rules' list"),
    ],
)
def test_invalid_rules_exit_2(content: str, message: str, tmp_path: Path) -> None:
    """Malformed rules files are rejected with the reason and the entry."""
    result = plan(write(tmp_path, "rules", content), EXAMPLE / "sites.yaml", EXAMPLE / "job.yaml")
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    """A file that does not exist is named in the error."""
    result = plan(tmp_path / "nope.yaml", EXAMPLE / "sites.yaml", EXAMPLE / "job.yaml")
    assert result.returncode == 2
    assert "nope.yaml: no such file" in result.stderr


def test_invalid_input_json_error_shape(tmp_path: Path) -> None:
    """With --json, invalid input prints the JSON error shape on stdout."""
    result = plan(
        write(tmp_path, "sites", "sites: []"),
        EXAMPLE / "sites.yaml",
        EXAMPLE / "job.yaml",
        "--json",
    )
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "InvalidInput"


def test_explain_allowed_and_denied_exit_codes() -> None:
    """explain exits 0 when allowed and 3 when denied, with JSON decisions."""
    common = ["policy", "explain", "--rules", EXAMPLE / "rules.yaml", "--job", EXAMPLE / "job.yaml"]
    allowed = run(*common, "--item", "compute", "--site", SITE1, "--json")
    assert allowed.returncode == 0
    decision = json.loads(allowed.stdout)
    assert decision["allowed"] is True
    assert decision["requirements"][0]["chain"][0]["type"] == "MayAccess"
    denied = run(*common, "--item", "compute.input0", "--site", SITE1, "--json")
    assert denied.returncode == 3
    assert json.loads(denied.stdout)["allowed"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--item", "compute.nothing", "--site", SITE1], "has no input or output 'nothing'"),
        (["--item", "compute"], "give exactly one of --site SITE or --party PARTY"),
        (["--item", "compute", "--site", SITE1, "--party", PARTY1], "give exactly one of"),
        (["--item", "compute", "--site", "party:a:b"], "not a site identifier"),
    ],
)
def test_explain_bad_arguments_exit_2(args: list[str], message: str) -> None:
    """Bad items or subjects are usage errors, reported in one line."""
    result = run(
        "policy", "explain", "--rules", EXAMPLE / "rules.yaml", "--job", EXAMPLE / "job.yaml", *args
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_plan_reads_the_rules_as_rules_list_json_prints_them(tmp_path: Path) -> None:
    """`mahiru rules list --json` output (entries with rule id, source and the signed rule)
    plans the same as the plain rules."""
    rules = example_data("rules")["rules"]
    listed = {
        "rules": [
            {"rule_id": f"{n:064x}", "source": SITE1, "rule": {**rule, "signature": "c2ln"}}
            for n, rule in enumerate(rules)
        ]
    }
    path = tmp_path / "listed.json"
    path.write_text(json.dumps(listed))
    result = plan(path, EXAMPLE / "sites.yaml", EXAMPLE / "job.yaml", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"plan": {"compute": SITE2}}
