"""The compute-to-data client scripts, run as an administrator would run them (DESIGN §7).

A registry and site1/site2 run as `mahiru serve` processes; the two
init_site.py scripts set them up with the real scenario assets, and
client1/submit_job.py runs the job and checks its result.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mahiru import pki
from mahiru.demo.network import LocalNetwork
from mahiru.model.identifiers import SiteId
from mahiru.runtime import LABEL_JOB, DockerRuntime
from mahiru.scenarios import compute_to_data as scenario

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scenarios" / "compute_to_data"


@pytest.fixture(scope="module")
def network(
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalNetwork]:
    """site1 and site2 as `mahiru serve` processes, set up by the two init_site.py scripts."""
    net = LocalNetwork.create(
        tmp_path_factory.mktemp("network"),
        [(scenario.PARTY1, scenario.SITE1), (scenario.PARTY2, scenario.SITE2)],
    )
    net.start()
    try:
        assets = next(iter(scenario_archives.values())).parent
        _init_site(net, "client1", scenario.SITE1, assets)
        _init_site(net, "client2", scenario.SITE2, assets)
        yield net
    finally:
        net.stop()


def _init_site(network: LocalNetwork, client: str, site: SiteId, assets: Path) -> None:
    demo_site = network.sites[site]
    credentials = demo_site.credentials
    result = subprocess.run(
        [
            sys.executable, str(SCRIPTS / client / "init_site.py"),
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
    network: LocalNetwork, cert: Path, key: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, str(SCRIPTS / "client1" / "submit_job.py"),
            "--site-url", network.sites[scenario.SITE1].spec.internal_url,
            "--cert", str(cert),
            "--key", str(key),
            "--ca", str(network.network_ca),
            "--timeout", str(timeout),
        ],
        capture_output=True, text=True, timeout=timeout + 120,
    )  # fmt: skip


def test_the_scripts_set_up_both_sites_and_the_job_delivers_1_and_34(
    network: LocalNetwork, container_runtime: DockerRuntime, tmp_path: Path
) -> None:
    """After init_site.py at both sites, submit_job.py as a user: step at site2, [1, 34], exit 0."""
    cert, key = _user_certificate(network, tmp_path)
    started = time.monotonic()
    ran = _submit_job(network, cert, key, 300)
    print(f"submit_job.py took {time.monotonic() - started:.1f} s; it printed:\n{ran.stdout}")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    lines = ran.stdout.splitlines()
    summary = json.loads(lines[-1])
    assert summary["result"] == [1, 34]
    assert summary["state"] == "succeeded"
    assert summary["plan"] == {"compute": str(scenario.SITE2)}
    assert summary["steps"] == {"compute": "succeeded"}
    assert f"plan: step compute runs at {scenario.SITE2}" in lines
    assert any(line.split()[:3] == ["compute", str(scenario.SITE2), "succeeded"] for line in lines)
    assert any(line.strip().startswith("job succeeded") for line in lines)
    assert not container_runtime.list_step_containers({LABEL_JOB: summary["job"]})


def test_submit_job_fails_when_the_job_does_not_finish_in_time(network: LocalNetwork) -> None:
    """With the admin's certificate and no time to finish: exit 1, a JSON summary, no result."""
    credentials = network.sites[scenario.SITE1].credentials
    ran = _submit_job(network, credentials.admin_cert, credentials.admin_key, 0.01)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    summary = json.loads(ran.stdout.splitlines()[-1])
    assert summary["result"] is None
    assert summary["state"] in ("planned", "running")
    assert "did not finish within" in ran.stderr
