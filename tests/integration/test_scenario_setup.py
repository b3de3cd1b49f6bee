"""The scenario client scripts set up a real local network (registry and two site processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.images import write_image

from mahiru.demo.network import LocalNetwork
from mahiru.scenarios import compute_to_data as scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    """A registry and site1/site2 as `mahiru serve` processes with TLS on loopback."""
    net = LocalNetwork.create(
        tmp_path_factory.mktemp("network"),
        [(scenario.PARTY1, scenario.SITE1), (scenario.PARTY2, scenario.SITE2)],
    )
    net.start()
    yield net
    net.stop()


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in asset archives: sound images whose data does not matter here."""
    folder = tmp_path_factory.mktemp("assets")
    for name in scenario.ARCHIVES.values():
        write_image(folder / name, 1000, seed=name.encode())
    return folder


def _run_script(
    network: LocalNetwork, client: str, site: object, assets: Path
) -> dict[str, object]:
    demo_site = network.sites[site]  # type: ignore[index]
    credentials = demo_site.credentials
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scenarios" / "compute_to_data" / client / "init_site.py"),
            "--registry",
            network.registry_url,
            "--internal-url",
            demo_site.spec.internal_url,
            "--external-url",
            demo_site.spec.external_url,
            "--site-cert",
            str(demo_site.spec.certificate),
            "--party-dir",
            str(credentials.party_dir),
            "--admin-cert",
            str(credentials.admin_cert),
            "--admin-key",
            str(credentials.admin_key),
            "--ca",
            str(network.network_ca),
            "--assets",
            str(assets),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def test_init_site_scripts_register_upload_and_add_rules(
    network: LocalNetwork, assets: Path
) -> None:
    """client1 and client2 set up their sites; both sites end up with all 14 rules."""
    first = _run_script(network, "client1", scenario.SITE1, assets)
    second = _run_script(network, "client2", scenario.SITE2, assets)
    assert first == {"party": str(scenario.PARTY1), "site": str(scenario.SITE1), "rules_added": 9}
    assert second["rules_added"] == 5
    for site in (scenario.SITE1, scenario.SITE2):
        with network.site_client(site) as client:
            client.replicate_now()
            status = client.replicate_now()
            assert status["rules_in_policy"] == 14
            assert status["rejected_rules"] == 0
    with network.site_client(scenario.SITE1) as client:
        ids = {str(record.asset.id) for record in client.list_assets()}
    assert ids == {str(scenario.SCRIPT), str(scenario.OUTPUT_BASE)}


def test_init_site_is_idempotent(network: LocalNetwork, assets: Path) -> None:
    """Running a set-up script again changes nothing and still succeeds."""
    _run_script(network, "client1", scenario.SITE1, assets)
    again = _run_script(network, "client1", scenario.SITE1, assets)
    assert again["rules_added"] == 9
    with network.site_client(scenario.SITE1) as client:
        assert len(client.list_rules()) == 9


def test_init_site_reports_a_missing_asset_file(network: LocalNetwork, tmp_path: Path) -> None:
    """A missing archive is a one-line error, not a traceback."""
    demo_site = network.sites[scenario.SITE2]
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scenarios" / "compute_to_data" / "client2" / "init_site.py"),
            "--registry", network.registry_url,
            "--internal-url", demo_site.spec.internal_url,
            "--external-url", demo_site.spec.external_url,
            "--site-cert", str(demo_site.spec.certificate),
            "--party-dir", str(demo_site.credentials.party_dir),
            "--admin-cert", str(demo_site.credentials.admin_cert),
            "--admin-key", str(demo_site.credentials.admin_key),
            "--ca", str(network.network_ca),
            "--assets", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "compute-to-data-input.tar" in result.stderr
