"""`mahiru certs`: the files each command writes, their modes, and its exit codes."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from mahiru import pki
from mahiru.cli.certs import certs_group
from mahiru.pki import Role

SITE1 = "site:party1.example.org:site1"
PARTY1 = "party:party1.example.org:party1"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(certs_group, [str(arg) for arg in args], catch_exceptions=False)


def run_json(*args: str | Path) -> dict[str, Any]:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def mode(path: str | Path) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    out = tmp_path / "ca"
    assert run("ca", "--out", out).exit_code == 0
    return out


@pytest.fixture
def party_dir(tmp_path: Path) -> Path:
    out = tmp_path / "party1"
    assert run("party", "--party", PARTY1, "--out", out).exit_code == 0
    return out


def test_ca_writes_certificate_and_private_key(tmp_path: Path) -> None:
    out = tmp_path / "new" / "ca"
    document = run_json("ca", "--out", out, "--name", "Test network", "--days", "100")
    files = document["files"]
    assert files == {"certificate": str(out / "ca.crt"), "private_key": str(out / "ca.key")}
    assert mode(files["certificate"]) == 0o644
    assert mode(files["private_key"]) == 0o600
    ca = pki.load_certified_key(out / "ca.crt", out / "ca.key")
    assert "Test network" in ca.certificate.subject.rfc4514_string()
    lifetime = ca.certificate.not_valid_after_utc - ca.certificate.not_valid_before_utc
    assert timedelta(days=100) <= lifetime < timedelta(days=101)


def test_ca_human_output_lists_the_files(tmp_path: Path) -> None:
    result = run("ca", "--out", tmp_path)
    assert result.exit_code == 0
    assert "created network CA" in result.stdout
    assert str(tmp_path / "ca.key") in result.stdout


def test_registry_certificate_default_and_custom_names(tmp_path: Path, ca_dir: Path) -> None:
    document = run_json("registry", "--ca", ca_dir, "--out", tmp_path / "reg")
    assert document["identity"] == "registry"
    cert = pki.load_certificate(document["files"]["certificate"])
    assert pki.peer_identity(cert) == "registry"
    assert pki.issued_by(cert, pki.load_certificate(ca_dir / "ca.crt"))
    assert mode(document["files"]["private_key"]) == 0o600
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ip_address("127.0.0.1")]

    custom = run_json(
        "registry",
        "--ca",
        ca_dir,
        "--out",
        tmp_path / "reg2",
        "--dns",
        "registry.example.org",
        "--dns",
        "registry",
        "--ip",
        "10.0.0.2",
    )
    cert = pki.load_certificate(custom["files"]["certificate"])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["registry.example.org", "registry"]
    assert san.get_values_for_type(x509.IPAddress) == [ip_address("10.0.0.2")]


def test_site_certificate_names_the_site(tmp_path: Path, ca_dir: Path) -> None:
    out = tmp_path / "site1"
    document = run_json("site", "--ca", ca_dir, "--site", SITE1, "--out", out, "--days", "10")
    assert document == {
        "identity": SITE1,
        "files": {"certificate": str(out / "site.crt"), "private_key": str(out / "site.key")},
    }
    site = pki.load_certified_key(out / "site.crt", out / "site.key")
    assert pki.peer_identity(site.certificate) == SITE1
    assert mode(out / "site.key") == 0o600
    assert mode(out / "site.crt") == 0o644


def test_party_writes_main_key_and_user_ca(tmp_path: Path) -> None:
    out = tmp_path / "p1"
    document = run_json("party", "--party", PARTY1, "--out", out)
    assert document["identity"] == PARTY1
    assert document["files"] == {
        "main_key": str(out / "party.key"),
        "public_key": str(out / "party.pub"),
        "user_ca_certificate": str(out / "user-ca.crt"),
        "user_ca_key": str(out / "user-ca.key"),
    }
    main_key = pki.load_party_private_key(out / "party.key")
    assert pki.load_party_public_key(out / "party.pub") == main_key.public_key()
    user_ca = pki.load_certified_key(out / "user-ca.crt", out / "user-ca.key")
    assert pki.user_ca_party(user_ca.certificate) == PARTY1
    assert mode(out / "party.key") == 0o600
    assert mode(out / "user-ca.key") == 0o600
    assert mode(out / "party.pub") == 0o644
    assert mode(out / "user-ca.crt") == 0o644


@pytest.mark.parametrize("role", ["admin", "user"])
def test_user_certificate_carries_name_party_and_role(
    tmp_path: Path, party_dir: Path, role: str
) -> None:
    out = tmp_path / "users"
    document = run_json(
        "user", "--party-dir", party_dir, "--name", "alice", "--role", role, "--out", out
    )
    assert document["user"] == "alice"
    assert document["role"] == role
    assert document["files"]["certificate"] == str(out / "alice.crt")
    assert mode(out / "alice.key") == 0o600
    # The browser bundle holds the same certificate and key, readable by its owner only.
    assert document["files"]["browser_bundle"] == str(out / "alice.p12")
    assert mode(out / "alice.p12") == 0o600
    bundle = pkcs12.load_pkcs12((out / "alice.p12").read_bytes(), None)
    assert bundle.cert is not None
    assert bundle.cert.certificate == pki.load_certificate(out / "alice.crt")
    assert (
        bundle.key is not None and bundle.key.public_key() == bundle.cert.certificate.public_key()
    )
    cert = pki.load_certificate(out / "alice.crt")
    identity = pki.user_identity(cert, issuer=pki.load_certificate(party_dir / "user-ca.crt"))
    assert identity == pki.UserIdentity(name="alice", party=PARTY1, role=Role(role))


def test_user_role_defaults_to_user(tmp_path: Path, party_dir: Path) -> None:
    run_json("user", "--party-dir", party_dir, "--name", "bob", "--out", tmp_path)
    assert pki.user_identity(pki.load_certificate(tmp_path / "bob.crt")).role is Role.USER


def test_overwrite_is_refused_then_allowed(tmp_path: Path) -> None:
    assert run("ca", "--out", tmp_path).exit_code == 0
    before = (tmp_path / "ca.key").read_bytes()
    refused = run("ca", "--out", tmp_path)
    assert refused.exit_code == 1
    assert str(tmp_path / "ca.key") in refused.stderr
    assert (tmp_path / "ca.key").read_bytes() == before
    assert run("ca", "--out", tmp_path, "--overwrite").exit_code == 0
    assert (tmp_path / "ca.key").read_bytes() != before
    assert mode(tmp_path / "ca.key") == 0o600


def test_party_refuses_to_write_any_file_when_one_exists(tmp_path: Path) -> None:
    (tmp_path / "user-ca.key").write_text("precious")
    result = run("party", "--party", PARTY1, "--out", tmp_path, "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "Conflict"
    assert error["details"] == {"paths": [str(tmp_path / "user-ca.key")]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["user-ca.key"]


def test_invalid_identifiers_are_exit_2_and_write_nothing(tmp_path: Path, ca_dir: Path) -> None:
    out = tmp_path / "out"
    result = run("site", "--ca", ca_dir, "--site", "site1", "--out", out)
    assert result.exit_code == 2
    assert "not a site identifier: 'site1'" in result.stderr
    assert run("party", "--party", SITE1, "--out", out).exit_code == 2
    assert run("registry", "--ca", ca_dir, "--out", out, "--ip", "nope").exit_code == 2
    assert run("registry", "--ca", ca_dir, "--out", out, "--dns", "a b").exit_code == 2
    assert not out.exists()


def test_invalid_user_name_or_role_is_exit_2(tmp_path: Path, party_dir: Path) -> None:
    result = run("user", "--party-dir", party_dir, "--name", "../x", "--out", tmp_path, "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["type"] == "InvalidInput"
    bad_role = run(
        "user", "--party-dir", party_dir, "--name", "x", "--role", "root", "--out", tmp_path
    )
    assert bad_role.exit_code == 2


def test_missing_or_malformed_ca_files_are_exit_2_naming_the_file(
    tmp_path: Path, ca_dir: Path
) -> None:
    missing = run("site", "--ca", tmp_path / "nowhere", "--site", SITE1, "--out", tmp_path / "s")
    assert missing.exit_code == 2
    assert str(tmp_path / "nowhere" / "ca.crt") in missing.stderr
    (ca_dir / "ca.key").write_text("garbage")
    malformed = run("site", "--ca", ca_dir, "--site", SITE1, "--out", tmp_path / "s")
    assert malformed.exit_code == 2
    assert str(ca_dir / "ca.key") in malformed.stderr


def test_user_needs_a_party_directory(tmp_path: Path, ca_dir: Path) -> None:
    result = run("user", "--party-dir", ca_dir, "--name", "alice", "--out", tmp_path)
    assert result.exit_code == 2
    assert "user-ca.crt" in result.stderr


def test_out_must_be_a_directory(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("")
    assert run("ca", "--out", target).exit_code == 2


def _subprocess(*args: str | Path) -> subprocess.CompletedProcess[str]:
    code = "from mahiru.cli.certs import certs_group; certs_group()"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_commands_exit_codes_in_a_real_process(tmp_path: Path) -> None:
    created = _subprocess("ca", "--out", tmp_path / "ca", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["files"]["private_key"] == str(tmp_path / "ca" / "ca.key")
    assert mode(tmp_path / "ca" / "ca.key") == 0o600

    again = _subprocess("ca", "--out", tmp_path / "ca")
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr

    bad = _subprocess("site", "--ca", tmp_path / "ca", "--site", "bogus", "--out", tmp_path / "s")
    assert bad.returncode == 2
    assert "bogus" in bad.stderr

    site = _subprocess("site", "--ca", tmp_path / "ca", "--site", SITE1, "--out", tmp_path / "s")
    assert site.returncode == 0, site.stderr
    assert pki.peer_identity(pki.load_certificate(tmp_path / "s" / "site.crt")) == SITE1
