"""The mistakes a newcomer makes, run through the real `mahiru` command against a real network.

Each is a permanent mistake, so each must end in a message saying what is
wrong (and usually what to use instead) and exit 2 (or 1 for a refusal to
overwrite): never a traceback, never exit 4 ("try again later"), never 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tests.support.db import sqlite_urls
from tests.support.sites import Network, PartyKit, Pki, network

from mahiru.client.http import TlsIdentity
from mahiru.errors import NotFound
from mahiru.model.identifiers import AssetId

pytestmark = pytest.mark.integration

MAHIRU = str(Path(sys.executable).parent / "mahiru")


@dataclass(frozen=True)
class World:
    """A running network of p1 and p2, another network's certificates, and a scratch folder."""

    net: Network
    other: Pki
    #: Party p1 of another network: the same name, other keys and CAs.
    stranger: PartyKit
    root: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("mistakes")
    with network(root, sqlite_urls(root), ("p1", "p2")) as net:
        net.replicate_all()
        other = Pki(root / "other-network")
        yield World(net, other, other.party("p1"), root)


def site_args(url: str, identity: TlsIdentity, ca: Path | None = None) -> list[str]:
    return [
        "--site",
        url,
        "--cert",
        str(identity.cert),
        "--key",
        str(identity.key),
        "--ca",
        str(ca or identity.ca),
    ]


def registry_args(url: str, identity: TlsIdentity, ca: Path | None = None) -> list[str]:
    return [
        "--registry",
        url,
        "--cert",
        str(identity.cert),
        "--key",
        str(identity.key),
        "--ca",
        str(ca or identity.ca),
    ]


def write_yaml(path: Path, data: object) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def cases(w: World) -> dict[str, tuple[list[str], int, str]]:
    """Each mistake: the command line, its exit code and a fragment of its message."""
    net = w.net
    site1, site2 = net.sites["p1"], net.sites["p2"]
    p1, p2 = site1.party, site2.party
    user, url = p1.user, site1.internal_url
    stranger = w.stranger
    registry = net.registry.url
    asset = "asset:p1.org:data:p1.org:site"
    job = {
        "submitter": p1.id,
        "workflow": {
            "inputs": ["x"],
            "outputs": {"y": "s.out"},
            "steps": [
                {
                    "name": "s",
                    "compute_asset": "asset:p1.org:no-such-compute:p1.org:site",
                    "inputs": {"in": "x"},
                    "outputs": {"out": None},
                }
            ],
        },
        "inputs": {"x": "asset:p1.org:no-such-data:p1.org:nowhere"},
    }
    cycle = {
        "submitter": p1.id,
        "workflow": {
            "inputs": [],
            "outputs": {"y": "a.out"},
            "steps": [
                {
                    "name": "a",
                    "compute_asset": asset,
                    "inputs": {"i": "b.out"},
                    "outputs": {"out": None},
                },
                {
                    "name": "b",
                    "compute_asset": asset,
                    "inputs": {"i": "a.out"},
                    "outputs": {"out": None},
                },
            ],
        },
        "inputs": {},
    }
    rule = {"type": "MayAccess", "site": site1.id, "asset": asset}
    files = w.root / "files"
    files.mkdir(exist_ok=True)
    (files / "plain").write_text("not a folder")
    (files / "exists.tar").write_bytes(b"")
    admin = p1.admin
    rules_site = [
        *("--site", url, "--cert", str(admin.cert), "--ca", str(admin.ca)),
        *("--tls-key", str(admin.key)),
    ]
    return {
        # Certificates, keys and CAs for a site.
        "user certificate of another party": (
            ["assets", "list", *site_args(url, p2.user)],
            2,
            "refused your certificate",
        ),
        "user certificate of another network": (
            ["assets", "list", *site_args(url, stranger.user, ca=user.ca)],
            2,
            "not issued by the user CA the site trusts",
        ),
        "CA of another network": (
            ["assets", "list", *site_args(url, user, ca=w.other.ca)],
            2,
            "does not vouch for",
        ),
        "party-client certificate at a site": (
            ["assets", "list", *site_args(url, p1.client)],
            2,
            "takes a user certificate",
        ),
        "user CA given as --ca": (
            ["assets", "list", *site_args(url, user, ca=p1.user_ca)],
            2,
            "is a party's user CA",
        ),
        "certificate and key swapped": (
            [
                "assets",
                "list",
                "--site",
                url,
                "--cert",
                str(user.key),
                "--key",
                str(user.cert),
                "--ca",
                str(user.ca),
            ],
            2,
            "swapped",
        ),
        "key of another certificate": (
            [
                "assets",
                "list",
                "--site",
                url,
                "--cert",
                str(user.cert),
                "--key",
                str(p2.user.key),
                "--ca",
                str(user.ca),
            ],
            2,
            "is not the key of",
        ),
        "missing certificate file": (
            ["assets", "list", *site_args(url, TlsIdentity(w.root / "no.crt", user.key, user.ca))],
            2,
            "file not found",
        ),
        # URLs.
        "http:// instead of https://": (
            ["assets", "list", *site_args(url.replace("https://", "http://"), user)],
            2,
            "only HTTPS",
        ),
        "no scheme": (
            ["assets", "list", *site_args(url.replace("https://", ""), user)],
            2,
            "has no scheme",
        ),
        "no /internal": (
            ["assets", "list", *site_args(url.removesuffix("/internal"), user)],
            2,
            "ends in /internal",
        ),
        "external API instead of internal": (
            ["assets", "list", *site_args(url.replace("/internal", "/external"), user)],
            2,
            "external API",
        ),
        "registry URL for a site command": (
            ["assets", "list", *site_args(registry + "/internal", user)],
            2,
            "is the registry",
        ),
        # The registry.
        "user certificate at the registry": (
            ["register", "show", *registry_args(registry, user)],
            2,
            "party-client certificate",
        ),
        "site URL for a registry command": (
            ["register", "show", *registry_args(url, p1.client)],
            2,
            "is a site's API",
        ),
        "party-client certificate of another network": (
            ["register", "show", *registry_args(registry, stranger.client, ca=user.ca)],
            2,
            "was not issued by the CA in --ca",
        ),
        # Jobs and rules.
        "unknown assets in a job": (
            ["jobs", "submit", write_yaml(files / "unknown.yaml", job), *site_args(url, user)],
            2,
            "no-such-data:p1.org:nowhere: no site site:p1.org:nowhere is registered",
        ),
        "a workflow with a cycle": (
            ["jobs", "submit", write_yaml(files / "cycle.yaml", cycle), *site_args(url, user)],
            2,
            "cycle",
        ),
        "a typo in a rule type": (
            [
                "rules",
                "add",
                write_yaml(files / "typo.yaml", {"rules": [{**rule, "type": "MayAcess"}]}),
                "--signing-key",
                str(p1.key_path),
                *rules_site,
            ],
            2,
            "MayAcess",
        ),
        "a TLS key as the signing key": (
            [
                "rules",
                "add",
                write_yaml(files / "rule.yaml", {"rules": [rule]}),
                "--signing-key",
                str(user.key),
                *rules_site,
            ],
            2,
            "is a TLS key (ECDSA), not a party's signing key",
        ),
        "another party's signing key": (
            [
                "rules",
                "add",
                str(files / "rule.yaml"),
                "--signing-key",
                str(p2.key_path),
                *rules_site,
            ],
            2,
            "signed by party:p2.org:p2, but namespace 'p1.org' is owned by party:p1.org:p1",
        ),
        # Files.
        "unwritable --out": (
            ["certs", "ca", "--out", str(files / "plain" / "pki")],
            2,
            "plain",
        ),
        "upload without an image": (
            ["assets", "upload", asset, *site_args(url, p1.admin)],
            2,
            "--no-image",
        ),
        "download over an existing file": (
            [
                "assets",
                "download",
                asset,
                "--out",
                str(files / "exists.tar"),
                *site_args(url, p1.admin),
            ],
            1,
            "give --overwrite",
        ),
    }


CASES = [
    "user certificate of another party",
    "user certificate of another network",
    "CA of another network",
    "party-client certificate at a site",
    "user CA given as --ca",
    "certificate and key swapped",
    "key of another certificate",
    "missing certificate file",
    "http:// instead of https://",
    "no scheme",
    "no /internal",
    "external API instead of internal",
    "registry URL for a site command",
    "user certificate at the registry",
    "site URL for a registry command",
    "party-client certificate of another network",
    "unknown assets in a job",
    "a workflow with a cycle",
    "a typo in a rule type",
    "a TLS key as the signing key",
    "another party's signing key",
    "unwritable --out",
    "upload without an image",
    "download over an existing file",
]


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAHIRU_")}
    return subprocess.run(
        [MAHIRU, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("name", CASES)
def test_each_mistake_is_named_with_its_exit_code(world: World, name: str) -> None:
    args, code, fragment = cases(world)[name]
    done = run(args)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode == code, output
    assert fragment in done.stderr, output


def test_every_case_is_in_the_table(world: World) -> None:
    assert sorted(cases(world)) == sorted(CASES)


def test_an_outage_is_still_an_outage(world: World) -> None:
    """Nothing listening on the port: exit 4, try again later."""
    user = world.net.sites["p1"].party.user
    done = run(["assets", "list", *site_args("https://127.0.0.1:1/internal", user)])
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr


def test_a_refused_or_interrupted_upload_leaves_no_asset(world: World) -> None:
    """An image the site refuses (not an archive), and an upload stopped by Ctrl-C: exit 2
    and 130, and the asset is not there afterwards."""
    site1 = world.net.sites["p1"]
    admin = site_args(site1.internal_url, site1.party.admin)
    junk = world.root / "junk.tar"
    junk.write_bytes(os.urandom(4096))
    refused = "asset:p1.org:refused:p1.org:site"
    done = run(["assets", "upload", refused, str(junk), *admin])
    assert done.returncode == 2, done.stderr
    big = world.root / "big.tar"
    with big.open("wb") as file:
        for _ in range(64):
            file.write(os.urandom(4 * 1024 * 1024))
    stopped = "asset:p1.org:stopped:p1.org:site"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAHIRU_")}
    process = subprocess.Popen(
        [MAHIRU, "assets", "upload", stopped, str(big), *admin],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    # Interrupted while the image streams: once the asset is described at the site.
    deadline = time.monotonic() + 60
    with site1.admin() as client:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                client.get_asset(AssetId.parse(stopped))
                break
            except NotFound:
                time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    # The site refuses the junk as soon as its first bytes arrive; the Ctrl-C may come
    # before the command hears that (exit 130) or after (exit 2). Either way it says
    # what happened, and no asset is left behind.
    assert process.returncode in (130, 2), stderr
    expected = "interrupted" if process.returncode == 130 else "not a sound image archive"
    assert expected in stderr and "Traceback" not in stderr
    with site1.admin() as client:
        for asset in (refused, stopped):
            with pytest.raises(NotFound):
                client.get_asset(AssetId.parse(asset))


def test_policy_explain_asks_a_running_site(world: World) -> None:
    """`policy explain --at URL` decides with the site's rules: denied (3, with the missing
    rule) until the owner publishes one, then allowed (0)."""
    site1 = world.net.sites["p1"]
    p1 = site1.party
    asset = "asset:p1.org:explained:p1.org:site"
    job = {
        "submitter": p1.id,
        "workflow": {
            "inputs": ["x"],
            "outputs": {"y": "s.out"},
            "steps": [
                {
                    "name": "s",
                    "compute_asset": asset,
                    "inputs": {"in": "x"},
                    "outputs": {"out": None},
                }
            ],
        },
        "inputs": {"x": asset},
    }
    job_file = write_yaml(world.root / "explain-job.yaml", job)
    ask = ["policy", "explain", "--job", job_file, "--item", "x", "--site", site1.id, "--at"]
    ask += [site1.internal_url, "--cert", str(p1.user.cert), "--key", str(p1.user.key)]
    ask += ["--ca", str(p1.user.ca)]
    denied = run(ask)
    assert denied.returncode == 3, denied.stderr
    assert "no MayAccess" in denied.stdout
    with site1.admin() as admin:
        admin.add_rule(p1.sign({"type": "MayAccess", "site": site1.id, "asset": asset}))
    allowed = run(ask)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "MayAccess" in allowed.stdout
    both = run([*ask, "--rules", job_file])
    assert both.returncode == 2 and "exactly one of --rules" in both.stderr
