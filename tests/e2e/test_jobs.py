"""Jobs across real sites over mutual TLS, with real step containers (reference: Execution)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from tests.support.db import sqlite_urls
from tests.support.jobs import Scenario, asset_id, compute_to_data
from tests.support.leaks import LEAK_MARKER
from tests.support.metrics import value
from tests.support.sites import Network, network
from tests.support.waiting import wait_until

from mahiru.cli.main import cli
from mahiru.client.jobs import JobsClient, JobView, PeerJobsClient
from mahiru.data_archives import extract_data_files
from mahiru.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated, Unavailable
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.digests import normalise_digest
from mahiru.model.identifiers import AssetId, ResultId
from mahiru.model.jobs import JobState, StepState
from mahiru.model.serialization import job_from_dict, job_to_dict
from mahiru.policy.signing import sign_revocation
from mahiru.runtime import LABEL_JOB, DockerRuntime
from mahiru.runtime.assets import INPUT_ASSET, MINMAX_ASSET, OUTPUT_BASE_ASSET
from mahiru.services.images import receive_image
from mahiru.storage import BlobStore

pytestmark = pytest.mark.e2e

WAIT = 120.0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A registry and the sites of party1, party2 and party3 (which no rule mentions)."""
    root = tmp_path_factory.mktemp("jobs")
    names = ("party1", "party2", "party3")
    with network(root, sqlite_urls(root), names) as running:
        running.replicate_all()
        yield running


@pytest.fixture(scope="module")
def scenario(
    net: Network,
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    probe_archive: Callable[[str], Path],
) -> Scenario:
    """The compute-to-data assets and rules, plus failing and sleeping compute assets."""
    computes = {"minmax": scenario_archives[MINMAX_ASSET]}
    for mode in ("fail", "hang", "leak deep", "leak bytes"):
        computes[mode.replace(" ", "_")] = probe_archive(mode)
    return compute_to_data(
        net, scenario_archives[INPUT_ASSET], scenario_archives[OUTPUT_BASE_ASSET], computes
    )


def user(scenario: Scenario) -> JobsClient:
    """The jobs API of site1, as a user of party1."""
    return JobsClient(scenario.site1.internal_url, scenario.site1.party.user, timeout=60)


def test_compute_to_data_runs_at_the_data_and_delivers_1_and_34(
    scenario: Scenario, container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    """The step runs at site2 (only it may read the input); site1 gets [1, 34]."""
    with user(scenario) as client:
        started = time.monotonic()
        submitted = client.submit(scenario.job())
        job_id = submitted.status.job_id
        assert submitted.status.plan is not None
        assert {k: str(v) for k, v in submitted.status.plan.assignments.items()} == {
            "compute": scenario.site2.id
        }
        view = client.wait(job_id, WAIT)
        latency = time.monotonic() - started
        assert view.status.state is JobState.SUCCEEDED, view.to_json()
        print(f"compute-to-data job latency: {latency:.2f} s")
        (step,) = view.steps
        assert step.state is StepState.SUCCEEDED
        assert step.started_at is not None and step.finished_at is not None
        assert step.exit_code == 0
        files = client.download_output(job_id, "result", tmp_path / "out")
        assert [f.name for f in files] == ["data.json"]
        assert json.loads(files[0].read_text()) == [1, 34]
        assert [s.job_id for s in client.list()] == [job_id]
    assert not container_runtime.list_step_containers({LABEL_JOB: job_id})
    for site in (scenario.site1, scenario.site2):  # no per-job work folders left behind
        assert not (site.config.data_dir / "work" / job_id).exists()


def test_a_job_denied_by_policy_is_explained_and_runs_nothing(scenario: Scenario) -> None:
    """No rule lets any site read the secret: 403 with the planner's explanation."""
    secret = asset_id(scenario.site2, "secret")
    with user(scenario) as client:
        before = client.list()
        with pytest.raises(PermissionDenied) as denied:
            client.submit(scenario.job(data=secret))
        assert "compute" in json.dumps(denied.value.details)
        assert secret in json.dumps(denied.value.details) or secret in denied.value.message
        assert client.list() == before


def test_a_failing_step_fails_the_job_with_exit_code_and_log_tail(scenario: Scenario) -> None:
    """The probe exits with 3: the job fails, saying so, with the end of its log."""
    with user(scenario) as client:
        job_id = client.submit(scenario.job("fail")).status.job_id
        view = client.wait(job_id, WAIT)
    assert view.status.state is JobState.FAILED
    (step,) = view.steps
    assert view.status.reason == "step compute failed"
    assert step.state is StepState.FAILED
    assert step.reason is not None and "code 3" in step.reason
    assert step.exit_code == 3
    assert step.log_tail is not None and "failing on purpose" in step.log_tail


def test_a_step_log_reaches_the_submitter_only_where_it_may_use_the_outputs(
    scenario: Scenario, scenario_archives: dict[str, Path], tmp_path: Path
) -> None:
    """Step a fails on party2's private data (party1 may not use its output): its log, reason
    and exit code stay at site2, and party1 sees its state and why the rest is withheld;
    the whole job would be allowed (b's output is usable)."""
    site1, site2 = scenario.site1, scenario.site2
    secret = asset_id(site2, "log_secret")
    private = f"asset_collection:{site2.party.namespace}:private"
    results1 = f"asset_collection:{site1.party.namespace}:results"
    results2 = f"asset_collection:{site2.party.namespace}:results"
    with site2.admin() as admin:
        admin.upload_asset(
            Asset(AssetId.parse(secret), AssetKind.DATA), scenario_archives[INPUT_ASSET]
        )
        for rule in (
            {"type": "MayAccess", "site": site2.id, "asset": secret},
            {"type": "MayAccess", "site": site2.id, "asset": private},
            {"type": "ResultOfDataIn", "data": secret, "compute": "*", "output": "*",
             "collection": private},
            {"type": "ResultOfDataIn", "data": private, "compute": "*", "output": "*",
             "collection": results2},
        ):  # fmt: skip
            admin.add_rule(site2.party.sign(rule))
    own = {"data": results1, "compute": "*", "output": "*", "collection": results1}
    with site1.admin() as admin:
        admin.add_rule(site1.party.sign({"type": "ResultOfDataIn", **own}))
    scenario.site1.replicate()
    scenario.site2.replicate()

    def step(name: str, compute: str, source: str) -> dict[str, Any]:
        compute_asset = scenario.computes[compute]
        return {"name": name, "compute_asset": compute_asset, "inputs": {"input0": source},
                "outputs": {"output0": None}}  # fmt: skip

    job = job_from_dict(
        {
            "submitter": scenario.party1,
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": "b.output0"},
                "steps": [step("a", "fail", "input"), step("b", "minmax", "a.output0")],
            },
            "inputs": {"input": secret},
        }
    )
    with user(scenario) as client:
        submitted = client.submit(job)
        assert submitted.status.plan is not None
        assert {str(s) for s in submitted.status.plan.assignments.values()} == {site2.id}
        view = client.wait(submitted.status.job_id, WAIT)
    assert view.status.state is JobState.FAILED
    a = next(s for s in view.steps if s.step == "a")
    # The reason and exit code are the step's output as much as its log is.
    assert a.state is StepState.FAILED and a.exit_code is None
    assert a.reason is not None and "code 3" not in a.reason
    assert "withheld" in a.reason and "may not use a.output0" in a.reason
    assert a.log_tail is not None
    assert "failing on purpose" not in a.log_tail and "line 100" not in a.log_tail
    assert "log withheld" in a.log_tail and "may not use a.output0" in a.log_tail
    assert view.status.reason == "step a failed"  # the job's reason carries none of it either
    # The output stays at site2, where its administrator can read it.
    assert site2.app is not None
    held = site2.app.state.site.storage.repositories.jobs.step_status(submitted.status.job_id, "a")
    assert held.log_tail is not None and "failing on purpose" in held.log_tail
    assert held.exit_code == 3 and held.reason is not None and "code 3" in held.reason


@pytest.mark.parametrize("variant", ["deep", "bytes"])
def test_no_text_a_step_chose_reaches_the_submitter_in_a_reason(
    scenario: Scenario, variant: str
) -> None:
    """A step leaving a link named with ~4 KiB of its data (or with non-UTF-8 bytes) fails
    with a fixed reason: neither the step's nor the job's reason holds any of the name."""
    with user(scenario) as client:
        job_id = client.submit(scenario.job(f"leak_{variant}")).status.job_id
        view = client.wait(job_id, WAIT)
    assert view.status.state is JobState.FAILED, view.to_json()
    (step,) = view.steps
    assert step.reason is not None and "holds 1 entries that are not regular" in step.reason
    assert view.status.reason == "step compute failed"
    shown = view.to_json()
    assert LEAK_MARKER not in shown and "SECRET" not in shown


def test_users_of_another_party_cannot_see_or_cancel_a_job(scenario: Scenario) -> None:
    """party2's users are refused at site1, and site2 does not show them party1's job."""
    with user(scenario) as client:
        job_id = client.submit(scenario.job()).status.job_id
        client.wait(job_id, WAIT)
    # site1 does not trust party2's user CA: the TLS handshake already fails.
    with JobsClient(scenario.site1.internal_url, scenario.site2.party.user) as other:
        with pytest.raises((Unauthenticated, Unavailable)):
            other.status(job_id)
        with pytest.raises((Unauthenticated, Unavailable)):
            other.cancel(job_id)
    with JobsClient(scenario.site2.internal_url, scenario.site2.party.user) as other:
        with pytest.raises(NotFound):
            other.status(job_id)
        with pytest.raises(NotFound):
            other.cancel(job_id)
        assert other.list() == []
    with user(scenario) as client:
        assert client.status(job_id).status.state is JobState.SUCCEEDED


def _step_state(view: JobView) -> StepState:
    (step,) = view.steps
    return step.state


def test_cancelling_a_running_step_stops_its_container(
    scenario: Scenario, container_runtime: DockerRuntime
) -> None:
    """The sleeping step is running at site2; cancel at site1 stops its container there."""
    with user(scenario) as client:
        job_id = client.submit(scenario.job("hang")).status.job_id
        deadline = time.monotonic() + WAIT
        while not container_runtime.list_step_containers({LABEL_JOB: job_id}):
            assert time.monotonic() < deadline, client.status(job_id).to_json()
            time.sleep(0.2)
        view = client.cancel(job_id)
        assert view.status.state is JobState.CANCELLED
        deadline = time.monotonic() + 30
        while container_runtime.list_step_containers({LABEL_JOB: job_id}):
            assert time.monotonic() < deadline, "the step container was not stopped"
            time.sleep(0.2)
    remote = scenario.site2.app.state.site.storage.repositories.jobs.steps_of(job_id)  # type: ignore[union-attr]
    assert [s.state for s in remote] == [StepState.CANCELLED]


def _cli(scenario: Scenario, *args: str) -> Result:
    identity = scenario.site1.party.user
    env = {
        "MAHIRU_SITE_URL": scenario.site1.internal_url,
        "MAHIRU_CERT": str(identity.cert),
        "MAHIRU_KEY": str(identity.key),
        "MAHIRU_CA": str(identity.ca),
    }
    return CliRunner().invoke(cli, ["jobs", *args], env=env, catch_exceptions=False)


def test_the_cli_submits_waits_and_writes_the_result(scenario: Scenario, tmp_path: Path) -> None:
    """`mahiru jobs submit --wait`, `status`, `list` and `result --output-dir`; denied is 3."""
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump(job_to_dict(scenario.job())))
    submitted = _cli(scenario, "submit", str(job_file), "--wait", "--json")
    assert submitted.exit_code == 0, submitted.output
    job_id = json.loads(submitted.output)["job"]["job_id"]
    status = _cli(scenario, "status", job_id)
    assert status.exit_code == 0 and "succeeded" in status.output
    assert job_id in _cli(scenario, "list").output
    result = _cli(scenario, "result", job_id, "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "result" / "data.json").read_text()) == [1, 34]
    provenance = _cli(scenario, "provenance", job_id[:8])
    assert provenance.exit_code == 0, provenance.output
    document = json.loads(provenance.output)
    result_id = str(next(iter(scenario.job().result_ids().values())))
    assert document["entity"][f"mahiru:{result_id}"]["mahiru:workflowOutput"] == "result"
    ran = document["wasAssociatedWith"].values()
    assert {
        "prov:activity": f"mahiru:step:{job_id}:compute",
        "prov:agent": f"mahiru:{scenario.site2.id}",
    } in ran
    assert f"mahiru:{scenario.site2.party.id}" in document["agent"]
    dot = _cli(scenario, "provenance", job_id, "--format", "dot")
    assert dot.exit_code == 0 and dot.output.startswith("digraph provenance {")
    assert f'"mahiru:{result_id}"' in dot.output
    assert _cli(scenario, "provenance", "nosuchjob").exit_code == 2

    denied_file = tmp_path / "denied.yaml"
    denied = scenario.job(data=asset_id(scenario.site2, "secret"))
    denied_file.write_text(yaml.safe_dump(job_to_dict(denied)))
    refused = _cli(scenario, "submit", str(denied_file), "--json")
    assert refused.exit_code == 3
    assert json.loads(refused.output)["error"]["type"] == "PermissionDenied"


def test_a_result_is_served_only_to_sites_its_policy_admits(
    net: Network, scenario: Scenario, tmp_path: Path
) -> None:
    """site2 serves the result to site1 (admitted by the rules) but not to site3."""
    with user(scenario) as client:
        job_id = client.submit(scenario.job()).status.job_id
        view = client.wait(job_id, WAIT)
    result = view.status.outputs()["result"]
    site3 = net.sites["party3"]
    blobs = BlobStore(tmp_path / "blobs")
    with PeerJobsClient(scenario.site2.external_url, scenario.site1.identity) as peer:
        fetched = receive_image(blobs, peer.fetch_result(result), str(result))
        assert fetched.size > 0
        peer_digest = fetched.digest
    never_made = ResultId("f" * 64)
    with PeerJobsClient(scenario.site2.external_url, site3.identity) as peer:
        # Refused, and told exactly what it would be told of a result never computed here.
        with pytest.raises(NotFound) as denied:
            receive_image(blobs, peer.fetch_result(result), str(result))
        with pytest.raises(NotFound) as unknown:
            receive_image(blobs, peer.fetch_result(never_made), str(never_made))
        assert denied.value.message == f"result {result} is not known here"
        assert unknown.value.message == f"result {never_made} is not known here"
        assert list(blobs.digests()) == [peer_digest]
        with pytest.raises(NotFound):
            peer.step_statuses(job_id)
        with pytest.raises(NotFound):
            peer.cancel(job_id)
    # The site that refused says why in its own audit log (never to the asker).
    with scenario.site2.admin() as admin:
        records = admin.audit_records(asset=str(result), kind="decision")["records"]
    refused = [r for r in records if r["actor"] == site3.id and r["action"] == "release to site"]
    assert refused and refused[0]["outcome"] == "denied"
    assert f"{site3.id} may not" in refused[0]["details"]["explanation"]


def _tar(entries: list[tuple[str, bytes | None]]) -> bytes:
    """A tar with files (bytes) and directories (None)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _image_archive(path: Path, layers: list[list[tuple[str, bytes | None]]]) -> Path:
    names = [f"layer{k}/layer.tar" for k in range(len(layers))]
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [], "Layers": names}]).encode()
    path.write_bytes(
        _tar(
            [("manifest.json", manifest), ("config.json", b"{}")]
            + [(name, _tar(layer)) for name, layer in zip(names, layers, strict=True)]
        )
    )
    return path


def test_data_files_are_read_from_a_saved_image_without_an_engine(tmp_path: Path) -> None:
    """Layers apply in order, whiteouts and opaque folders hide lower files, /etc is ignored."""
    archive = _image_archive(
        tmp_path / "image.tar",
        [
            [("etc/passwd", b"root"), ("data", None), ("data/a.txt", b"old"), ("data/gone", b"x")],
            [("data/sub", None), ("data/sub/b.txt", b"b"), ("data/sub/c.txt", b"c")],
            [("data/a.txt", b"new"), ("data/.wh.gone", b""), ("data/sub/.wh..wh..opq", b"")],
            [("data/sub/d.txt", b"d")],
        ],
    )
    files = extract_data_files(archive, tmp_path / "out")
    assert {str(f.relative_to(tmp_path / "out")): f.read_text() for f in files} == {
        "a.txt": "new",
        "sub/d.txt": "d",
    }


@pytest.mark.parametrize("name", ["/data/abs.txt", "data/../escape.txt"])
def test_unsafe_names_in_a_saved_image_are_refused(tmp_path: Path, name: str) -> None:
    """Absolute names and '..' in a layer: InvalidInput, nothing written outside."""
    archive = _image_archive(tmp_path / "image.tar", [[(name, b"x")]])
    with pytest.raises(InvalidInput):
        extract_data_files(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def _wait_for_container(runtime: DockerRuntime, job_id: str, present: bool) -> None:
    deadline = time.monotonic() + WAIT
    while bool(runtime.list_step_containers({LABEL_JOB: job_id})) != present:
        assert time.monotonic() < deadline, f"step container present: {not present}"
        time.sleep(0.2)


def test_a_site_restarted_while_its_step_runs_runs_it_again(
    scenario: Scenario, container_runtime: DockerRuntime
) -> None:
    """site2 stops its container at shutdown, and runs the step again once back."""
    site2 = scenario.site2
    with user(scenario) as client:
        job_id = client.submit(scenario.job("hang")).status.job_id
        _wait_for_container(container_runtime, job_id, True)
        site2.stop()
        _wait_for_container(container_runtime, job_id, False)
        # Not failed (site1 may or may not have heard that the step started).
        assert client.status(job_id).status.state in (JobState.PLANNED, JobState.RUNNING)
        site2.start()
        _wait_for_container(container_runtime, job_id, True)
        assert client.cancel(job_id).status.state is JobState.CANCELLED
        _wait_for_container(container_runtime, job_id, False)


def test_the_running_site_rechecks_the_step_against_its_own_policy(
    net: Network, scenario: Scenario, scenario_archives: dict[str, Path]
) -> None:
    """site2 revoked its grant, site1 has not heard yet: site1 plans, site2 refuses the step."""
    site2, party2 = scenario.site2, scenario.site2.party
    data = asset_id(site2, "input_revoked")
    grant = party2.sign({"type": "MayAccess", "site": site2.id, "asset": data})
    results = {
        "type": "ResultOfDataIn",
        "data": data,
        "compute": "*",
        "output": "*",
        "collection": f"asset_collection:{party2.namespace}:results",
    }
    with site2.admin() as admin:
        admin.upload_asset(
            Asset(AssetId.parse(data), AssetKind.DATA), scenario_archives[INPUT_ASSET]
        )
        admin.add_rule(grant)
        admin.add_rule(party2.sign(results))
    net.replicate_all()
    with site2.admin() as admin:
        admin.revoke(sign_revocation(grant.rule, party2.main_key))
    with user(scenario) as client:
        job_id = client.submit(scenario.job(data=data)).status.job_id
        client.wait(job_id, WAIT)

        def ended() -> JobView | None:
            view = client.status(job_id)
            return view if all(s.state.terminal for s in view.steps) else None

        # The job's end is stored a moment before its step's: wait for both.
        view = wait_until(ended, 30, "the step to end with its job")
    # site2 refuses the hand-over itself (it checks the whole job as planned), so the
    # step never starts and the job fails with site2's reason.
    assert view.status.state is JobState.FAILED
    (step,) = view.steps
    assert step.state in (StepState.FAILED, StepState.CANCELLED) and step.started_at is None
    reason = view.status.reason
    assert reason is not None and "policy does not permit" in reason, reason
    assert data in reason
    with site2.admin() as admin:
        records = admin.audit_records(job=job_id, kind="decision")["records"]
    denied = [r for r in records if r["action"] == "receive steps"]
    assert [r["outcome"] for r in denied] == ["denied"], records
    assert data in denied[0]["details"]["explanation"]


def test_a_compute_image_the_engine_has_is_downloaded_only_once(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """site2 asks site1 for the compute asset every time, but downloads it only when needed.

    Once its engine has the image, site2 only fetches the asset's metadata (site1
    checks the policy on that request too); when the engine no longer has the
    image, site2 downloads it again.
    """
    app = scenario.site2.app
    assert app is not None
    images = app.state.site.jobs.ports.images
    compute = AssetId.parse(scenario.computes["minmax"])
    asked: list[str] = []
    downloaded: list[str] = []
    metadata, fetch_image = PeerJobsClient.get_asset, PeerJobsClient.fetch_image

    def asking(self: PeerJobsClient, asset: Any) -> Any:
        asked.append(str(asset))
        return metadata(self, asset)

    def downloading(self: PeerJobsClient, asset: Any, *args: Any, **kwargs: Any) -> Any:
        downloaded.append(str(asset))
        return fetch_image(self, asset, *args, **kwargs)

    monkeypatch.setattr(PeerJobsClient, "get_asset", asking)
    monkeypatch.setattr(PeerJobsClient, "fetch_image", downloading)

    def run() -> None:
        """Run the job, then delete its result everywhere so the next run computes it again."""
        with user(scenario) as client:
            view = client.wait(client.submit(scenario.job()).status.job_id, WAIT)
        assert view.status.state is JobState.SUCCEEDED, view.to_json()
        result = view.status.outputs()["result"]
        for site in (scenario.site1, scenario.site2):
            with site.admin() as admin, contextlib.suppress(NotFound):
                admin.delete_asset(result)

    run()  # an earlier test may have left the result, which this run reuses
    run()  # the engine has the image from now on (if it had not before)
    with scenario.site1.admin() as admin:
        announced = admin.get_asset(compute).asset.image_digest
    assert announced is not None
    digest = normalise_digest(announced)
    assert images.image(digest) is not None
    asked.clear()
    downloaded.clear()
    run()
    assert asked.count(str(compute)) == 1
    assert str(compute) not in downloaded
    # As if someone removed the image from the engine (until it is loaded again):
    # site2 must download it again.
    lost = {images.image(digest)}
    has_image, load_image = DockerRuntime.has_image, DockerRuntime.load_image

    def forgetful(self: DockerRuntime, image: str) -> bool:
        return image not in lost and has_image(self, image)

    def reloading(self: DockerRuntime, archive: Path) -> str:
        image = load_image(self, archive)
        lost.discard(image)
        return image

    monkeypatch.setattr(DockerRuntime, "has_image", forgetful)
    monkeypatch.setattr(DockerRuntime, "load_image", reloading)
    asked.clear()
    run()
    assert asked.count(str(compute)) == 1
    assert downloaded.count(str(compute)) == 1
    assert not lost  # loaded into the engine again, from the archive just downloaded
    assert images.image(digest) is not None


def test_a_damaged_result_is_computed_again_never_reused(
    scenario: Scenario, tmp_path: Path
) -> None:
    """The result's image damaged at both sites: the same job again recomputes (not
    `reused`), sets the damaged copies aside, and delivers [1, 34]."""
    job = scenario.job(data=None)
    with user(scenario) as client:
        first = client.wait(client.submit(job).status.job_id, WAIT)
        assert first.status.state is JobState.SUCCEEDED, first.to_json()
        result = first.status.outputs()["result"]
        damaged = []
        for site in (scenario.site1, scenario.site2):
            assert site.app is not None
            digest = site.app.state.site.storage.repositories.assets.get(result).asset.image_digest
            path = BlobStore(site.config.data_dir / "blobs").path(digest)
            path.chmod(0o644)
            with path.open("r+b") as file:
                file.seek(path.stat().st_size // 2)
                file.write(b"\x00\xff\x00\xff")
            damaged.append(site.config.data_dir / "blobs" / "damaged" / digest)
        again = client.wait(client.submit(job).status.job_id, WAIT)
        assert again.status.state is JobState.SUCCEEDED, again.to_json()
        (step,) = again.steps
        assert step.state is StepState.SUCCEEDED  # computed again, not reused
        (data,) = client.download_output(again.status.job_id, "result", tmp_path / "out")
        assert json.loads(data.read_text()) == [1, 34]
    assert all(path.is_file() for path in damaged)  # set aside, for the operator


def test_a_stored_result_whose_receipt_does_not_verify_is_never_reused(
    scenario: Scenario,
) -> None:
    """A poisoned cache: the stored result's receipt re-signed by nobody (or missing). The
    same job again computes it afresh instead of reusing it, and stores a sound receipt."""
    job = scenario.job()
    with user(scenario) as client:
        first = client.wait(client.submit(job).status.job_id, WAIT)
        assert first.status.state is JobState.SUCCEEDED, first.to_json()
        result = first.status.outputs()["result"]
        for site, poison in ((scenario.site2, "forged"), (scenario.site1, "missing")):
            assert site.app is not None
            records = site.app.state.site.storage.repositories.assets
            record = records.get(result)
            metadata = dict(record.asset.metadata)
            if poison == "forged":
                receipts = [dict(r) for r in metadata["receipts"]]
                receipts[0]["signature"] = base64.b64encode(b"\x30" * 70).decode()
                metadata["receipts"] = receipts
            else:
                metadata.pop("receipts")
            records.delete(result)
            records.add(replace(record.asset, metadata=metadata), size=record.size)
        again = client.wait(client.submit(job).status.job_id, WAIT)
        assert again.status.state is JobState.SUCCEEDED, again.to_json()
        (step,) = again.steps
        assert step.state is StepState.SUCCEEDED  # computed again, not reused
    assert scenario.site2.app is not None
    assert scenario.site2.app.state.site.jobs.ports.results.verified_chain(result) is not None


def test_the_metrics_follow_a_job_at_both_sites(scenario: Scenario, tmp_path: Path) -> None:
    """A job computed anew moves the job, step, duration, decision and transfer metrics."""
    result = str(next(iter(scenario.job().result_ids().values())))
    for site in (scenario.site1, scenario.site2):  # computed anew, not reused
        with site.admin() as admin, contextlib.suppress(NotFound):
            admin.delete_asset(ResultId.parse(result))

    def scrape() -> tuple[str, str]:
        with scenario.site1.admin() as one, scenario.site2.admin() as two:
            return one.metrics(), two.metrics()

    before1, before2 = scrape()
    with user(scenario) as client:
        view = client.wait(client.submit(scenario.job()).status.job_id, WAIT)
        assert view.status.state is JobState.SUCCEEDED, view.to_json()
        client.download_output(view.status.job_id, "result", tmp_path / "out")
    after1, after2 = scrape()

    def grew(name: str, before: str, after: str, by: float = 1, **labels: str) -> None:
        assert value(after, name, **labels) >= value(before, name, **labels) + by, (name, labels)

    grew("mahiru_jobs", before1, after1, state="succeeded")
    grew("mahiru_steps", before2, after2, site=scenario.site2.id, state="succeeded")
    grew("mahiru_step_duration_seconds_count", before2, after2)
    grew("mahiru_policy_decisions_total", before2, after2, action="run", outcome="allowed")
    grew("mahiru_image_bytes_received_total", before2, after2, by=1000)  # the result, stored
    grew("mahiru_image_bytes_received_total", before1, after1, by=1000)  # and collected
    grew("mahiru_image_bytes_sent_total", before2, after2, by=1000, api="external")
    grew("mahiru_image_bytes_sent_total", before1, after1, by=1000, api="internal")


def _audit(site: Any, **filters: Any) -> list[dict[str, Any]]:
    with site.admin() as admin:
        records: list[dict[str, Any]] = admin.audit_records(limit=500, **filters)["records"]
    return records


def _has(records: list[dict[str, Any]], **expected: Any) -> dict[str, Any]:
    found = [r for r in records if all(r.get(k) == v for k, v in expected.items())]
    assert found, (expected, [(r["kind"], r["action"], r["outcome"], r["actor"]) for r in records])
    return found[0]


def test_every_decision_and_transfer_of_a_job_is_audited_at_both_sites(
    scenario: Scenario, tmp_path: Path
) -> None:
    """Plan, hand-over, run, result release and delivery, transfers and states, at each site;
    the user's own acts (submitting, downloading the output) name the user."""
    result = str(next(iter(scenario.job().result_ids().values())))
    for site in (scenario.site1, scenario.site2):  # computed anew, not reused
        with site.admin() as admin, contextlib.suppress(NotFound):
            admin.delete_asset(ResultId.parse(result))
    with user(scenario) as client:
        job_id = client.submit(scenario.job()).status.job_id
        view = client.wait(job_id, WAIT)
        assert view.status.state is JobState.SUCCEEDED, view.to_json()
        client.download_output(job_id, "result", tmp_path / "out")
    site1, site2 = scenario.site1, scenario.site2
    party = site1.party.id
    at_submitter = list(reversed(_audit(site1, job=job_id)))  # oldest first
    at_runner = list(reversed(_audit(site2, job=job_id)))
    assert all(r["party"] == party for r in at_submitter + at_runner)

    plan = _has(at_submitter, kind="decision", action="plan job", outcome="allowed")
    assert f"compute at {site2.id}" in plan["details"]["explanation"]
    person = f"user@{party}"
    assert plan["user"] == person
    states = [r["outcome"] for r in at_submitter if r["kind"] == "job"]
    assert states == ["planned", "running", "succeeded"], states
    received = _has(at_submitter, kind="transfer", action="receive", asset=result)
    assert received["details"]["from"] == site2.id and received["details"]["bytes"] > 1000
    _has(at_submitter, kind="decision", action="release to party", outcome="allowed", user=person)
    _has(at_submitter, kind="transfer", action="send", actor=party, outcome="complete", user=person)
    _has(at_submitter, kind="job", outcome="planned", user=person)
    # What the sites do by themselves names no user; the other site never learns who asked.
    assert all(r["user"] is None for r in at_runner)
    assert all(r["user"] is None for r in at_submitter if r["outcome"] in ("running", "succeeded"))

    _has(at_runner, kind="decision", action="receive steps", outcome="allowed", actor=site1.id)
    run = _has(at_runner, kind="decision", action="run step", outcome="allowed", step="compute")
    assert run["details"]["rules"] and "may" in run["details"]["explanation"]
    steps = [r["outcome"] for r in at_runner if r["kind"] == "step"]
    assert steps[0] == "waiting" and steps[-1] == "succeeded" and "running" in steps, steps
    # A site fetching a result names the result, not the job: the release is recorded
    # under the job of the result's provenance (the first that computed it), so look
    # these up by the result, newest first.
    about_result = _audit(site2, asset=result)
    release = _has(about_result, kind="decision", action="release to site")
    assert (release["outcome"], release["actor"]) == ("allowed", site1.id)
    sent = _has(about_result, kind="transfer", action="send")
    assert sent["details"]["digest"] == received["details"]["digest"]
    assert sent["details"]["bytes"] == received["details"]["bytes"]
    for site in (site1, site2):
        with site.admin() as admin:
            assert admin.verify_audit()["intact"]


def test_refused_plans_and_refused_steps_are_audited(scenario: Scenario) -> None:
    """A job no plan permits, and a step its site refuses, each leave a denied decision."""
    secret = asset_id(scenario.site2, "secret")
    with user(scenario) as client, pytest.raises(PermissionDenied):
        client.submit(scenario.job(data=secret))
    refused = [
        r
        for r in _audit(scenario.site1, kind="decision")
        if r["action"] == "plan job" and r["outcome"] == "denied"
    ]
    assert refused and secret in refused[0]["details"]["explanation"], refused[0]["details"]
    assert refused[0]["party"] == scenario.site1.party.id and refused[0]["job"] is None
    assert refused[0]["user"] == f"user@{scenario.site1.party.id}"  # who asked
