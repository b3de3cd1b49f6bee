"""A registered but hostile site tries to get around the other sites' policies.

p1's site acts as the hostile peer: it holds a valid site certificate and is
registered like any other, and talks to p2's honest site over its external
API directly, skipping its own site's checks. Every attempt must be refused
with a reason, by p2's site deciding for itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.db import sqlite_urls
from tests.support.images import write_image
from tests.support.sites import Network, may_access, network

from mahiru.client.jobs import JobsClient, PeerJobsClient
from mahiru.errors import InvalidInput, NotFound, PermissionDenied, path_redactor
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, SiteId
from mahiru.model.jobs import StepAssignment
from mahiru.model.serialization import job_from_dict
from mahiru.model.workflow import Plan
from mahiru.services.images import receive_image
from mahiru.storage import BlobStore

pytestmark = pytest.mark.integration


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    """p1 (the hostile peer) and p2 (honest), registered and replicated."""
    with network(tmp_path, sqlite_urls(tmp_path), ("p1", "p2")) as n:
        n.replicate_all()
        yield n


def _ids(net: Network) -> dict[str, str]:
    site1, site2 = net.sites["p1"].id, net.sites["p2"].id
    return {
        "site1": site1,
        "site2": site2,
        "data": "asset:p2.org:data:p2.org:site",
        "live": "asset:p2.org:live:p2.org:site",
        "script": "asset:p1.org:script:p1.org:site",
        "results1": "asset_collection:p1.org:results",
        "results2": "asset_collection:p2.org:results",
    }


def test_a_hand_over_whose_outputs_the_submitter_may_not_use_is_refused(
    net: Network, tmp_path: Path
) -> None:
    """site2 may run the step, but party1 may not use the result: site1's own planner would
    refuse the job, and site2 refuses the hand-over made behind its back, saying why."""
    ids = _ids(net)
    site1, site2 = net.sites["p1"], net.sites["p2"]
    with site2.admin() as admin:
        admin.upload_asset(Asset(AssetId.parse(ids["data"]), AssetKind.DATA), write_image(
            tmp_path / "d.tar"))  # fmt: skip
        for rule in (
            may_access(ids["site2"], ids["data"]),
            {"type": "ResultOfDataIn", "data": ids["data"], "compute": "*", "output": "*",
             "collection": ids["results2"]},
            may_access(ids["site1"], ids["results2"]),
            may_access(ids["site2"], ids["results2"]),
            # No MayUse for party1: party1 may not have the result.
        ):  # fmt: skip
            admin.add_rule(site2.party.sign(rule))
    with site1.admin() as admin:
        for rule in (
            may_access(ids["site2"], ids["script"]),
            {"type": "ResultOfComputeIn", "data": "*", "compute": ids["script"], "output": "*",
             "collection": ids["results1"]},
            may_access(ids["site1"], ids["results1"]),
            may_access(ids["site2"], ids["results1"]),
            {"type": "MayUse", "party": site1.party.id, "asset": ids["results1"],
             "conditions": "own"},
        ):  # fmt: skip
            admin.add_rule(site1.party.sign(rule))
    net.replicate_all()
    job = job_from_dict(
        {
            "submitter": site1.party.id,
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": "compute.output0"},
                "steps": [
                    {"name": "compute", "compute_asset": ids["script"],
                     "inputs": {"input0": "input"}, "outputs": {"output0": None}}
                ],
            },
            "inputs": {"input": ids["data"]},
        }
    )  # fmt: skip
    # The honest route: site1's own planner refuses the job.
    with JobsClient(site1.internal_url, site1.party.user) as user, pytest.raises(
        PermissionDenied, match="may not receive the workflow outputs"
    ):  # fmt: skip
        user.submit(job)
    # The hostile route: site1 hands the step to site2 itself.
    assignment = StepAssignment(
        job_id=uuid.uuid4().hex,
        submitter_site=SiteId.parse(ids["site1"]),
        site=SiteId.parse(ids["site2"]),
        job=job,
        plan=Plan({"compute": SiteId.parse(ids["site2"])}),
    )
    with (
        PeerJobsClient(site2.external_url, site1.identity) as peer,
        pytest.raises(PermissionDenied) as refused,
    ):
        peer.assign(assignment)
    message = refused.value.message
    assert "does not permit the job as planned" in message
    assert f"{site1.party.id} may not use" in message
    assert site2.app is not None
    with pytest.raises(NotFound):  # nothing of it was stored
        site2.site.storage.repositories.jobs.assignment(assignment.job_id)


def test_a_live_only_data_set_never_leaves_whole(net: Network, tmp_path: Path) -> None:
    """Metadata yes (the policy allows access), the image no: only the live channel."""
    ids = _ids(net)
    site1, site2 = net.sites["p1"], net.sites["p2"]
    live = AssetId.parse(ids["live"])
    with site2.admin() as admin:
        admin.upload_asset(
            Asset(live, AssetKind.DATA, {"live_access": True}), write_image(tmp_path / "l.tar")
        )
        admin.add_rule(site2.party.sign(may_access(ids["site1"], ids["live"])))
    net.replicate_all()
    blobs = BlobStore(tmp_path / "stolen")
    with site2.peer(site1.identity) as peer:
        assert peer.get_asset(live).asset.metadata == {"live_access": True}
        with pytest.raises(PermissionDenied, match="served only live"):
            receive_image(blobs, peer.fetch_image(live), str(live))
        with pytest.raises(PermissionDenied, match="served only live"):
            peer.download_image(live, tmp_path / "stolen.tar")
    assert list(blobs.digests()) == []
    assert not (tmp_path / "stolen.tar").exists()


def test_errors_name_no_folder_of_the_site(net: Network) -> None:
    """An error that would name the site's data folder reaches callers with it redacted."""
    site2 = net.sites["p2"]
    assert site2.app is not None
    data = site2.config.data_dir

    @site2.app.get("/external/boom-for-the-test")
    def boom() -> None:
        raise InvalidInput(f"cannot read {data.resolve()}/blobs/x", {"path": f"{data}/work/y"})

    with site2.peer(net.sites["p1"].identity) as peer:
        response = peer._http.get("/boom-for-the-test")
    assert response.status_code == 400
    text = response.text
    assert str(data) not in text and str(data.resolve()) not in text
    assert "<site data>/blobs/x" in text and "<site data>/work/y" in text


def test_the_redactor_replaces_each_folder_whole() -> None:
    redact = path_redactor(Path("/srv/site"), Path("/srv/site/data"), Path("."))
    assert (
        redact("at /srv/site/data/work and /srv/site/x") == "at <site data>/work and <site data>/x"
    )
    assert redact("no path here.") == "no path here."


def test_a_hand_over_naming_a_producer_that_may_not_run_its_step_is_refused(
    net: Network, tmp_path: Path
) -> None:
    """Result-cache poisoning, first move: the hostile submitter's plan has step a (on
    p2's data) run at its own site, which may not read that data, and hands step b to
    site2 to run on a's 'output'. site2 checks the whole plan and refuses."""
    ids = _ids(net)
    site1, site2 = net.sites["p1"], net.sites["p2"]
    with site2.admin() as admin:
        admin.upload_asset(Asset(AssetId.parse(ids["data"]), AssetKind.DATA), write_image(
            tmp_path / "d.tar"))  # fmt: skip
        for rule in (
            may_access(ids["site2"], ids["data"]),  # only site2 may read the data
            {"type": "ResultOfDataIn", "data": ids["data"], "compute": "*", "output": "*",
             "collection": ids["results2"]},
            {"type": "ResultOfDataIn", "data": ids["results2"], "compute": "*", "output": "*",
             "collection": ids["results2"]},
            may_access(ids["site1"], ids["results2"]),
            may_access(ids["site2"], ids["results2"]),
            {"type": "MayUse", "party": site1.party.id, "asset": ids["results2"],
             "conditions": "analysis"},
        ):  # fmt: skip
            admin.add_rule(site2.party.sign(rule))
    with site1.admin() as admin:
        for rule in (
            may_access(ids["site1"], ids["script"]),
            may_access(ids["site2"], ids["script"]),
            {"type": "ResultOfComputeIn", "data": "*", "compute": ids["script"], "output": "*",
             "collection": ids["results1"]},
            {"type": "ResultOfDataIn", "data": ids["results1"], "compute": "*", "output": "*",
             "collection": ids["results1"]},
            may_access(ids["site1"], ids["results1"]),
            may_access(ids["site2"], ids["results1"]),
            {"type": "MayUse", "party": site1.party.id, "asset": ids["results1"],
             "conditions": "own"},
        ):  # fmt: skip
            admin.add_rule(site1.party.sign(rule))
    net.replicate_all()

    def step(name: str, source: str) -> dict[str, object]:
        return {"name": name, "compute_asset": ids["script"], "inputs": {"input0": source},
                "outputs": {"output0": None}}  # fmt: skip

    job = job_from_dict(
        {
            "submitter": site1.party.id,
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": "b.output0"},
                "steps": [step("a", "input"), step("b", "a.output0")],
            },
            "inputs": {"input": ids["data"]},
        }
    )
    site1_id, site2_id = SiteId.parse(ids["site1"]), SiteId.parse(ids["site2"])
    assignment = StepAssignment(
        job_id=uuid.uuid4().hex,
        submitter_site=site1_id,
        site=site2_id,
        job=job,
        plan=Plan({"a": site1_id, "b": site2_id}),
    )
    with (
        PeerJobsClient(site2.external_url, site1.identity) as peer,
        pytest.raises(PermissionDenied) as refused,
    ):
        peer.assign(assignment)
    assert f"{site1_id} may not access a.input0" in refused.value.message
    # The honest plan (both steps at site2) is taken.
    honest = StepAssignment(
        job_id=uuid.uuid4().hex,
        submitter_site=site1_id,
        site=site2_id,
        job=job,
        plan=Plan({"a": site2_id, "b": site2_id}),
    )
    with PeerJobsClient(site2.external_url, site1.identity) as peer:
        assert {s.step for s in peer.assign(honest)} == {"a", "b"}
