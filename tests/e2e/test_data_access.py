"""Live data access across real sites, with real step containers.

party2's input is marked `live_access` and any site may access it; only
site1 may access party1's compute assets, so steps run at site1 and read the
input from site2 through a per-step channel, never copying it to site1.

See docs/reference.md, "Execution, data access".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.support.db import sqlite_urls
from tests.support.sites import Network, SiteServer, network

from mahiru.client.http import make_http_client, request
from mahiru.client.jobs import JobsClient
from mahiru.errors import Conflict, NotFound, PermissionDenied, Unavailable
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId
from mahiru.model.jobs import JobState, StepState
from mahiru.model.serialization import job_digest, job_from_dict, job_to_dict
from mahiru.model.workflow import Job
from mahiru.runtime import DockerRuntime, ImageConfig
from mahiru.runtime.assets import COMPUTE_BASE_IMAGE, INPUT_ASSET, MINMAX_ASSET, OUTPUT_BASE_ASSET
from mahiru.services.jobs.live_grants import MAX_GRANTS_PER_SITE
from mahiru.storage import BlobStore

pytestmark = pytest.mark.e2e

WAIT = 120.0
INPUT_BYTES = b"[1, 21, 2, 8, 5, 3, 13, 1, 34]"

#: A compute program that reports what its container can reach. Stdlib only.
PROBE = textwrap.dedent(
    """
    import http.client, json, os, socket, sys
    from pathlib import Path

    TARGETS = json.loads(sys.argv[1])
    SOCKET = os.environ["MAHIRU_LIVE_INPUT0_SOCKET"]
    TOKEN = os.environ["MAHIRU_LIVE_INPUT0_TOKEN"]

    class Unix(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(30)
            self.sock.connect(SOCKET)

    def get(method, path):
        connection = Unix("live")
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")

    def reach(host, port):
        try:
            socket.create_connection((host, port), timeout=3).close()
            return "connected"
        except OSError as error:
            return type(error).__name__

    report = {
        "interfaces": sorted(os.listdir("/sys/class/net")),
        "data": get("GET", f"/live/{TOKEN}/files/data.json"),
        "listing": get("GET", f"/live/{TOKEN}/files"),
        "wrong_token": get("GET", "/live/" + "x" * len(TOKEN) + "/files/data.json")[0],
        "other_path": get("GET", "/external/assets")[0],
        "escape": get("GET", f"/live/{TOKEN}/files/../../assets")[0],
        "encoded": get("GET", f"/live/{TOKEN}/files/%2e%2e/%2e%2e/assets")[0],
        "post": get("POST", f"/live/{TOKEN}/files/data.json")[0],
        "reach": {f"{h}:{p}": reach(h, p) for h, p in TARGETS},
    }
    Path("/mahiru/outputs/output0/report.json").write_text(json.dumps(report))
    print(json.dumps(report))
    """
)


def asset_id(site: SiteServer, name: str) -> str:
    """The id of asset `name` stored at `site`."""
    namespace = site.party.namespace
    return f"asset:{namespace}:{name}:{namespace}:{site.id.rsplit(':', 1)[1]}"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A registry and the sites of party1, party2 and party3 (which may run nothing)."""
    root = tmp_path_factory.mktemp("live")
    names = ("party1", "party2", "party3")
    with network(root, sqlite_urls(root), names) as running:
        running.replicate_all()
        yield running


@pytest.fixture(scope="module")
def assets(
    net: Network,
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """The data access assets and rules: the live input at site2, the computes at site1."""
    site1, site2 = net.sites["party1"], net.sites["party2"]
    party1, party2 = site1.party, site2.party
    program = tmp_path_factory.mktemp("probe-src")
    (program / "probe.py").write_text(PROBE)
    targets = [
        ["127.0.0.1", site1.port],
        ["127.0.0.1", site2.port],
        ["172.17.0.1", site2.port],
        ["172.17.0.1", 22],
        ["10.0.0.1", 80],
        ["8.8.8.8", 53],
    ]
    image = container_runtime.build_image(
        COMPUTE_BASE_IMAGE,
        {"/opt/probe": program},
        config=ImageConfig(cmd=("python3", "-u", "/opt/probe/probe.py", json.dumps(targets))),
    )
    probe_archive = tmp_path_factory.mktemp("probe") / "probe.tar"
    try:
        container_runtime.save_image(image, probe_archive)
    finally:
        container_runtime.remove_image(image)
    # A step that runs until cancelled (bounded), so that a job is really running it.
    image = container_runtime.build_image(
        COMPUTE_BASE_IMAGE,
        {"/opt/sleeper": program},
        config=ImageConfig(cmd=("python3", "-c", "import time; time.sleep(600)")),
    )
    sleeper_archive = tmp_path_factory.mktemp("sleeper") / "sleeper.tar"
    try:
        container_runtime.save_image(image, sleeper_archive)
    finally:
        container_runtime.remove_image(image)
    ids = {
        "input": asset_id(site2, "input"),
        "output_base": asset_id(site1, "output_base"),
        "minmax": asset_id(site1, "minmax"),
        "probe": asset_id(site1, "probe"),
        "sleeper": asset_id(site1, "sleeper"),
    }
    results1 = f"asset_collection:{party1.namespace}:results"
    results2 = f"asset_collection:{party2.namespace}:results"
    rules2: list[dict[str, Any]] = [
        {"type": "MayAccess", "site": "*", "asset": ids["input"]},
        {
            "type": "ResultOfDataIn",
            "data": ids["input"],
            "compute": "*",
            "output": "*",
            "collection": results2,
        },
        {"type": "MayAccess", "site": site1.id, "asset": results2},
        {"type": "MayUse", "party": party1.id, "asset": results2, "conditions": "analysis"},
    ]
    rules1: list[dict[str, Any]] = [
        {
            "type": "ResultOfDataIn",
            "data": ids["output_base"],
            "compute": "*",
            "output": "*",
            "collection": results1,
        },
        {"type": "MayAccess", "site": site1.id, "asset": results1},
        {"type": "MayUse", "party": party1.id, "asset": results1, "conditions": "own results"},
    ]
    for name in ("output_base", "minmax", "probe", "sleeper"):
        rules1.append({"type": "MayAccess", "site": site1.id, "asset": ids[name]})
    for name in ("minmax", "probe", "sleeper"):
        rules1.append(
            {
                "type": "ResultOfComputeIn",
                "data": "*",
                "compute": ids[name],
                "output": "*",
                "collection": results1,
            }
        )
    with site1.admin() as admin:
        admin.upload_asset(
            Asset(AssetId.parse(ids["output_base"]), AssetKind.DATA),
            scenario_archives[OUTPUT_BASE_ASSET],
        )
        admin.upload_asset(
            Asset(AssetId.parse(ids["minmax"]), AssetKind.COMPUTE),
            scenario_archives[MINMAX_ASSET],
        )
        admin.upload_asset(Asset(AssetId.parse(ids["probe"]), AssetKind.COMPUTE), probe_archive)
        admin.upload_asset(Asset(AssetId.parse(ids["sleeper"]), AssetKind.COMPUTE), sleeper_archive)
        for rule in rules1:
            admin.add_rule(party1.sign(rule))
    with site2.admin() as admin:
        admin.upload_asset(
            Asset(AssetId.parse(ids["input"]), AssetKind.DATA, {"live_access": True}),
            scenario_archives[INPUT_ASSET],
        )
        for rule in rules2:
            admin.add_rule(party2.sign(rule))
    net.replicate_all()
    return ids


def job(net: Network, ids: dict[str, str], compute: str) -> Job:
    """One step running `compute` on the live input, submitted by party1."""
    return job_from_dict(
        {
            "submitter": net.sites["party1"].party.id,
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": "compute.output0"},
                "steps": [
                    {
                        "name": "compute",
                        "compute_asset": ids[compute],
                        "inputs": {"input0": "input"},
                        "outputs": {"output0": ids["output_base"]},
                    }
                ],
            },
            "inputs": {"input": ids["input"]},
        }
    )


def run(net: Network, ids: dict[str, str], compute: str, dest: Path) -> dict[str, Path]:
    """Run the job at site1, check it ran there and succeeded; its output files by name."""
    site1 = net.sites["party1"]
    with JobsClient(site1.internal_url, site1.party.user, timeout=60) as client:
        view = client.submit(job(net, ids, compute))
        assert view.status.plan is not None
        assert {k: str(v) for k, v in view.status.plan.assignments.items()} == {"compute": site1.id}
        view = client.wait(view.status.job_id, WAIT)
        assert view.status.state is JobState.SUCCEEDED, (view.status.reason, view.steps)
        files = client.download_output(view.status.job_id, "result", dest)
    return {f.name: f for f in files}


def stored_files(root: Path) -> Iterator[Path]:
    """Every regular file under `root`."""
    return (path for path in root.rglob("*") if path.is_file() and not path.is_symlink())


def test_the_step_runs_at_site1_reads_the_input_live_and_gives_1_and_34(
    net: Network, assets: dict[str, str], tmp_path: Path
) -> None:
    """[1, 34] at site1, and no byte of the input is stored there afterwards."""
    files = run(net, assets, "minmax", tmp_path / "result")
    assert json.loads(files["data.json"].read_text()) == [1, 34]
    site1, site2 = net.sites["party1"], net.sites["party2"]
    with site1.admin() as admin:
        stored = {str(record.asset.id) for record in admin.list_assets()}
    assert assets["input"] not in stored
    with site2.admin() as admin:
        digest = admin.get_asset(AssetId.parse(assets["input"])).asset.image_digest
    assert digest is not None
    assert not BlobStore(site1.config.data_dir / "blobs").has(digest)
    for path in stored_files(site1.config.data_dir):
        assert INPUT_BYTES not in path.read_bytes(), path
    # The grant was revoked when the step ended: site2 keeps nothing unpacked for it.
    assert not list(stored_files(site2.config.data_dir / "work" / "live-grants"))


def test_the_step_container_reaches_its_channel_and_nothing_else(
    net: Network, assets: dict[str, str], tmp_path: Path
) -> None:
    """Only the live socket answers, only for its token and GETs of the granted files."""
    files = run(net, assets, "probe", tmp_path / "report")
    report = json.loads(files["report.json"].read_text())
    assert report["interfaces"] == ["lo"]
    assert report["data"][0] == 200 and json.loads(report["data"][1]) == json.loads(INPUT_BYTES)
    digest = hashlib.sha256(report["data"][1].encode()).hexdigest()
    listed = [{"path": "data.json", "size": 31, "sha256": digest}]
    assert json.loads(report["listing"][1])["files"] == listed
    assert report["wrong_token"] == 403
    assert report["other_path"] == 404
    assert report["escape"] == 400
    assert report["encoded"] == 400
    assert report["post"] == 405
    assert set(report["reach"].values()) <= {"OSError", "ConnectionRefusedError", "TimeoutError"}
    assert "connected" not in report["reach"].values()


def grant_body(net: Network, assets: dict[str, str], job_id: str) -> dict[str, Any]:
    """A grant request for the input of the sleeper job `job_id`, submitted at site1."""
    return {
        "job_id": job_id,
        "job": job_to_dict(job(net, assets, "sleeper")),
        "submitter_site": net.sites["party1"].id,
        "step": "compute",
        "input": "input0",
        "asset": assets["input"],
    }


def held_grants(site: SiteServer) -> int:
    """How many live grants `site` holds for others now."""
    assert site.app is not None
    grants = site.app.state.jobs.live
    grants.expire()
    return len(grants._grants)


@contextlib.contextmanager
def running_job(net: Network, assets: dict[str, str]) -> Iterator[str]:
    """The id of a sleeper job whose step runs at site1 (with its own live grant), until
    the block ends; then the job is cancelled and its grant gone."""
    site1, site2 = net.sites["party1"], net.sites["party2"]
    with JobsClient(site1.internal_url, site1.party.user, timeout=60) as client:
        job_id = client.submit(job(net, assets, "sleeper")).status.job_id
        try:
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                steps = client.status(job_id).steps
                if steps and steps[0].state is StepState.RUNNING and held_grants(site2):
                    break
                assert not (steps and steps[0].state.terminal), steps
                time.sleep(0.2)
            else:
                raise AssertionError(f"the sleeper step did not start within {WAIT} s")
            yield job_id
        finally:
            client.cancel(job_id)
            deadline = time.monotonic() + WAIT
            while held_grants(site2) and time.monotonic() < deadline:
                time.sleep(0.2)
    assert held_grants(site2) == 0


def test_site2_grants_only_sites_that_may_run_the_step_and_honours_only_their_tokens(
    net: Network, assets: dict[str, str]
) -> None:
    """A site that may not run the step gets 403; a token works for its site only, until revoked."""
    site1, site2, site3 = (net.sites[p] for p in ("party1", "party2", "party3"))
    url = site2.external_url
    with (
        running_job(net, assets) as job_id,
        make_http_client(url, site1.identity) as as_site1,
        make_http_client(url, site3.identity) as as_site3,
    ):
        body = grant_body(net, assets, job_id)
        with pytest.raises(PermissionDenied, match="may not run step compute"):
            request(as_site3, "POST", "/live/grants", json=body)
        token = request(as_site1, "POST", "/live/grants", json=body).json()["token"]
        data = request(as_site1, "GET", f"/live/{token}/files/data.json").content
        assert json.loads(data) == json.loads(INPUT_BYTES)
        with pytest.raises(NotFound, match="no live access grant"):
            request(as_site3, "GET", f"/live/{token}/files/data.json")
        with pytest.raises(NotFound, match="no live access grant"):
            request(as_site1, "GET", f"/live/{'y' * len(token)}/files/data.json")
        request(as_site1, "DELETE", f"/live/{token}")
        with pytest.raises(NotFound, match="no live access grant"):
            request(as_site1, "GET", f"/live/{token}/files/data.json")
    with site2.admin() as admin:  # both grant decisions are in site2's audit log
        records = admin.audit_records(job=job_id, kind="decision")["records"]
    grants = {(r["actor"], r["outcome"]) for r in records if r["action"] == "live grant"}
    assert {(site1.id, "allowed"), (site3.id, "denied")} <= grants, records


def test_a_live_file_goes_out_only_whole_and_as_recorded_and_each_read_is_a_transfer(
    net: Network, assets: dict[str, str]
) -> None:
    """A live file is sent only with the sha256 recorded when its verified image was unpacked:
    changed, cut, grown or swapped for a link, it never arrives whole; a file that was not
    in the image is not there; every read is a transfer record at the data's site."""
    site1, site2 = net.sites["party1"], net.sites["party2"]
    with (
        running_job(net, assets) as job_id,
        make_http_client(site2.external_url, site1.identity) as as_site1,
    ):
        body = grant_body(net, assets, job_id)
        token = request(as_site1, "POST", "/live/grants", json=body).json()["token"]
        original = request(as_site1, "GET", f"/live/{token}/files/data.json").content
        assert json.loads(original) == json.loads(INPUT_BYTES)
        expected = hashlib.sha256(original).hexdigest()
        listing = request(as_site1, "GET", f"/live/{token}/files").json()["files"]
        assert {"path": "data.json", "size": len(original), "sha256": expected} in listing
        (unpacked,) = (site2.config.data_dir / "work" / "live-grants").glob("*/data.json")
        tampered = {
            "changed": lambda: unpacked.write_bytes(original.replace(b"34", b"99")),
            "cut": lambda: unpacked.write_bytes(original[:-3]),
            "grown": lambda: unpacked.write_bytes(original + b" " * 5000),
            "link": lambda: (unpacked.unlink(), unpacked.symlink_to("/etc/hostname")),
        }
        for how, tamper in tampered.items():
            tamper()
            with pytest.raises(Unavailable):
                request(as_site1, "GET", f"/live/{token}/files/data.json")
            unpacked.unlink()
            unpacked.write_bytes(original)
            assert request(as_site1, "GET", f"/live/{token}/files/data.json").content == (
                original
            ), how
        (unpacked.parent / "planted.json").write_bytes(b"[]")
        with pytest.raises(NotFound, match="no file"):
            request(as_site1, "GET", f"/live/{token}/files/planted.json")
        request(as_site1, "DELETE", f"/live/{token}")
    with site2.admin() as admin:
        records = admin.audit_records(job=job_id, kind="transfer")["records"]
    sent = [
        (r["outcome"], r["details"]["path"], r["details"]["digest"])
        for r in records
        if r["action"] == "send" and r["actor"] == site1.id and "path" in r["details"]
    ]
    whole = ("complete", "data.json", f"sha256:{expected}")
    assert sent.count(whole) >= 1 + len(tampered), sent  # the reads that went out whole
    assert all(entry == whole or entry[0] == "incomplete" for entry in sent), sent


def test_the_demo_runs_the_data_access_scenario(
    container_runtime: DockerRuntime, scenario_archives: dict[str, Path], tmp_path: Path
) -> None:
    """`mahiru demo --scenario data_access` plans the step at site1 and prints [1, 34]."""
    mahiru = str(Path(sys.executable).parent / "mahiru")
    assets_dir = str(next(iter(scenario_archives.values())).parent)
    workdir = str(tmp_path / "work")
    result = subprocess.run(
        [mahiru, "demo", "--scenario", "data_access", "--workdir", workdir, "--assets", assets_dir],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "plan: step compute runs at site:party1.mahiru.example.org:site1" in result.stdout
    assert json.loads((tmp_path / "work" / "result" / "data.json").read_text()) == [1, 34]
    site1_data = tmp_path / "work" / "network" / "site1"
    assert (site1_data / "data").is_dir()
    for path in stored_files(site1_data):
        assert INPUT_BYTES not in path.read_bytes(), path


def test_a_grant_ends_when_it_expires(net: Network, assets: dict[str, str]) -> None:
    """A token past its expiry reads nothing, and its unpacked files are gone."""
    site1, site2 = net.sites["party1"], net.sites["party2"]
    assert site2.app is not None
    grants = site2.app.state.jobs.live
    kept = grants.ttl
    with (
        running_job(net, assets) as job_id,
        make_http_client(site2.external_url, site1.identity) as as_site1,
    ):
        grants.ttl = timedelta(0)
        try:
            answer = request(as_site1, "POST", "/live/grants", json=grant_body(net, assets, job_id))
            token = answer.json()["token"]
            with pytest.raises(NotFound, match="no live access grant"):
                request(as_site1, "GET", f"/live/{token}/files/data.json")
        finally:
            grants.ttl = kept
    assert not list(stored_files(site2.config.data_dir / "work" / "live-grants"))


def test_live_grants_are_bounded_per_site_and_share_one_copy(
    net: Network, assets: dict[str, str]
) -> None:
    """25 grants asked for in a row while a step holds one: 15 more granted, the rest
    refused; one unpacked copy."""
    site1, site2 = net.sites["party1"], net.sites["party2"]
    tokens: list[str] = []
    refused = 0
    with (
        running_job(net, assets) as job_id,
        make_http_client(site2.external_url, site1.identity) as as_site1,
    ):
        try:
            for _ in range(25):
                try:
                    body = grant_body(net, assets, job_id)
                    answer = request(as_site1, "POST", "/live/grants", json=body)
                except Conflict as error:
                    assert "the most one site may hold" in error.message
                    refused += 1
                else:
                    tokens.append(answer.json()["token"])
            assert len(tokens) == MAX_GRANTS_PER_SITE - 1
            assert refused == 25 - (MAX_GRANTS_PER_SITE - 1)
            copies = [p for p in (site2.config.data_dir / "work" / "live-grants").iterdir()]
            assert len(copies) == 1
        finally:
            for token in tokens:
                request(as_site1, "DELETE", f"/live/{token}")
    assert not list(stored_files(site2.config.data_dir / "work" / "live-grants"))


def test_a_grant_needs_a_job_its_submitters_site_says_runs_the_step_at_the_asker(
    net: Network, assets: dict[str, str]
) -> None:
    """Made-up, altered, foreign and finished jobs get no grant, each with its reason; only
    a site storing a step's input hears, from its submitter's site, which steps reading it
    still run, and where."""
    site1, site2, site3 = (net.sites[p] for p in ("party1", "party2", "party3"))
    with (
        make_http_client(site2.external_url, site1.identity) as as_site1,
        make_http_client(site1.external_url, site2.identity) as site2_asks_site1,
        make_http_client(site1.external_url, site3.identity) as site3_asks_site1,
    ):
        with running_job(net, assets) as job_id:
            body = grant_body(net, assets, job_id)
            attempts = {
                "does not confirm": {**body, "job_id": "0" * 32},
                "does not confirm step": {
                    **body,
                    "job": job_to_dict(job(net, assets, "minmax")),
                },
                "does not belong to the job's submitter": {**body, "submitter_site": site2.id},
            }
            for reason, attempt in attempts.items():
                with pytest.raises(PermissionDenied, match=reason):
                    request(as_site1, "POST", "/live/grants", json=attempt)
            # The submitter's site tells the data's site where the step reading it runs.
            digest = {"job_digest": job_digest(job(net, assets, "sleeper"))}
            answer = request(
                site2_asks_site1, "GET", f"/jobs/{job_id}/readers", params=digest
            ).json()
            assert answer == {"job_id": job_id, "readers": [{"step": "compute", "site": site1.id}]}
            # A site storing none of its inputs hears what it hears for a made-up job.
            with pytest.raises(NotFound) as unknown_job:
                request(site3_asks_site1, "GET", f"/jobs/{'0' * 32}/readers", params=digest)
            with pytest.raises(NotFound) as not_its_data:
                request(site3_asks_site1, "GET", f"/jobs/{job_id}/readers", params=digest)
            assert not_its_data.value.message == unknown_job.value.message.replace("0" * 32, job_id)
        # Cancelled now: the submitter's site lists no running reader.
        with pytest.raises(PermissionDenied, match=r"or it has finished"):
            request(as_site1, "POST", "/live/grants", json=body)
    assert held_grants(site2) == 0


def test_a_wait_that_times_out_says_so_and_exits_5(
    net: Network, assets: dict[str, str], tmp_path: Path
) -> None:
    """`jobs submit --wait --timeout` and `jobs wait` on a job that goes on: exit 5 with the
    job id and the timeout; after cancelling, `jobs wait` exits 1 and `jobs result` refuses
    without leaving a folder behind."""
    site1, site2 = net.sites["party1"], net.sites["party2"]
    user = site1.party.user
    mahiru = str(Path(sys.executable).parent / "mahiru")
    connection = ["--site", site1.internal_url, "--cert", str(user.cert), "--key", str(user.key)]
    connection += ["--ca", str(user.ca)]
    job_file = tmp_path / "sleeper.yaml"
    job_file.write_text(json.dumps(job_to_dict(job(net, assets, "sleeper"))))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [mahiru, *args, *connection], capture_output=True, text=True, timeout=300
        )

    submitted = cli("jobs", "submit", str(job_file), "--wait", "--timeout", "1")
    assert submitted.returncode == 5, submitted.stderr
    [job_id] = [w for w in submitted.stderr.split() if len(w) == 32 and w.isalnum()][:1]
    assert f"submitted job {job_id}" in submitted.stderr
    assert f"job {job_id} did not finish within 1 s" in submitted.stderr
    waited = cli("jobs", "wait", job_id, "--timeout", "0.5")
    assert waited.returncode == 5 and "did not finish within 0.5 s" in waited.stderr
    cancelled = cli("jobs", "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    # Job ids may be shortened to a unique prefix.
    assert cli("jobs", "wait", job_id[:6], "--timeout", "60").returncode == 1
    logs = cli("jobs", "logs", job_id[:8])
    assert logs.returncode == 0 and f"== compute at {site1.id}: cancelled" in logs.stdout
    no_step = cli("jobs", "logs", job_id, "nosuch")
    assert no_step.returncode == 2 and "has no step 'nosuch'" in no_step.stderr
    out = tmp_path / "result"
    result = cli("jobs", "result", job_id, "--output-dir", str(out))
    assert result.returncode == 1 and "only a succeeded job has results" in result.stderr
    assert not out.exists()
    deadline = time.monotonic() + WAIT
    while held_grants(site2) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert held_grants(site2) == 0
