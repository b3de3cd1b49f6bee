"""The scenarios' client scripts, run as an administrator would run them (reference: Execution).

For each scenario (compute_to_data, data_access) a registry and site1/site2
run as `mahiru serve` processes; the two init_site.py scripts set them up with
the real scenario assets, and client1/submit_job.py runs the job and checks
its result.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mahiru import pki
from mahiru.client.site import SiteClient
from mahiru.demo.network import LocalNetwork
from mahiru.model.identifiers import SiteId
from mahiru.runtime import LABEL_JOB, DockerRuntime
from mahiru.scenarios import compute_to_data as scenario

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

#: Where each scenario's step runs: compute-to-data at the data, data access at the script.
STEP_SITE = {"compute_to_data": scenario.SITE2, "data_access": scenario.SITE1}


@dataclass(frozen=True)
class Scenario:
    """A running network set up by one scenario's init_site.py scripts."""

    name: str
    network: LocalNetwork

    @property
    def scripts(self) -> Path:
        return ROOT / "scenarios" / self.name


@contextlib.contextmanager
def _running(name: str, root: Path, archives: dict[str, Path]) -> Iterator[Scenario]:
    """site1 and site2 as `mahiru serve` processes, set up by the two init_site.py scripts."""
    net = LocalNetwork.create(
        root, [(scenario.PARTY1, scenario.SITE1), (scenario.PARTY2, scenario.SITE2)]
    )
    net.start()
    try:
        assets = next(iter(archives.values())).parent
        running = Scenario(name, net)
        _init_site(running, "client1", scenario.SITE1, assets)
        _init_site(running, "client2", scenario.SITE2, assets)
        for site in (scenario.SITE1, scenario.SITE2):  # each has the other's rules now
            with net.site_client(site) as client:
                client.replicate_now()
        yield running
    finally:
        net.stop()


@pytest.fixture(scope="module", params=sorted(STEP_SITE))
def network(
    request: pytest.FixtureRequest,
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scenario]:
    """A scenario's network, shared by the tests of the module."""
    with _running(request.param, tmp_path_factory.mktemp("network"), scenario_archives) as net:
        yield net


@pytest.fixture(params=sorted(STEP_SITE))
def fresh_network(
    request: pytest.FixtureRequest,
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    tmp_path: Path,
) -> Iterator[Scenario]:
    """A scenario's network of the test's own, where no job has run (so none is reused)."""
    with _running(request.param, tmp_path / "network", scenario_archives) as net:
        yield net


def _init_site(running: Scenario, client: str, site: SiteId, assets: Path) -> None:
    network = running.network
    demo_site = network.sites[site]
    credentials = demo_site.credentials
    result = subprocess.run(
        [
            sys.executable, str(running.scripts / client / "init_site.py"),
            "--registry", network.registry_url,
            "--internal-url", demo_site.spec.internal_url,
            "--external-url", demo_site.spec.external_url,
            "--site-cert", str(demo_site.spec.certificate),
            "--party-dir", str(credentials.party_dir),
            "--admin-cert", str(credentials.admin_cert),
            "--admin-key", str(credentials.admin_key),
            "--ca", str(network.network_ca),
            "--assets", str(assets),
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def _user_certificate(network: LocalNetwork, folder: Path) -> tuple[Path, Path]:
    """A certificate of a (non-admin) user of party1, issued by its user CA."""
    party_dir = network.sites[scenario.SITE1].credentials.party_dir
    user_ca = pki.load_certified_key(party_dir / "user-ca.crt", party_dir / "user-ca.key")
    cert, key = folder / "analyst.crt", folder / "analyst.key"
    pki.save_certified_key(cert, key, pki.issue_user_certificate(user_ca, "analyst", "user"))
    return cert, key


def _submit_job(
    running: Scenario, cert: Path, key: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    network = running.network
    return subprocess.run(
        [
            sys.executable, str(running.scripts / "client1" / "submit_job.py"),
            "--site-url", network.sites[scenario.SITE1].spec.internal_url,
            "--cert", str(cert),
            "--key", str(key),
            "--ca", str(network.network_ca),
            "--timeout", str(timeout),
        ],
        capture_output=True, text=True, timeout=timeout + 120,
    )  # fmt: skip


def test_the_scripts_set_up_both_sites_and_the_job_delivers_1_and_34(
    network: Scenario, container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    """After init_site.py at both sites, submit_job.py as a user: planned step, [1, 34], exit 0."""
    step_site = STEP_SITE[network.name]
    cert, key = _user_certificate(network.network, tmp_path)
    started = time.monotonic()
    ran = _submit_job(network, cert, key, 300)
    print(f"submit_job.py took {time.monotonic() - started:.1f} s; it printed:\n{ran.stdout}")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    lines = ran.stdout.splitlines()
    summary = json.loads(lines[-1])
    assert summary["result"] == [1, 34]
    assert summary["state"] == "succeeded"
    assert summary["plan"] == {"compute": str(step_site)}
    assert summary["steps"] == {"compute": "succeeded"}
    assert f"plan: step compute runs at {step_site}" in lines
    assert any(line.split()[:3] == ["compute", str(step_site), "succeeded"] for line in lines)
    assert any(line.strip().startswith("job succeeded") for line in lines)
    assert not container_runtime.list_step_containers({LABEL_JOB: summary["job"]})
    site1 = network.network.sites[scenario.SITE1]
    with SiteClient(site1.spec.internal_url, site1.credentials.site_identity()) as client:
        at_site1 = {record.asset.id for record in client.list_assets()}
    # Compute-to-data never moves the input; data access reads it live, never copying it.
    assert scenario.INPUT not in at_site1
    assert scenario.SCRIPT in at_site1


def test_submit_job_fails_when_the_job_does_not_finish_in_time(fresh_network: Scenario) -> None:
    """site2 paused, so the job cannot finish: exit 1 after the timeout, a summary, no result."""
    credentials = fresh_network.network.sites[scenario.SITE1].credentials
    site2 = fresh_network.network.sites[scenario.SITE2].service.process
    assert site2 is not None
    # Both scenarios need site2 for their step (to run it, or to serve the
    # input live), so with site2 stopped the job stays unfinished.
    site2.send_signal(signal.SIGSTOP)
    try:
        ran = _submit_job(fresh_network, credentials.admin_cert, credentials.admin_key, 2.0)
    finally:
        site2.send_signal(signal.SIGCONT)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    summary = json.loads(ran.stdout.splitlines()[-1])
    assert summary["result"] is None
    assert summary["state"] in ("planned", "running")
    assert "did not finish within 2 s" in ran.stderr
