"""Running the user guides' shell blocks against a network like the one `mahiru demo --keep`
leaves (this module holds no tests).

The guides (docs/first-compute-asset.md, examples/two_step/README.md) start from the
demo's network: site1 of party1, site2 of party2 holding the demo's input data set, the
rules of examples/compute_to_data, and a profiles file with `party1-admin` (the default)
and `party2-admin`. `demo_like_network` builds that state, with this run's own party
namespaces (a site finds its step containers by site id, so two test runs on one engine
must not share one); the guides take the namespaces from `P1` and `P2`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mahiru.client.profiles import write_profiles
from mahiru.demo.network import LocalNetwork
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, PartyId, SiteId
from mahiru.policy.rules import rule_from_dict
from mahiru.runtime.assets import INPUT_ASSET
from mahiru.scenarios import compute_to_data as scenario
from mahiru.scenarios.setup import add_rules, own_rules, register, upload_assets

BIN = Path(sys.executable).parent


def shell_blocks(doc: Path) -> str:
    """Every ```sh block of `doc`, in order, as one script (other blocks are not run)."""
    return "\n".join(re.findall(r"^```sh\n(.*?)^```", doc.read_text(), re.S | re.M))


@dataclass(frozen=True)
class DemoLikeNetwork:
    """The running network, its profiles file, and the namespaces its parties own."""

    net: LocalNetwork
    profiles: Path
    namespaces: dict[str, str]

    def environment(self) -> dict[str, str]:
        """What a guide's shell gets: no MAHIRU_* but the profiles file, the namespaces, and
        the virtual environment's `bin` first on PATH."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MAHIRU_")}
        return {
            **clean,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MAHIRU_CONFIG": str(self.profiles),
            "P1": self.namespaces[scenario.NS1],
            "P2": self.namespaces[scenario.NS2],
        }


def _ours(data: Any, namespaces: dict[str, str]) -> Any:
    text = json.dumps(data)
    for theirs, mine in namespaces.items():
        text = text.replace(theirs, mine)
    return json.loads(text)


@contextmanager
def demo_like_network(root: Path, scenario_archives: dict[str, Path]) -> Iterator[DemoLikeNetwork]:
    """The demo's network in its state after `mahiru demo --keep` (but for the demo's own job
    and the script, which the guides do not use), under `root`; stopped on leaving."""
    run = uuid.uuid4().hex[:8]
    namespaces = {
        scenario.NS1: f"party1-{run}.guides.example.org",
        scenario.NS2: f"party2-{run}.guides.example.org",
    }
    party1 = PartyId.parse(_ours(str(scenario.PARTY1), namespaces))
    party2 = PartyId.parse(_ours(str(scenario.PARTY2), namespaces))
    site1 = SiteId.parse(_ours(str(scenario.SITE1), namespaces))
    site2 = SiteId.parse(_ours(str(scenario.SITE2), namespaces))
    data = AssetId.parse(_ours(str(scenario.INPUT), namespaces))
    net = LocalNetwork.create(root / "network", [(party1, site1), (party2, site2)])
    net.start()
    try:
        raw = yaml.safe_load(scenario.example_path("rules.yaml").read_text())["rules"]
        rules = [rule_from_dict(rule) for rule in _ours(raw, namespaces)]
        for site in net.sites.values():
            register(net.registry_url, site.credentials, site.spec)
        assets = {site2: [(Asset(data, AssetKind.DATA), scenario_archives[INPUT_ASSET])]}
        for site in net.sites.values():
            with net.site_client(site.spec.site) as admin:
                upload_assets(admin, assets.get(site.spec.site, []))
                admin.replicate_now()  # the site must know both parties to take their rules
                key = site.credentials.party_dir / "party.key"
                add_rules(admin, own_rules(rules, site.credentials.party), key)
        _replicate(net, len(rules))
        profiles = root / "profiles.toml"
        write_profiles(
            profiles,
            [net.profile(site1, "party1-admin"), net.profile(site2, "party2-admin")],
            default="party1-admin",
        )
        yield DemoLikeNetwork(net, profiles, namespaces)
    finally:
        net.stop()


def _replicate(net: LocalNetwork, total: int) -> None:
    deadline = time.monotonic() + 60
    for site in net.sites:
        with net.site_client(site) as client:
            while client.replicate_now().get("rules_in_policy") != total:
                assert time.monotonic() < deadline, f"{site} did not get all {total} rules"
                time.sleep(0.5)


def run_shell(script: str, cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run `script` with bash `-eu` in `cwd`; its exit code and its output (stdout and stderr).
    The whole process group is killed if it outlives `timeout` seconds."""
    path = cwd / ".guide.sh"
    path.write_text("set -eu\n" + script)
    process = subprocess.Popen(
        ["bash", str(path)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return -1, output + f"\n(killed after {timeout} s)"
    return process.returncode, output


def service_logs(net: LocalNetwork, chars: int = 2000) -> str:
    """The end of every service's log, for a failure message."""
    return "".join(
        f"\n--- {service.name}\n" + service.log.read_text(errors="replace")[-chars:]
        for service in net.services()
        if service.log.exists()
    )
