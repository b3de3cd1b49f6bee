"""A three-step chain whose steps can only run at three different sites; restarts and outages."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.db import sqlite_urls
from tests.support.jobs import asset_id
from tests.support.sites import Network, SiteServer, network

from mahiru.client.jobs import JobsClient, PeerJobsClient
from mahiru.errors import NotFound
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId
from mahiru.model.jobs import JobState, StepState
from mahiru.model.serialization import job_from_dict
from mahiru.model.workflow import Job
from mahiru.runtime import DockerRuntime
from mahiru.runtime.assets import INPUT_ASSET, MINMAX_ASSET
from mahiru.storage import JobRepository, create_database

pytestmark = pytest.mark.e2e

WAIT = 180.0
NAMES = ("party1", "party2", "party3")
#: One input per test, so that each job computes new results instead of reusing them.
INPUTS = ("input", "input_restart", "input_outage")


@pytest.fixture(scope="module")
def net(
    tmp_path_factory: pytest.TempPathFactory,
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
) -> Iterator[Network]:
    """Three sites: site2 holds the input, site3 and site1 compute assets only they may read."""
    root = tmp_path_factory.mktemp("chain")
    with network(root, sqlite_urls(root), NAMES) as running:
        running.replicate_all()
        _publish(running, scenario_archives[INPUT_ASSET], scenario_archives[MINMAX_ASSET])
        yield running


def _publish(net: Network, input_archive: Path, minmax_archive: Path) -> None:
    sites = [net.sites[name] for name in NAMES]
    site1, site2, site3 = sites
    everyone = [s.id for s in sites]
    mine: dict[str, list[dict[str, Any]]] = {s.id: [] for s in sites}
    uploads: dict[str, list[tuple[str, AssetKind, Path]]] = {s.id: [] for s in sites}
    for site in sites:
        results = f"asset_collection:{site.party.namespace}:results"
        mine[site.id] += [
            {"type": "MayAccess", "site": who, "asset": results} for who in everyone
        ] + [
            {"type": "MayUse", "party": site1.party.id, "asset": results, "conditions": "chain"},
            {
                "type": "ResultOfDataIn",
                "data": results,
                "compute": "*",
                "output": "*",
                "collection": results,
            },
        ]

    def asset(
        site: SiteServer, name: str, kind: AssetKind, archive: Path, readers: list[str]
    ) -> None:
        ident = asset_id(site, name)
        results = f"asset_collection:{site.party.namespace}:results"
        uploads[site.id].append((ident, kind, archive))
        mine[site.id] += [{"type": "MayAccess", "site": who, "asset": ident} for who in readers]
        side = "ResultOfDataIn" if kind is AssetKind.DATA else "ResultOfComputeIn"
        rule = {"type": side, "output": "*", "collection": results}
        rule.update(
            {"data": ident, "compute": "*"}
            if kind is AssetKind.DATA
            else {"data": "*", "compute": ident}
        )
        mine[site.id].append(rule)

    for name in INPUTS:
        asset(site2, name, AssetKind.DATA, input_archive, [site2.id])
    asset(site1, "minmax_all", AssetKind.COMPUTE, minmax_archive, everyone)
    asset(site3, "minmax_three", AssetKind.COMPUTE, minmax_archive, [site3.id])
    asset(site1, "minmax_one", AssetKind.COMPUTE, minmax_archive, [site1.id])
    for site in sites:
        with site.admin() as admin:
            for ident, kind, archive in uploads[site.id]:
                admin.upload_asset(Asset(AssetId.parse(ident), kind), archive)
            for rule in mine[site.id]:
                admin.add_rule(site.party.sign(rule))
    net.replicate_all()


def _chain(net: Network, data: str = "input") -> Job:
    site1, site2, site3 = (net.sites[name] for name in NAMES)

    def step(name: str, compute: str, source: str) -> dict[str, Any]:
        return {
            "name": name,
            "compute_asset": compute,
            "inputs": {"input0": source},
            "outputs": {"output0": None},
        }

    return job_from_dict(
        {
            "submitter": site1.party.id,
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": "c.output0"},
                "steps": [
                    step("a", asset_id(site1, "minmax_all"), "input"),
                    step("b", asset_id(site3, "minmax_three"), "a.output0"),
                    step("c", asset_id(site1, "minmax_one"), "b.output0"),
                ],
            },
            "inputs": {"input": asset_id(site2, data)},
        }
    )


def _client(net: Network) -> JobsClient:
    site1 = net.sites["party1"]
    return JobsClient(site1.internal_url, site1.party.user, timeout=60)


def _check_result(
    client: JobsClient, job_id: str, dest: Path, state: StepState = StepState.SUCCEEDED
) -> None:
    view = client.wait(job_id, WAIT)
    assert view.status.state is JobState.SUCCEEDED, view.to_json()
    assert [s.state for s in view.steps] == [state] * 3
    (data,) = client.download_output(job_id, "result", dest)
    assert json.loads(data.read_text()) == [1, 34]


def test_a_chain_runs_its_steps_at_three_different_sites(net: Network, tmp_path: Path) -> None:
    """a at site2 (the input), b at site3, c at site1: results travel, policy permitting;
    site2 tells step a's exit code to the submitter's site only, and states to site3."""
    with _client(net) as client:
        started = time.monotonic()
        view = client.submit(_chain(net))
        assert view.status.plan is not None
        assert {k: str(v) for k, v in view.status.plan.assignments.items()} == {
            "a": net.sites["party2"].id,
            "b": net.sites["party3"].id,
            "c": net.sites["party1"].id,
        }
        _check_result(client, view.status.job_id, tmp_path / "out")
        print(f"three-site chain latency: {time.monotonic() - started:.2f} s")
        site1, site2, site3 = (net.sites[name] for name in NAMES)
        for asker, exit_code in ((site1, 0), (site3, None)):
            with PeerJobsClient(site2.external_url, asker.identity) as peer:
                (a,) = peer.step_statuses(view.status.job_id)
            assert (a.step, a.state, a.exit_code) == ("a", StepState.SUCCEEDED, exit_code)
        again = client.submit(_chain(net)).status.job_id
        _check_result(client, again, tmp_path / "again", StepState.REUSED)


def test_the_submitter_site_restarted_mid_job_still_finishes_it(
    net: Network, tmp_path: Path
) -> None:
    """site1 stops right after submitting and comes back: it resumes following and step c."""
    site1 = net.sites["party1"]
    with _client(net) as client:
        job_id = client.submit(_chain(net, "input_restart")).status.job_id
    site1.stop()
    # What the stopped site left in its database: the job unfinished, its last
    # step (c, run at site1) not done, so finishing it below needs the resume.
    database = create_database(site1.config.database_url)
    try:
        jobs = JobRepository(database)
        left = jobs.get_job(job_id)
        steps = {s.step: s.state for s in jobs.steps_of(job_id)}
    finally:
        database.close()
    assert not left.state.terminal, left.state
    assert not steps["c"].done, steps
    time.sleep(2)  # the outage under test: site1 stays down a while, its peers carry on
    site1.start()
    with _client(net) as client:
        _check_result(client, job_id, tmp_path / "out")


def test_a_peer_down_during_the_job_is_waited_for(net: Network, tmp_path: Path) -> None:
    """site2 goes down once step a is done; b waits for it, and the job finishes when it is back."""
    site2 = net.sites["party2"]
    with _client(net) as client:
        job_id = client.submit(_chain(net, "input_outage")).status.job_id
        deadline = time.monotonic() + WAIT
        while True:
            try:  # handed over to site2 by the coordinator's next round
                steps = site2.app.state.site.storage.repositories.jobs.steps_of(job_id)  # type: ignore[union-attr]
            except NotFound:
                steps = []
            states = {s.step: s.state for s in steps}
            if states.get("a") is StepState.SUCCEEDED:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        site2.stop()
        time.sleep(3)  # the outage under test: nothing may end the job while site2 is down
        assert not client.status(job_id).status.state.terminal
        site2.start()
        _check_result(client, job_id, tmp_path / "out")


def test_the_result_s_receipt_chain_verifies_offline_and_tampering_fails_it(
    net: Network, tmp_path: Path
) -> None:
    """`mahiru results verify`: the three steps' receipts, each signed by the site that ran
    the step, check out with the registry's records alone; an edited receipt, a wrong
    digest or a receipt re-signed by another site do not."""
    import subprocess
    import sys

    with _client(net) as client:
        view = client.wait(client.submit(_chain(net)).status.job_id, WAIT)
    assert view.status.state is JobState.SUCCEEDED, view.to_json()
    result = view.status.outputs()["result"]
    site1 = net.sites["party1"]
    with site1.client(site1.party.user) as user:
        record = user.get_asset(result)
    document = {
        "id": str(result),
        "image_digest": record.asset.image_digest,
        "metadata": dict(record.asset.metadata),
    }
    with net.registry.client(net.parties["party1"].client) as registry:
        sites = [site.to_dict() for site in registry.sites()]
    (tmp_path / "registry.json").write_text(json.dumps({"sites": sites}))

    def verify(data: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        (tmp_path / "result.json").write_text(json.dumps(data))
        command = [sys.executable, "-m", "mahiru", "results", "verify"]
        command += [str(tmp_path / "result.json"), "--registry", str(tmp_path / "registry.json")]
        return subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=60)

    done = verify(document)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["verified"] is True and len(report["receipts"]) == 3
    ran_at = {line.split(" computed at ")[1].split(",")[0] for line in report["receipts"]}
    assert ran_at == {net.sites[name].id for name in NAMES}

    tampered = json.loads(json.dumps(document))
    tampered["metadata"]["receipts"][-1]["step"] = "z"
    wrong_digest = {**document, "image_digest": "0" * 64}
    resigned = json.loads(json.dumps(document))
    elsewhere = next(r for r in resigned["metadata"]["receipts"] if r["site"] != site1.id)
    elsewhere["site"] = site1.id  # now claims site1 computed it: site1 never signed that
    for broken, why in ((tampered, "does not verify"), (wrong_digest, "names image"),
                        (resigned, "does not verify")):  # fmt: skip
        done = verify(broken)
        assert done.returncode == 1, done.stdout
        assert json.loads(done.stdout)["verified"] is False
        assert why in json.loads(done.stdout)["reason"]
