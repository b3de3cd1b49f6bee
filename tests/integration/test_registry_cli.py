"""`mahiru serve registry` and `mahiru register` as processes, with `mahiru certs` certificates."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from tests.support.servers import free_port

from mahiru.cli.main import cli

pytestmark = pytest.mark.integration

PARTY1 = "party:p1.example.org:party1"
SITE1 = "site:p1.example.org:site1"
MAHIRU = str(Path(sys.executable).parent / "mahiru")


def mahiru(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `mahiru` command."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MAHIRU_")}
    environment.update(env or {})
    return subprocess.run(
        [MAHIRU, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )


def in_process(*args: str | Path) -> Result:
    """Run a `mahiru` command in this process (for commands that never start a server)."""
    return CliRunner().invoke(cli, [str(arg) for arg in args], catch_exceptions=False)


def ok(*args: str | Path, env: dict[str, str] | None = None) -> Any:
    """Run `mahiru ... --json`, expect success, and return the parsed output."""
    result = mahiru(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates of a network with one party and one site, made by `mahiru certs`."""
    if not Path(MAHIRU).exists():
        pytest.skip(f"the mahiru command is not installed next to {sys.executable}")
    pki = tmp_path_factory.mktemp("network")
    for command in (
        ["ca", "--out", pki / "ca"],
        ["registry", "--ca", pki / "ca", "--out", pki / "registry"],
        ["party", "--party", PARTY1, "--out", pki / "party1"],
        ["party-client", "--ca", pki / "ca", "--party", PARTY1, "--out", pki / "party1"],
        ["site", "--ca", pki / "ca", "--site", SITE1, "--out", pki / "site1"],
    ):
        result = in_process("certs", *command)
        assert result.exit_code == 0, result.output
    return pki


def write_config(network: Path, directory: Path, port: int) -> Path:
    config = {
        "listen": {"host": "127.0.0.1", "port": port},
        "tls": {
            "cert": str(network / "registry" / "registry.crt"),
            "key": str(network / "registry" / "registry.key"),
            "network_ca": str(network / "ca" / "ca.crt"),
        },
        "database_url": f"sqlite:///{directory / 'registry.db'}",
        "log_level": "info",
    }
    path = directory / "registry.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def running_registry(config: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    """`mahiru serve registry` in the background, until the block ends (then killed if alive).

    Client-side variables like MAHIRU_CERT are set on purpose: they must not
    disturb the server's configuration.
    """
    environment = dict(os.environ)
    environment.update(MAHIRU_CERT="/nonexistent.crt", MAHIRU_REGISTRY_URL="https://x")
    process = subprocess.Popen(
        [MAHIRU, "serve", "registry", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                out, err = process.communicate()
                pytest.fail(f"the registry exited with {process.returncode}:\n{err}\n{out}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                pytest.fail("the registry did not start listening within 30 s")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def stop(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """SIGTERM the server, expect a clean exit, and return its JSON log lines."""
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err + out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_serve_register_show_and_stop(network: Path, tmp_path: Path) -> None:
    """Party and site registered by the CLI are shown and kept; SIGTERM exits 0."""
    port = free_port()
    config = write_config(network, tmp_path, port)
    url = f"https://127.0.0.1:{port}"
    party = network / "party1"
    connection = [
        "--registry",
        url,
        "--cert",
        party / "party-client.crt",
        "--key",
        party / "party-client.key",
        "--ca",
        network / "ca" / "ca.crt",
    ]
    with running_registry(config, port) as server:
        registered = ok("register", "party", *connection, "--party-dir", party)
        assert registered["version"] == 1
        assert registered["registered"]["id"] == PARTY1

        # The connection can come from the environment instead.
        environment = {
            "MAHIRU_REGISTRY_URL": url,
            "MAHIRU_CERT": str(party / "party-client.crt"),
            "MAHIRU_KEY": str(party / "party-client.key"),
            "MAHIRU_CA": str(network / "ca" / "ca.crt"),
            "MAHIRU_PARTY_DIR": str(party),
        }
        site = ok(
            "register",
            "site",
            "--site",
            SITE1,
            "--site-cert",
            network / "site1" / "site.crt",
            "--internal-url",
            "https://127.0.0.1:9001",
            "--external-url",
            "https://127.0.0.1:9002/external",
            "--no-runner",
            env=environment,
        )
        assert site["version"] == 2

        shown = ok("register", "show", env=environment)
        assert shown["version"] == 2
        assert [p["id"] for p in shown["parties"]] == [PARTY1]
        [record] = shown["sites"]
        assert record["id"] == SITE1
        assert record["endpoints"] == {
            "internal": "https://127.0.0.1:9001",
            "external": "https://127.0.0.1:9002/external",
        }
        assert (record["has_store"], record["has_runner"]) == (True, False)

        text = mahiru("register", "show", env=environment)
        assert text.returncode == 0
        assert SITE1 in text.stdout
        assert "store" in text.stdout

        # A site's certificate cannot register the party: denied, exit 3, message on stderr.
        denied = mahiru(
            "register",
            "party",
            env={
                **environment,
                "MAHIRU_CERT": str(network / "site1" / "site.crt"),
                "MAHIRU_KEY": str(network / "site1" / "site.key"),
            },
        )
        assert denied.returncode == 3
        assert "only party:p1.example.org:party1 itself" in denied.stderr

        logs = stop(server)
    events = [entry["event"] for entry in logs]
    assert "registry listening" in events
    assert "registry stopped" in events
    access = [entry for entry in logs if entry["logger"] == "mahiru.access"]
    assert any(entry["caller"] == PARTY1 and entry["status"] == 200 for entry in access)

    with running_registry(config, port) as server:
        shown_again = ok("register", "show", env=environment)
        assert shown_again == shown
        removed = ok("register", "remove-site", "--site", SITE1, env=environment)
        assert removed == {"removed": SITE1, "version": 3}
        stop(server)


def test_a_bad_configuration_exits_2_with_a_clear_message(network: Path, tmp_path: Path) -> None:
    """Missing files, unknown keys and unusable TLS settings are refused before serving."""
    missing = in_process("serve", "registry", "--config", tmp_path / "nope.yaml")
    assert missing.exit_code == 2
    assert "nope.yaml" in missing.stderr

    config = write_config(network, tmp_path, free_port())
    data = yaml.safe_load(config.read_text())
    data["colour"] = "blue"
    config.write_text(yaml.safe_dump(data))
    unknown = in_process("serve", "registry", "--config", config)
    assert unknown.exit_code == 2
    assert "colour" in unknown.stderr

    del data["colour"]
    del data["tls"]["cert"]
    config.write_text(yaml.safe_dump(data))
    half = in_process("serve", "registry", "--config", config)
    assert half.exit_code == 2
    assert "tls.cert and tls.key" in half.stderr

    del data["tls"]["key"]
    config.write_text(yaml.safe_dump(data))
    nobody = in_process("serve", "registry", "--config", config)
    assert nobody.exit_code == 2
    assert "no caller" in nobody.stderr


def test_a_port_in_use_exits_4(network: Path, tmp_path: Path) -> None:
    """When the address is taken the registry says so and exits as unavailable."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = mahiru("serve", "registry", "--config", write_config(network, tmp_path, port))
    assert result.returncode == 4
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_register_needs_a_reachable_registry(network: Path) -> None:
    """An unreachable registry is exit 4 with the URL in the message."""
    party = network / "party1"
    result = mahiru(
        "register",
        "show",
        "--registry",
        f"https://127.0.0.1:{free_port()}",
        "--cert",
        party / "party-client.crt",
        "--key",
        party / "party-client.key",
        "--ca",
        network / "ca" / "ca.crt",
    )
    assert result.returncode == 4
    assert "127.0.0.1" in result.stderr
