"""The PKI: who certificates name, how keys are stored, and that TLS trusts the right CAs."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mahiru import pki
from mahiru.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from mahiru.pki import CertifiedKey, Role
from mahiru.pki import names as pki_names

SITE1 = "site:party1.example.org:site1"
PARTY1 = "party:party1.example.org:party1"
PARTY2 = "party:party2.example.org:party2"


@pytest.fixture(scope="module")
def network_ca() -> CertifiedKey:
    return pki.create_network_ca()


@pytest.fixture(scope="module")
def foreign_ca() -> CertifiedKey:
    return pki.create_network_ca()


@pytest.fixture(scope="module")
def site_cert(network_ca: CertifiedKey) -> CertifiedKey:
    return pki.issue_site_certificate(network_ca, SITE1)


@pytest.fixture(scope="module")
def registry_cert(network_ca: CertifiedKey) -> CertifiedKey:
    return pki.issue_registry_certificate(network_ca)


@pytest.fixture(scope="module")
def user_ca() -> CertifiedKey:
    return pki.create_user_ca(PARTY1)


def _extension(cert: x509.Certificate, kind: type[Any]) -> Any:
    return cert.extensions.get_extension_for_class(kind).value


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [SITE1, "site:a:b", "site:A_b.c-d:x"])
def test_check_site_id_accepts_site_ids(text: str) -> None:
    assert pki_names.check_site_id(text) == text


@pytest.mark.parametrize(
    "text", ["", "site", "site:a", "site:a:b:c", "site::b", "party:a:b", "site:a:b c", "site:a/b:c"]
)
def test_check_site_id_rejects_other_texts_naming_them(text: str) -> None:
    with pytest.raises(InvalidInput) as error:
        pki_names.check_site_id(text)
    assert repr(text) in error.value.message


def test_check_party_id() -> None:
    assert pki_names.check_party_id(PARTY1) == PARTY1
    with pytest.raises(InvalidInput, match="site:a:b"):
        pki_names.check_party_id("site:a:b")


def test_check_service_identity_accepts_registry_sites_and_parties_only() -> None:
    assert pki_names.check_service_identity("registry") == "registry"
    assert pki_names.check_service_identity(SITE1) == SITE1
    assert pki_names.check_service_identity(PARTY1) == PARTY1
    for text in ("party_category:a:b", "user:x", "site:a", "asset:a:b:c:d"):
        with pytest.raises(InvalidInput):
            pki_names.check_service_identity(text)


def test_party_client_certificate_names_the_party_for_client_auth_only() -> None:
    """A party's network client certificate carries its id and no server names."""
    ca = pki.create_network_ca()
    issued = pki.issue_party_client_certificate(ca, PARTY1)
    assert pki.peer_identity(issued.certificate) == PARTY1
    assert pki.issued_by(issued.certificate, ca.certificate)
    with pytest.raises(InvalidInput):
        pki.issue_party_client_certificate(ca, SITE1)


@pytest.mark.parametrize("name", ["alice", "bob.smith@example.org", "u1", "a" * 64, "x+y_z-w"])
def test_check_user_name_accepts(name: str) -> None:
    assert pki_names.check_user_name(name) == name


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "a:b", "a b", "a" * 65, "-x"])
def test_check_user_name_rejects(name: str) -> None:
    with pytest.raises(InvalidInput):
        pki_names.check_user_name(name)


def test_parse_role() -> None:
    assert pki_names.parse_role("admin") is Role.ADMIN
    assert pki_names.parse_role("user") is Role.USER
    with pytest.raises(InvalidInput, match="root"):
        pki_names.parse_role("root")


def test_check_dns_name() -> None:
    for name in ["localhost", "site1.example.org", "*.example.org", "mahiru_site"]:
        assert pki_names.check_dns_name(name) == name
    for bad in ["", "a..b", "-a.b", "a b", "a/b", "x" * 254]:
        with pytest.raises(InvalidInput):
            pki_names.check_dns_name(bad)


def test_parse_ip_address() -> None:
    assert pki_names.parse_ip_address("127.0.0.1") == ip_address("127.0.0.1")
    assert pki_names.parse_ip_address("::1") == ip_address("::1")
    with pytest.raises(InvalidInput, match="localhost"):
        pki_names.parse_ip_address("localhost")


# --- keys ----------------------------------------------------------------------------------


def test_tls_keys_are_ecdsa_p256_and_party_keys_ed25519() -> None:
    tls_key = pki.generate_tls_key()
    assert isinstance(tls_key.curve, ec.SECP256R1)
    assert isinstance(pki.generate_party_key(), ed25519.Ed25519PrivateKey)


def test_private_key_pem_round_trips() -> None:
    tls_key = pki.generate_tls_key()
    party_key = pki.generate_party_key()
    tls_pem = pki.private_key_pem(tls_key)
    assert tls_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pki.parse_tls_private_key(tls_pem).private_numbers() == tls_key.private_numbers()
    party_pem = pki.private_key_pem(party_key)
    parsed = pki.parse_party_private_key(party_pem)
    assert parsed.private_bytes_raw() == party_key.private_bytes_raw()


def test_public_key_pem_round_trips_from_private_or_public_key() -> None:
    key = pki.generate_party_key()
    text = pki.public_key_pem(key)
    assert text == pki.public_key_pem(key.public_key())
    assert text.startswith("-----BEGIN PUBLIC KEY-----")
    assert pki.parse_party_public_key(text) == key.public_key()
    assert pki.parse_party_public_key(text.encode()) == key.public_key()


def test_key_parsers_reject_the_wrong_kind_of_key_naming_the_source() -> None:
    tls_pem = pki.private_key_pem(pki.generate_tls_key())
    party_pem = pki.private_key_pem(pki.generate_party_key())
    with pytest.raises(InvalidInput, match="mykey"):
        pki.parse_party_private_key(tls_pem, source="mykey")
    with pytest.raises(InvalidInput, match="mykey"):
        pki.parse_tls_private_key(party_pem, source="mykey")
    ec_public = (
        pki.generate_tls_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InvalidInput, match="not an Ed25519 public key"):
        pki.parse_party_public_key(ec_public)


def test_key_parsers_reject_garbage_and_encrypted_keys() -> None:
    with pytest.raises(InvalidInput, match=r"k\.pem"):
        pki.parse_tls_private_key(b"not a key", source="k.pem")
    with pytest.raises(InvalidInput, match=r"k\.pub"):
        pki.parse_party_public_key("garbage", source="k.pub")
    encrypted = pki.generate_tls_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(InvalidInput, match="unencrypted"):
        pki.parse_tls_private_key(encrypted)


def test_certificate_pem_and_der_parse(site_cert: CertifiedKey) -> None:
    cert = site_cert.certificate
    pem = pki.certificate_pem(cert)
    assert pki.parse_certificate(pem) == cert
    assert pki.parse_certificate(pem.encode()) == cert
    assert pki.parse_certificate(cert.public_bytes(serialization.Encoding.DER)) == cert
    with pytest.raises(InvalidInput, match="request field"):
        pki.parse_certificate(b"junk", source="request field")


# --- certificates --------------------------------------------------------------------------


def test_network_ca_is_a_self_signed_ca_valid_ten_years(network_ca: CertifiedKey) -> None:
    cert = network_ca.certificate
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Mahiru network CA"
    assert _extension(cert, x509.BasicConstraints).ca is True
    assert _extension(cert, x509.KeyUsage).key_cert_sign is True
    assert pki.issued_by(cert, cert)
    lifetime = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=3649) < lifetime <= timedelta(days=3650)


def test_validity_days_and_start_time_are_configurable(network_ca: CertifiedKey) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    ca = pki.create_network_ca("Test CA", days=30, now=start)
    assert ca.certificate.not_valid_after_utc == start + timedelta(days=30)
    # Certificates start a little early, for peers whose clock is behind.
    assert ca.certificate.not_valid_before_utc < start
    site = pki.issue_site_certificate(network_ca, SITE1, days=5, now=start)
    assert site.certificate.not_valid_after_utc == start + timedelta(days=5)
    with pytest.raises(InvalidInput, match="at least one day"):
        pki.create_network_ca(days=0)


def test_site_certificate_names_the_site_and_serves_both_ways(
    network_ca: CertifiedKey, site_cert: CertifiedKey
) -> None:
    cert = site_cert.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == SITE1
    assert cert.issuer == network_ca.certificate.subject
    assert pki.issued_by(cert, network_ca.certificate)
    san = _extension(cert, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"mahiru:{SITE1}"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ip_address("127.0.0.1")]
    usages = list(_extension(cert, x509.ExtendedKeyUsage))
    assert usages == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert _extension(cert, x509.BasicConstraints).ca is False
    lifetime = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=729) < lifetime <= timedelta(days=730)


def test_site_certificate_takes_the_callers_names(network_ca: CertifiedKey) -> None:
    issued = pki.issue_site_certificate(
        network_ca,
        SITE1,
        dns_names=["site1.example.org", "site1"],
        ip_addresses=["10.0.0.1", "::1"],
    )
    san = _extension(issued.certificate, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["site1.example.org", "site1"]
    assert san.get_values_for_type(x509.IPAddress) == [ip_address("10.0.0.1"), ip_address("::1")]


def test_site_certificate_rejects_bad_input(network_ca: CertifiedKey) -> None:
    with pytest.raises(InvalidInput, match="not a site identifier"):
        pki.issue_site_certificate(network_ca, PARTY1)
    with pytest.raises(InvalidInput, match="DNS name"):
        pki.issue_site_certificate(network_ca, SITE1, dns_names=["bad name"])
    with pytest.raises(InvalidInput, match="IP address"):
        pki.issue_site_certificate(network_ca, SITE1, ip_addresses=["300.1.1.1"])
    with pytest.raises(InvalidInput, match="sequences"):
        pki.issue_site_certificate(network_ca, SITE1, dns_names="localhost")


def test_long_site_id_keeps_the_full_identity_in_the_uri(network_ca: CertifiedKey) -> None:
    long_id = f"site:{'n' * 60}.example.org:site1"
    issued = pki.issue_site_certificate(network_ca, long_id)
    assert pki.peer_identity(issued.certificate) == long_id
    common_name = issued.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
    assert common_name.value == "site1"


def test_registry_certificate_names_the_registry(registry_cert: CertifiedKey) -> None:
    cert = registry_cert.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "registry"
    assert pki.peer_identity(cert) == "registry"


def test_user_ca_names_its_party(user_ca: CertifiedKey) -> None:
    cert = user_ca.certificate
    assert cert.subject == cert.issuer
    assert _extension(cert, x509.BasicConstraints).ca is True
    assert pki.user_ca_party(cert) == PARTY1
    with pytest.raises(InvalidInput, match="not a party identifier"):
        pki.create_user_ca(SITE1)


def test_party_credentials_hold_a_main_key_and_user_ca() -> None:
    credentials = pki.create_party_credentials(PARTY2, days=100)
    assert isinstance(credentials.main_key, ed25519.Ed25519PrivateKey)
    assert pki.user_ca_party(credentials.user_ca.certificate) == PARTY2
    remaining = credentials.user_ca.certificate.not_valid_after_utc - datetime.now(UTC)
    assert remaining <= timedelta(days=100)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.USER, Role.REVIEWER, "admin", "reviewer"])
def test_user_certificate_role_round_trips(user_ca: CertifiedKey, role: Role | str) -> None:
    issued = pki.issue_user_certificate(user_ca, "alice", role)
    identity = pki.user_identity(issued.certificate, issuer=user_ca.certificate)
    assert identity == pki.UserIdentity(name="alice", party=PARTY1, role=Role(role))
    assert identity.is_admin == (Role(role) is Role.ADMIN)
    assert identity.is_reviewer == (Role(role) is Role.REVIEWER)
    assert list(_extension(issued.certificate, x509.ExtendedKeyUsage)) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]


def test_user_certificate_rejects_bad_names_and_roles(user_ca: CertifiedKey) -> None:
    with pytest.raises(InvalidInput, match="user name"):
        pki.issue_user_certificate(user_ca, "../evil", Role.USER)
    with pytest.raises(InvalidInput, match="not a role"):
        pki.issue_user_certificate(user_ca, "alice", "root")


def test_user_certificate_needs_a_user_ca(network_ca: CertifiedKey) -> None:
    with pytest.raises(InvalidInput):
        pki.issue_user_certificate(network_ca, "alice", Role.USER)


# --- identity ------------------------------------------------------------------------------


def test_peer_identity_reads_objects_der_and_pem(site_cert: CertifiedKey) -> None:
    cert = site_cert.certificate
    assert pki.peer_identity(cert) == SITE1
    assert pki.peer_identity(cert.public_bytes(serialization.Encoding.DER)) == SITE1
    assert pki.peer_identity(pki.certificate_pem(cert)) == SITE1


def test_peer_identity_refuses_certificates_without_a_service_identity(
    network_ca: CertifiedKey, user_ca: CertifiedKey
) -> None:
    user = pki.issue_user_certificate(user_ca, "alice", Role.ADMIN)
    for cert in [user.certificate, network_ca.certificate, user_ca.certificate]:
        with pytest.raises(Unauthenticated, match="no Mahiru service identity"):
            pki.peer_identity(cert)


def test_user_identity_refuses_service_certificates(site_cert: CertifiedKey) -> None:
    with pytest.raises(Unauthenticated, match="not a Mahiru user certificate"):
        pki.user_identity(site_cert.certificate)


def test_user_identity_checks_the_issuing_user_ca(user_ca: CertifiedKey) -> None:
    other_ca = pki.create_user_ca(PARTY2)
    alice = pki.issue_user_certificate(user_ca, "alice", Role.USER)
    with pytest.raises(Unauthenticated, match="not issued by"):
        pki.user_identity(alice.certificate, issuer=other_ca.certificate)
    # Without an issuer the claims are read as written; TLS must have verified the chain.
    assert pki.user_identity(alice.certificate).party == PARTY1


def test_user_ca_party_refuses_leaf_certificates(site_cert: CertifiedKey) -> None:
    with pytest.raises(InvalidInput, match="not a CA"):
        pki.user_ca_party(site_cert.certificate)


def test_issued_by(
    network_ca: CertifiedKey, foreign_ca: CertifiedKey, site_cert: CertifiedKey
) -> None:
    assert pki.issued_by(site_cert.certificate, network_ca.certificate)
    # Same subject name, different key: the signature decides.
    assert network_ca.certificate.subject == foreign_ca.certificate.subject
    assert not pki.issued_by(site_cert.certificate, foreign_ca.certificate)


# --- files ---------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o022, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    yield int(request.param)
    os.umask(previous)


def test_saved_files_have_exact_modes_whatever_the_umask(
    tmp_path: Path, site_cert: CertifiedKey, umask: int
) -> None:
    cert_path, key_path = pki.save_certified_key(
        tmp_path / "site.crt", tmp_path / "site.key", site_cert
    )
    party_key = pki.generate_party_key()
    party_path = pki.save_private_key(tmp_path / "party.key", party_key)
    public_path = pki.save_public_key(tmp_path / "party.pub", party_key)
    assert _mode(key_path) == 0o600
    assert _mode(party_path) == 0o600
    assert _mode(cert_path) == 0o644
    assert _mode(public_path) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "party.key",
        "party.pub",
        "site.crt",
        "site.key",
    ]


def test_private_keys_are_created_0600_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is opened with mode 0600, so it is never world-readable, even briefly."""
    modes: list[int] = []
    real_open = os.open

    def recording_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        modes.append(mode)
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    pki.save_private_key(tmp_path / "k.key", pki.generate_tls_key())
    assert modes == [0o600]


def test_files_round_trip(tmp_path: Path, site_cert: CertifiedKey) -> None:
    pki.save_certified_key(tmp_path / "site.crt", tmp_path / "site.key", site_cert)
    loaded = pki.load_certified_key(tmp_path / "site.crt", tmp_path / "site.key")
    assert loaded.certificate == site_cert.certificate
    assert loaded.private_key.private_numbers() == site_cert.private_key.private_numbers()
    assert pki.load_certificate(tmp_path / "site.crt") == site_cert.certificate
    assert pki.load_tls_private_key(tmp_path / "site.key").private_numbers() == (
        site_cert.private_key.private_numbers()
    )
    party_key = pki.generate_party_key()
    pki.save_private_key(tmp_path / "party.key", party_key)
    pki.save_public_key(tmp_path / "party.pub", party_key.public_key())
    loaded_key = pki.load_party_private_key(tmp_path / "party.key")
    assert loaded_key.private_bytes_raw() == party_key.private_bytes_raw()
    assert pki.load_party_public_key(tmp_path / "party.pub") == party_key.public_key()
    assert pki.save_certificate(tmp_path / "again.crt", site_cert.certificate).exists()


def test_overwrite_is_refused_unless_asked(tmp_path: Path, site_cert: CertifiedKey) -> None:
    key_path = tmp_path / "site.key"
    pki.save_private_key(key_path, site_cert.private_key)
    before = key_path.read_bytes()
    other = pki.generate_tls_key()
    with pytest.raises(Conflict) as error:
        pki.save_private_key(key_path, other)
    assert str(key_path) in error.value.message
    assert error.value.details == {"paths": [str(key_path)]}
    assert key_path.read_bytes() == before
    pki.save_private_key(key_path, other, overwrite=True)
    assert pki.load_tls_private_key(key_path).private_numbers() == other.private_numbers()
    assert _mode(key_path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["site.key"]


def test_overwrite_replaces_a_world_readable_file_with_a_private_one(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_text("old")
    path.chmod(0o666)
    pki.save_private_key(path, pki.generate_tls_key(), overwrite=True)
    assert _mode(path) == 0o600


def test_certified_key_pair_is_written_all_or_nothing(
    tmp_path: Path, site_cert: CertifiedKey
) -> None:
    (tmp_path / "site.crt").write_text("existing")
    with pytest.raises(Conflict, match=r"site\.crt"):
        pki.save_certified_key(tmp_path / "site.crt", tmp_path / "site.key", site_cert)
    assert not (tmp_path / "site.key").exists()


def test_ensure_can_write_names_every_existing_path(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("")
    (tmp_path / "b").write_text("")
    paths = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    with pytest.raises(Conflict) as error:
        pki.ensure_can_write(paths)
    assert error.value.details == {"paths": [str(tmp_path / "a"), str(tmp_path / "b")]}
    pki.ensure_can_write(paths, overwrite=True)


def test_write_file_into_a_missing_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="missing"):
        pki.write_file(tmp_path / "missing" / "x", b"", mode=0o644)


def test_loading_malformed_files_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n")
    loaders = [
        pki.load_certificate,
        pki.load_tls_private_key,
        pki.load_party_private_key,
        pki.load_party_public_key,
    ]
    for load in loaders:
        with pytest.raises(InvalidInput) as error:
            load(bad)
        assert str(bad) in error.value.message


def test_loading_missing_files_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"nothing\.crt"):
        pki.load_certificate(tmp_path / "nothing.crt")


def test_loading_a_key_that_does_not_match_its_certificate_fails(
    tmp_path: Path, site_cert: CertifiedKey
) -> None:
    pki.save_certificate(tmp_path / "site.crt", site_cert.certificate)
    pki.save_private_key(tmp_path / "site.key", pki.generate_tls_key())
    with pytest.raises(InvalidInput, match="does not match"):
        pki.load_certified_key(tmp_path / "site.crt", tmp_path / "site.key")


# --- TLS -----------------------------------------------------------------------------------


@dataclass
class Handshake:
    """What each end of one loopback TLS connection saw."""

    server_peer: bytes | None = None
    server_error: BaseException | None = None
    client_data: bytes | None = None
    client_error: BaseException | None = None


def _context(
    purpose: int, own: CertifiedKey, trusted: list[CertifiedKey], directory: Path
) -> ssl.SSLContext:
    directory.mkdir()
    cert_path, key_path = pki.save_certified_key(directory / "own.crt", directory / "own.key", own)
    context = ssl.SSLContext(purpose)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(cert_path, key_path)
    context.load_verify_locations(
        cadata="".join(pki.certificate_pem(ca.certificate) for ca in trusted)
    )
    return context


def _handshake(
    tmp_path: Path,
    *,
    server: CertifiedKey,
    server_trusts: list[CertifiedKey],
    client: CertifiedKey,
    client_trusts: list[CertifiedKey],
) -> Handshake:
    """Connect a client to a server over loopback TLS, both requiring certificates."""
    server_context = _context(ssl.PROTOCOL_TLS_SERVER, server, server_trusts, tmp_path / "srv")
    client_context = _context(ssl.PROTOCOL_TLS_CLIENT, client, client_trusts, tmp_path / "cli")
    result = Handshake()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            connection.settimeout(10)
            with server_context.wrap_socket(connection, server_side=True) as tls:
                result.server_peer = tls.getpeercert(binary_form=True)
                tls.sendall(b"ok")
        except (OSError, ssl.SSLError) as error:
            result.server_error = error

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            # With TLS 1.3 the server judges the client certificate after the client's
            # handshake returns, so a rejection shows up on the first read.
            result.client_data = tls.recv(2)
    except (OSError, ssl.SSLError) as error:
        result.client_error = error
    finally:
        thread.join(timeout=20)
        listener.close()
    return result


def test_tls_handshake_between_certificates_of_one_ca_identifies_the_site(
    tmp_path: Path,
    network_ca: CertifiedKey,
    registry_cert: CertifiedKey,
    site_cert: CertifiedKey,
) -> None:
    result = _handshake(
        tmp_path,
        server=registry_cert,
        server_trusts=[network_ca],
        client=site_cert,
        client_trusts=[network_ca],
    )
    assert result.server_error is None and result.client_error is None
    assert result.client_data == b"ok"
    assert result.server_peer is not None
    assert pki.peer_identity(result.server_peer) == SITE1


def test_tls_handshake_rejects_a_client_from_a_foreign_ca(
    tmp_path: Path,
    network_ca: CertifiedKey,
    foreign_ca: CertifiedKey,
    registry_cert: CertifiedKey,
) -> None:
    intruder = pki.issue_site_certificate(foreign_ca, SITE1)
    result = _handshake(
        tmp_path,
        server=registry_cert,
        server_trusts=[network_ca],
        client=intruder,
        client_trusts=[network_ca],
    )
    assert isinstance(result.server_error, ssl.SSLError)
    assert result.server_peer is None
    assert result.client_data != b"ok"


def test_tls_handshake_rejects_a_server_from_a_foreign_ca(
    tmp_path: Path, network_ca: CertifiedKey, foreign_ca: CertifiedKey, site_cert: CertifiedKey
) -> None:
    impostor = pki.issue_registry_certificate(foreign_ca)
    result = _handshake(
        tmp_path,
        server=impostor,
        server_trusts=[network_ca],
        client=site_cert,
        client_trusts=[network_ca],
    )
    assert isinstance(result.client_error, ssl.SSLCertVerificationError)
    assert result.server_peer is None


def test_tls_user_certificate_identifies_the_user_to_a_site(
    tmp_path: Path, network_ca: CertifiedKey, site_cert: CertifiedKey, user_ca: CertifiedKey
) -> None:
    alice = pki.issue_user_certificate(user_ca, "alice", Role.ADMIN)
    result = _handshake(
        tmp_path,
        server=site_cert,
        server_trusts=[user_ca],
        client=alice,
        client_trusts=[network_ca],
    )
    assert result.client_data == b"ok"
    assert result.server_peer is not None
    identity = pki.user_identity(result.server_peer, issuer=user_ca.certificate)
    assert identity == pki.UserIdentity(name="alice", party=PARTY1, role=Role.ADMIN)


def test_tls_site_rejects_users_of_another_partys_ca(
    tmp_path: Path, network_ca: CertifiedKey, site_cert: CertifiedKey, user_ca: CertifiedKey
) -> None:
    mallory = pki.issue_user_certificate(pki.create_user_ca(PARTY2), "mallory", Role.ADMIN)
    result = _handshake(
        tmp_path,
        server=site_cert,
        server_trusts=[user_ca],
        client=mallory,
        client_trusts=[network_ca],
    )
    assert isinstance(result.server_error, ssl.SSLError)
    assert result.client_data != b"ok"
