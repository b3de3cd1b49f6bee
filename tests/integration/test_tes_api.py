"""A site's GA4GH TES 1.1 endpoint, driven over real mutual TLS by `py-tes` as a TRE's tools
would (docs/tes.md); every answer is checked against the TES 1.1 schemas.

The sites run no steps here (started without jobs): tasks stay queued, so what is tested
is the mapping, the checks, the policy's refusals, listing and cancelling. Running tasks
to their end with real containers is tests/e2e/test_tes_py_tes.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import tes
from tests.support.db import sqlite_urls
from tests.support.images import write_image
from tests.support.jobs import Scenario, asset_id, compute_to_data
from tests.support.sites import Network, network
from tests.support.tes import TesClient, check_list, check_task, check_tes, tes_get, tes_post

from mahiru.client.jobs import JobsClient
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId
from mahiru.model.jobs import JobState

pytestmark = pytest.mark.integration

#: What the declared compute asset says it runs (its metadata).
COMMAND = ["python", "/opt/minmax/main.py"]
ENV = {"MODE": "minmax"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Network, Scenario, str]]:
    """Two sites with the compute-to-data assets and rules, and a compute asset at site1
    that declares its command; the sites run no steps, so tasks stay queued."""
    root = tmp_path_factory.mktemp("tes")
    with network(root, sqlite_urls(root), ("party1", "party2")) as net:
        net.replicate_all()
        archives = {name: write_image(root / f"{name}.tar", 2_000) for name in ("i", "o", "c")}
        scenario = compute_to_data(net, archives["i"], archives["o"], {"minmax": archives["c"]})
        site1 = scenario.site1
        declared = asset_id(site1, "declared")
        results = f"asset_collection:{site1.party.namespace}:results"
        with site1.admin() as admin:
            metadata = {"command": COMMAND, "env": ENV}
            admin.upload_asset(
                Asset(AssetId.parse(declared), AssetKind.COMPUTE, metadata), archives["c"]
            )
            for rule in (
                *({"type": "MayAccess", "site": s.id, "asset": declared}
                  for s in (site1, scenario.site2)),
                {"type": "ResultOfComputeIn", "data": "*", "compute": declared, "output": "*",
                 "collection": results},
            ):  # fmt: skip
                admin.add_rule(site1.party.sign(rule))
        net.replicate_all()
        for site in (site1, scenario.site2):
            site.stop()
            site.start(jobs=False)
        yield net, scenario, declared


@pytest.fixture
def scenario(world: tuple[Network, Scenario, str]) -> Scenario:
    return world[1]


def client(scenario: Scenario, *, admin: bool = False) -> TesClient:
    """py-tes at site1's internal URL, as party1's user (or admin)."""
    party = scenario.site1.party
    return TesClient(scenario.site1.internal_url, party.admin if admin else party.user, timeout=60)


def task(
    scenario: Scenario, *, compute: str | None = None, data: str | None = None, **fields: Any
) -> tes.Task:
    """The compute-to-data job as a task (its executor given as `executor` fields)."""
    executor = {
        "image": compute or scenario.computes["minmax"],
        "command": [],
        **fields.pop("executor", {}),
    }
    folder = "DIRECTORY"
    return tes.Task(
        executors=[tes.Executor(**executor)],
        inputs=[tes.Input(url=data or scenario.input, path="/mahiru/inputs/input0", type=folder)],
        outputs=[tes.Output(url=scenario.output_base, path="/mahiru/outputs/output0", type=folder)],
        **fields,
    )


def _filled(value: Any, known: dict[str, str]) -> Any:
    """`value` with each text that is a key of `known` replaced by its value."""
    if isinstance(value, dict):
        return {k: _filled(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, known) for v in value]
    return known.get(value, value) if isinstance(value, str) else value


def _error(raised: pytest.ExceptionInfo[requests.HTTPError]) -> tuple[int, dict[str, Any]]:
    response = raised.value.response
    assert response is not None
    error: dict[str, Any] = response.json()["error"]
    return response.status_code, error


def test_service_info_says_tes_1_1(scenario: Scenario) -> None:
    """py-tes reads the service info; it is a GA4GH service of type org.ga4gh:tes:1.1.0."""
    info = client(scenario).get_service_info()
    assert info.type == {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}
    raw = tes_get(scenario.site1.internal_url, "/service-info", scenario.site1.party.user)
    check_tes(raw.json(), "tesServiceInfo")
    assert raw.json()["organization"]["name"] == scenario.party1


def test_a_task_is_a_job_planned_like_any_other(scenario: Scenario) -> None:
    """The compute-to-data task becomes the job `jobs submit` would make: planned at site2,
    listed among the user's jobs; each view shows what TES says it shows."""
    tasks = client(scenario)
    task_id = tasks.create_task(task(scenario, name="minmax run", tags={"Project": "p-1"}))
    with JobsClient(scenario.site1.internal_url, scenario.site1.party.user) as jobs:
        view = jobs.status(task_id)
    assert view.status.state is JobState.PLANNED
    assert view.status.plan is not None
    assert {str(s) for s in view.status.plan.assignments.values()} == {scenario.site2.id}
    site, user = scenario.site1.internal_url, scenario.site1.party.user
    shown = {
        v: tes_get(site, f"/tasks/{task_id}", user, view=v).json()
        for v in ("MINIMAL", "BASIC", "FULL")
    }
    for v, answer in shown.items():
        check_task(answer, v)
    assert shown["MINIMAL"] == {"id": task_id, "state": "QUEUED"}
    basic = shown["BASIC"]
    assert basic["name"] == "minmax run" and basic["tags"] == {"Project": "p-1"}
    assert basic["executors"] == [{"image": scenario.computes["minmax"], "command": []}]
    assert basic["inputs"][0]["url"] == scenario.input
    assert basic["outputs"][0] == {
        "name": "output0", "path": "/mahiru/outputs/output0", "type": "DIRECTORY",
        "url": scenario.output_base,
    }  # fmt: skip
    assert basic["logs"][0]["logs"] == [] and basic["logs"][0]["outputs"] == []
    assert any(scenario.site2.id in line for line in shown["FULL"]["logs"][0]["system_logs"])
    assert tasks.get_task(task_id, "BASIC").tags == {"Project": "p-1"}
    # The same audit record as any submission: the plan decision, naming the user.
    admin = scenario.site1.party.admin
    with requests.Session() as raw:
        audit = raw.get(
            f"{site}/audit",
            params={"job": task_id},
            cert=(str(admin.cert), str(admin.key)),
            verify=str(admin.ca),
            timeout=60,
        ).json()["records"]
    planned = [r for r in audit if r["action"] == "plan job"]
    assert [(r["outcome"], r["user"]) for r in planned] == [("allowed", f"user@{scenario.party1}")]


def test_tasks_are_listed_with_filters_and_pages(scenario: Scenario) -> None:
    """name_prefix, tag_key/tag_value and state filter the list; pages of one walk every
    task once; a plain job (not a task) is not listed."""
    tasks = client(scenario)
    made = [
        tasks.create_task(task(scenario, name=f"lst-{n}", tags={"Project": p, "kind": "lst"}))
        for n, p in (("a", "alpha"), ("b", "beta"), ("c", "alpha"))
    ]
    site, user = scenario.site1.internal_url, scenario.site1.party.user

    def ids(**params: Any) -> list[str]:
        answer = tes_get(site, "/tasks", user, **params).json()
        check_list(answer, "MINIMAL")
        return [t["id"] for t in answer["tasks"]]

    assert set(ids(name_prefix="lst-")) == set(made)
    with JobsClient(site, user) as jobs:
        plain = jobs.submit(scenario.job()).status.job_id
    assert plain not in ids(page_size=2048)
    assert ids(name_prefix="lst-b") == [made[1]]
    assert set(ids(tag_key="Project", tag_value="alpha", name_prefix="lst-")) == {made[0], made[2]}
    assert set(ids(tag_key=["kind", "Project"], tag_value=["lst", "beta"])) == {made[1]}
    assert set(ids(tag_key="kind")) == set(made)
    assert set(made) <= set(ids(state="QUEUED"))
    assert ids(state="COMPLETE") == []
    seen: list[str] = []
    token: str | None = None
    while True:
        page = tasks.list_tasks(view="BASIC", page_size=1, page_token=token)
        assert len(page.tasks) <= 1
        seen += [t.id for t in page.tasks]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) and set(made) <= set(seen)
    answer = tes_get(site, "/tasks", user, view="FULL", page_size=2).json()
    check_list(answer, "FULL")
    assert "next_page_token" in answer


def test_a_task_the_policy_refuses_is_answered_with_the_explanation(scenario: Scenario) -> None:
    """No rule lets a site read the secret: 403 with the planner's explanation, no task."""
    secret = asset_id(scenario.site2, "secret")
    tasks = client(scenario)
    before = tasks.list_tasks(page_size=2048).tasks or []
    with pytest.raises(requests.HTTPError) as refused:
        tasks.create_task(task(scenario, data=secret))
    status, error = _error(refused)
    assert status == 403 and error["type"] == "PermissionDenied"
    assert "executor" in json.dumps(error)
    assert len(tasks.list_tasks(page_size=2048).tasks or []) == len(before)


def test_a_task_naming_an_unknown_asset_is_400_naming_the_field(scenario: Scenario) -> None:
    """An input no site stores is a 400 naming `inputs[0].url` (a TES client reads a 404 as
    a wrong address), and validation says the same without storing anything."""
    missing = asset_id(scenario.site1, "missing")
    site, user = scenario.site1.internal_url, scenario.site1.party.user
    with pytest.raises(requests.HTTPError) as refused:
        client(scenario).create_task(task(scenario, data=missing))
    status, error = _error(refused)
    assert status == 400 and error["details"]["field"] == "inputs[0].url"
    assert missing in error["message"]
    checked = tes_post(site, "/tasks:validate", user, task(scenario, data=missing).as_dict())
    assert checked.json()["valid"] is False and missing in checked.json()["explanation"]


def test_validation_plans_and_explains_without_running(scenario: Scenario) -> None:
    """POST /tasks:validate says where the task would run, or why it may not, and stores
    nothing."""
    site, user = scenario.site1.internal_url, scenario.site1.party.user
    before = tes_get(site, "/tasks", user, page_size=2048).json()["tasks"]
    good = tes_post(site, "/tasks:validate", user, task(scenario).as_dict())
    assert good.status_code == 200, good.text
    assert good.json()["valid"] is True
    assert good.json()["plan"] == {"executor": scenario.site2.id}
    secret = asset_id(scenario.site2, "secret")
    bad = tes_post(site, "/tasks:validate", user, task(scenario, data=secret).as_dict())
    assert bad.status_code == 200 and bad.json()["valid"] is False
    assert "executor" in bad.json()["explanation"]
    assert tes_get(site, "/tasks", user, page_size=2048).json()["tasks"] == before


@pytest.mark.parametrize(
    ("executor", "field"),
    [
        ({"command": ["sh", "-c", "cat /mahiru/inputs/input0/*"]}, "executors[0].command"),
        ({"command": COMMAND[:1]}, "executors[0].command"),
        ({"command": COMMAND, "env": {"MODE": "other"}}, "executors[0].env"),
        ({"workdir": "/tmp"}, "executors[0].workdir"),
        ({"stdin": "/mahiru/inputs/input0/data"}, "executors[0].stdin"),
    ],
)
def test_an_executor_asking_for_other_than_the_asset_declares_is_400(
    world: tuple[Network, Scenario, str], executor: dict[str, Any], field: str
) -> None:
    """A command, env, workdir or stdin other than the compute asset's own is refused with
    a 400 naming the field."""
    _, scenario, declared = world
    with pytest.raises(requests.HTTPError) as refused:
        client(scenario).create_task(task(scenario, compute=declared, executor=executor))
    status, error = _error(refused)
    assert status == 400 and error["type"] == "InvalidInput"
    assert error["details"]["field"] == field and field in error["message"]


def test_the_assets_own_command_and_env_are_accepted(world: tuple[Network, Scenario, str]) -> None:
    """Saying exactly what the asset declares is the same as saying nothing."""
    _, scenario, declared = world
    tasks = client(scenario)
    task_id = tasks.create_task(
        task(scenario, compute=declared, executor={"command": COMMAND, "env": ENV})
    )
    assert tasks.get_task(task_id, "BASIC").executors[0].command == COMMAND


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"ram_gb": 64.0}, "resources.ram_gb"),
        ({"cpu_cores": 16}, "resources.cpu_cores"),
        ({"disk_gb": 10_000.0}, "resources.disk_gb"),
        ({"zones": ["elsewhere"]}, "resources.zones"),
    ],
)
def test_resources_above_the_sites_step_limits_are_refused(
    scenario: Scenario, resources: dict[str, Any], field: str
) -> None:
    """A request above the site's step limits is refused, not lowered."""
    with pytest.raises(requests.HTTPError) as refused:
        client(scenario).create_task(task(scenario, resources=tes.Resources(**resources)))
    status, error = _error(refused)
    assert status == 400 and error["details"]["field"] == field


def test_resources_within_the_limits_are_kept(scenario: Scenario) -> None:
    """A request the limits allow is accepted and shown back."""
    tasks = client(scenario)
    task_id = tasks.create_task(task(scenario, resources=tes.Resources(cpu_cores=1, ram_gb=0.5)))
    resources = tasks.get_task(task_id, "BASIC").resources
    assert (resources.cpu_cores, resources.ram_gb) == (1, 0.5)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"executors": [{"image": "COMPUTE", "command": []}] * 2}, "executors"),
        ({"inputs": [{"url": "INPUT", "path": "/data/in", "type": "DIRECTORY"}]}, "inputs[0].path"),
        (
            {"inputs": [{"url": "INPUT", "path": "/mahiru/inputs/x", "type": "FILE"}]},
            "inputs[0].type",
        ),
        ({"inputs": [{"url": "s3://b/k", "path": "/mahiru/inputs/x"}]}, "inputs[0].url"),
        ({"inputs": [{"content": "x", "path": "/mahiru/inputs/x"}]}, "inputs[0].content"),
        ({"outputs": [{"url": "file:///o", "path": "/mahiru/outputs/o"}]}, "outputs[0].url"),
        ({"volumes": ["/scratch"]}, "volumes"),
        ({"executors": [{"image": "ubuntu:24.04", "command": []}]}, "executors[0].image"),
    ],
)
def test_a_task_outside_the_mapping_is_400_naming_the_field(
    scenario: Scenario, change: dict[str, Any], field: str
) -> None:
    """Several executors, paths outside /mahiru, files, inline content, URLs that are no
    asset, volumes and images that are no compute asset are each refused, by field."""
    known = {"COMPUTE": scenario.computes["minmax"], "INPUT": scenario.input}
    body = task(scenario).as_dict() | _filled(change, known)
    answer = tes_post(scenario.site1.internal_url, "/tasks", scenario.site1.party.user, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["details"]["field"] == field


def test_a_queued_task_is_cancelled(scenario: Scenario) -> None:
    """Cancelling a queued task makes it CANCELED, and its job cancelled; the create and
    cancel answers are TES's."""
    tasks = client(scenario)
    site, user = scenario.site1.internal_url, scenario.site1.party.user
    created = tes_post(site, "/tasks", user, task(scenario, name="to cancel").as_dict())
    assert created.status_code == 200, created.text
    check_tes(created.json(), "tesCreateTaskResponse")
    task_id = created.json()["id"]
    cancelled = tes_post(site, f"/tasks/{task_id}:cancel", user)
    assert cancelled.status_code == 200, cancelled.text
    check_tes(cancelled.json(), "tesCancelTaskResponse")
    assert tasks.get_task(task_id, "MINIMAL").state == "CANCELED"
    with JobsClient(scenario.site1.internal_url, scenario.site1.party.user) as jobs:
        assert jobs.status(task_id).status.state is JobState.CANCELLED


def test_a_user_sees_only_what_the_internal_api_shows_them(
    world: tuple[Network, Scenario, str],
) -> None:
    """Another plain user of the party neither sees nor cancels the user's task (404); the
    party's admin sees it."""
    net, scenario, _ = world
    task_id = client(scenario).create_task(task(scenario, name="mine"))
    other = net.certs.user(scenario.site1.party, "other")
    site = scenario.site1.internal_url
    assert tes_get(site, f"/tasks/{task_id}", other).status_code == 404
    assert tes_post(site, f"/tasks/{task_id}:cancel", other).status_code == 404
    assert task_id not in [t["id"] for t in tes_get(site, "/tasks", other).json()["tasks"]]
    assert client(scenario, admin=True).get_task(task_id, "MINIMAL").state == "QUEUED"


def test_bad_views_states_and_page_tokens_are_400(scenario: Scenario) -> None:
    """Unknown views, states and page tokens name what was wrong."""
    site, user = scenario.site1.internal_url, scenario.site1.party.user
    for params, field in (
        ({"view": "ALL"}, "view"),
        ({"state": "DONE"}, "state"),
        ({"page_token": "abc"}, "page_token"),
        ({"page_size": 0}, "page_size"),
    ):
        answer = tes_get(site, "/tasks", user, **params)
        assert answer.status_code == 400, params
        assert answer.json()["error"]["details"]["field"] == field


def test_reference_schemas_are_the_local_copies() -> None:
    """The schemas checked against are the copies under tests/standards/tes/."""
    folder = Path(__file__).resolve().parents[1] / "standards" / "tes"
    assert (folder / "tes-1.1.0-components.yaml").is_file()
    assert "Apache-2.0" in (folder / "README.md").read_text()
