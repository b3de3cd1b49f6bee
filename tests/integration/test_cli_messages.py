"""The CLI's messages that need a real network: nothing listening, a site taken for the registry,
and a mistyped site URL whose suggested fix must work. Run through the real `mahiru` command.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.db import sqlite_urls
from tests.support.servers import free_port
from tests.support.sites import Network, network

from mahiru.cli.connection import registry_client
from mahiru.client.http import TlsIdentity
from mahiru.errors import NotFound

pytestmark = pytest.mark.integration

MAHIRU = str(Path(sys.executable).parent / "mahiru")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("messages")
    with network(root, sqlite_urls(root), ("p1",)) as running:
        yield running


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


def files(identity: TlsIdentity) -> list[str]:
    return ["--cert", str(identity.cert), "--key", str(identity.key), "--ca", str(identity.ca)]


#: A command of each client, with the option naming where it connects and which identity.
CLIENTS = {
    "assets (site client)": (["assets", "list"], "--site", "/internal", "user"),
    "jobs (jobs client)": (["jobs", "list"], "--site", "/internal", "user"),
    "reviews (reviews client)": (["reviews", "list"], "--site", "/internal", "user"),
    "audit (site client)": (["audit", "list"], "--site", "/internal", "admin"),
    "register (registry client)": (["register", "show"], "--registry", "", "client"),
}


@pytest.mark.parametrize("name", CLIENTS)
def test_nothing_listening_is_said_in_a_sentence(net: Network, name: str) -> None:
    """A refused connection: exit 4 (an outage), "nothing answers at HOST:PORT", no errno."""
    args, option, path, who = CLIENTS[name]
    party = net.sites["p1"].party
    port = free_port()  # nothing listens there
    done = run([*args, option, f"https://127.0.0.1:{port}{path}", *files(getattr(party, who))])
    assert done.returncode == 4, done.stderr
    assert f"nothing answers at 127.0.0.1:{port} — is the service running?" in done.stderr
    assert "Errno" not in done.stderr and "ConnectError" not in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("suffix", ["", "/"])
def test_a_sites_url_as_registry_is_called_a_site(net: Network, suffix: str) -> None:
    """The site answers a party-client certificate with 404: the CLI names the site instead."""
    site = net.sites["p1"]
    url = site.internal_url.removesuffix("/internal") + suffix
    done = run(["register", "show", "--registry", url, *files(site.party.client)])
    assert done.returncode == 2, done.stderr
    assert f"{url} is {site.id}, a site, not the registry" in done.stderr
    assert "Not Found" not in done.stderr


def test_the_registrys_own_not_found_is_kept(net: Network) -> None:
    """Only a 404 from something that is not the registry is turned into "a site": a site
    the registry does not know is still its own NotFound."""
    client = net.sites["p1"].party.client
    registry = registry_client(net.registry.url, client.cert, client.key, client.ca)
    with registry, pytest.raises(NotFound) as raised:
        registry.site("site:p1.org:nowhere")
    assert "a site, not the registry" not in raised.value.message


def test_the_suggested_site_url_works(net: Network) -> None:
    """`/interal` is answered with the URL to use, and that URL lists the assets."""
    site = net.sites["p1"]
    wrong = site.internal_url.removesuffix("/internal") + "/interal"
    identity = files(site.party.user)
    done = run(["assets", "list", "--site", wrong, *identity])
    assert done.returncode == 2, done.stderr
    suggested = re.search(r"did you mean (\S+)\?", done.stderr)
    assert suggested is not None, done.stderr
    assert suggested.group(1) == site.internal_url
    again = run(["assets", "list", "--site", suggested.group(1), *identity])
    assert again.returncode == 0, again.stderr


def test_a_rule_type_typo_at_a_site_suggests_the_type(net: Network, tmp_path: Path) -> None:
    site = net.sites["p1"]
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"rules: [{{type: MayAcess, site: '{site.id}', asset: 'asset:p1.org:d:p1.org:site'}}]"
    )
    admin = site.party.admin
    done = run(
        [
            *("rules", "add", str(rules), "--signing-key", str(site.party.key_path)),
            *("--site", site.internal_url, "--tls-key", str(admin.key)),
            *("--cert", str(admin.cert), "--ca", str(admin.ca)),
        ]
    )
    assert done.returncode == 2, done.stderr
    assert "unknown rule type 'MayAcess': did you mean 'MayAccess'?" in done.stderr
