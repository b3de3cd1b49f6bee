"""docs/dashboard.md's browser set-up, run as written: the NSS commands in a home folder
that never had Chromium, headless Chromium picking the certificate by itself, and what
Chromium shows for each refused certificate the doc lists, against a running site."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from tests.support.browser import NETWORK_CHANGE_ATTEMPTS, chromium
from tests.support.db import sqlite_urls
from tests.support.guides import run_shell, shell_blocks
from tests.support.sites import Network, network

from mahiru import pki, server
from mahiru.client.http import TlsIdentity
from mahiru.pki.certificates import USER_CA_NAME
from mahiru.server.refusals import RefusalLog

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "dashboard.md"
#: What the site logs for a certificate refused in the handshake.
REFUSED = "refused a client certificate during the TLS handshake"
#: What Chromium says, as the doc's table has it, when the site ends the handshake (which
#: one depends on when the closed connection is noticed).
HANDSHAKE_ENDED = ("ERR_CONNECTION_RESET", "ERR_EMPTY_RESPONSE", "ERR_SOCKET_NOT_CONNECTED")
PAGE_TIMEOUT = 60


@dataclass
class Site:
    """A running site of party1 (and one of party2), and its dashboard."""

    net: Network
    url: str

    @property
    def origin(self) -> str:
        """The dashboard's origin: scheme, host and port."""
        return self.url.split("/internal/", 1)[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A registry and the two parties' sites, serving TLS on loopback."""
    missing = [tool for tool in ("certutil", "pk12util") if shutil.which(tool) is None]
    if chromium() is None or missing:
        pytest.fail(
            f"missing {'chromium ' if chromium() is None else ''}{' '.join(missing)}:"
            " `make test` installs them (scripts/ensure-chromium.sh)"
        )
    root = tmp_path_factory.mktemp("browser-setup")
    with network(root, sqlite_urls(root), ("party1", "party2")) as net:
        yield Site(net, net.sites["party1"].internal_url + "/ui/")


def _bundle(folder: Path, identity: TlsIdentity, name: str) -> Path:
    """`identity`'s certificate and key as a PKCS#12 file, as `mahiru certs user` writes it."""
    certified = pki.load_certified_key(identity.cert, identity.key)
    return pki.save_pkcs12(folder / f"{name}.p12", certified, name=name)


def _path_with_chromium(folder: Path) -> str:
    """PATH with a `chromium` that adds what a root account in a container needs."""
    wrapper = folder / "bin" / "chromium"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(
        f'#!/bin/sh\nexec {chromium()} --no-sandbox --disable-gpu --disable-dev-shm-usage "$@"\n'
    )
    wrapper.chmod(0o755)
    return f"{wrapper.parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _run_doc(script: str, folder: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run the doc's blocks; again if Chromium dropped the page for a network change."""
    for _ in range(NETWORK_CHANGE_ATTEMPTS):
        code, output = run_shell(script, folder, env, timeout=PAGE_TIMEOUT + 60)
        if "net::ERR_NETWORK_CHANGED" not in output:
            break
    return code, output


def test_the_doc_runs_the_nss_commands_and_a_headless_chromium(site: Site, tmp_path: Path) -> None:
    """In a home with no ~/.pki at all, the blocks import the bundle and the CA (twice over,
    changing nothing), and the headless Chromium then loads the dashboard as the user."""
    home = tmp_path / "home"
    home.mkdir()
    admin = site.net.parties["party1"].admin
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": _path_with_chromium(tmp_path),
        "P12": str(_bundle(tmp_path, admin, "admin")),
        "CA": str(admin.ca),
        "SITE": site.origin,
        "PARTY": site.net.parties["party1"].id,
    }
    script = shell_blocks(DOC)
    code, output = _run_doc(script, tmp_path, env)
    assert code == 0, output[-3000:]
    assert re.search(r"^admin\s+u,u,u\s*$", output, re.M), output[-3000:]
    assert re.search(r"^mahiru-ca\s+C,,\s*$", output, re.M), output[-3000:]
    assert "<h1>Jobs</h1>" in output
    assert f"user:admin@{site.net.parties['party1'].id}" in output
    # Again, on the database that now exists: no password prompt loop, nothing added.
    code, again = _run_doc(script, tmp_path, env)
    assert code == 0, again[-3000:]
    assert len(re.findall(r"^admin\s", again, re.M)) == 1


def test_without_the_database_the_import_fails_as_the_doc_says(site: Site, tmp_path: Path) -> None:
    """The doc's reason for creating the database first is real: pk12util alone fails."""
    admin = site.net.parties["party1"].admin
    bundle = _bundle(tmp_path, admin, "a")
    done = subprocess.run(
        ["pk12util", "-d", f"sql:{tmp_path}/.pki/nssdb", "-i", str(bundle), "-W", ""],
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert "SEC_ERROR_BAD_DATABASE" in done.stdout + done.stderr
    assert "SEC_ERROR_BAD_DATABASE" in DOC.read_text()


def test_the_policy_filter_names_the_issuer_of_the_party_s_user_certificates(
    site: Site,
) -> None:
    """The policy example parses as Chromium wants it (a list of JSON texts, each with a
    pattern and a filter), and its issuer filter matches what a party's user CA is."""
    (block,) = re.findall(r"^ *```json\n(.*?)^ *```", DOC.read_text(), re.S | re.M)
    entries = json.loads(block)["AutoSelectCertificateForUrls"]
    (entry,) = [json.loads(text) for text in entries]
    assert re.fullmatch(r"https://[^/]+", entry["pattern"])
    issuer = entry["filter"]["ISSUER"]
    assert issuer == {"CN": USER_CA_NAME, "O": "party:party1.mahiru.example.org:party1"}
    party = site.net.parties["party1"]
    user_ca = x509.load_pem_x509_certificate(party.user_ca.read_bytes()).subject
    assert user_ca.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == USER_CA_NAME
    assert user_ca.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == party.id
    # The profile block's filter is the same, with the party from $PARTY.
    assert '{"ISSUER": {"CN": "Mahiru user CA", "O": "$PARTY"}}' in shell_blocks(DOC)


def _browse(site: Site, folder: Path, bundle: Path | None, ca: Path) -> tuple[str, list[str]]:
    """Load the dashboard in a headless Chromium whose NSS database holds `bundle` (if any)
    and trusts `ca`, picking any certificate by itself; the DOM and the network errors."""
    home, profile = folder / "home", folder / "profile"
    database = f"sql:{home / '.pki' / 'nssdb'}"
    (home / ".pki" / "nssdb").mkdir(parents=True)
    commands = [["certutil", "-d", database, "-N", "--empty-password"]]
    if bundle is not None:
        commands.append(["pk12util", "-d", database, "-i", str(bundle), "-W", ""])
    commands.append(["certutil", "-d", database, "-A", "-n", "ca", "-t", "C,,", "-i", str(ca)])
    for command in commands:
        subprocess.run(command, check=True, capture_output=True, timeout=30)
    (profile / "Default").mkdir(parents=True)
    setting = {f"{site.origin},*": {"setting": {"filters": [{}]}}}
    exceptions = {"auto_select_certificate": setting}
    preferences = {"profile": {"content_settings": {"exceptions": exceptions}}}
    (profile / "Default" / "Preferences").write_text(json.dumps(preferences))
    flags = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
    for _ in range(NETWORK_CHANGE_ATTEMPTS):
        done = subprocess.run(
            [
                str(chromium()),
                "--headless=new",
                *flags,
                f"--user-data-dir={profile}",
                "--dump-dom",
                site.url,
            ],
            env={**os.environ, "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=PAGE_TIMEOUT,
        )
        errors = re.findall(r"net::(ERR_[A-Z_]+)", done.stderr)
        if "ERR_NETWORK_CHANGED" not in errors:
            break
    return done.stdout, errors


def test_an_untrusted_network_ca_is_not_private(site: Site, tmp_path: Path) -> None:
    """Without the network CA, Chromium refuses the site's own certificate."""
    stranger = pki.create_network_ca()
    other_ca = tmp_path / "other-ca.crt"
    pki.save_certified_key(other_ca, tmp_path / "other-ca.key", stranger)
    admin = site.net.parties["party1"].admin
    _, errors = _browse(site, tmp_path, _bundle(tmp_path, admin, "admin"), other_ca)
    assert "ERR_CERT_AUTHORITY_INVALID" in errors
    assert "`NET::ERR_CERT_AUTHORITY_INVALID`" in DOC.read_text()


@pytest.mark.parametrize(
    ("presented", "reason"),
    [("nothing", "no client certificate"), ("another party's user", "certificate not accepted")],
)
def test_a_certificate_refused_in_the_handshake_gets_no_page(
    site: Site,
    tmp_path: Path,
    presented: str,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No certificate, or one of another party's user CA: the site ends the handshake, so
    Chromium gets no page and says one of the doc's errors; the site logs why."""
    monkeypatch.setattr(server, "REFUSALS", RefusalLog(interval=0.0))  # log each
    party2 = site.net.parties["party2"].admin
    bundle = None if presented == "nothing" else _bundle(tmp_path, party2, "other")
    with caplog.at_level(logging.WARNING, logger="mahiru.tls"):
        dom, errors = _browse(site, tmp_path, bundle, site.net.certs.ca)
    assert "<h1>" not in dom
    assert errors and set(errors) <= set(HANDSHAKE_ENDED), errors
    logged = [r for r in caplog.records if r.getMessage() == REFUSED]
    assert logged and all(r.reason.startswith(reason) for r in logged), logged  # type: ignore[attr-defined]
    for error in HANDSHAKE_ENDED:
        assert f"`{error}`" in DOC.read_text()


def test_a_party_client_certificate_gets_the_json_error(site: Site, tmp_path: Path) -> None:
    """A certificate the handshake takes but the internal API does not: the doc's message."""
    client = site.net.parties["party1"].client
    dom, errors = _browse(site, tmp_path, _bundle(tmp_path, client, "client"), client.ca)
    assert not errors
    assert "PermissionDenied" in dom
    message = "this is the internal API, for users with a certificate of this site's owner"
    assert message in dom
    assert message in DOC.read_text()
