"""The service images' way of running the apps: Gunicorn with uvicorn workers behind a proxy.

These run `gunicorn --config deploy/service/gunicorn.conf.py` for real on
loopback, the way the mahiru-registry image does, with the loopback address
as the trusted proxy, and check what the deployment relies on: the app
factories in mahiru.asgi, JSON logs on stdout, and that the client
certificate header is believed only as the proxy sends it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from mahiru.asgi import registry
from mahiru.errors import InvalidInput
from mahiru.pki import (
    certificate_pem,
    create_network_ca,
    issue_party_client_certificate,
    save_certificate,
)

pytest.importorskip("gunicorn")
pytest.importorskip("uvicorn_worker")

# serial: the deadline tests time a real Gunicorn's answers (see pyproject.toml).
pytestmark = [pytest.mark.integration, pytest.mark.serial]

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "deploy" / "service" / "gunicorn.conf.py"
PARTY = "party:party1.mahiru.example.org:party1"
#: The head deadline the served registry keeps.
SLOW_HEAD_SECONDS = 2
#: How many refusals of one identity the served registry answers before 429.
REFUSED_BURST = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A network CA on disk, a client certificate it issued, and one of another CA."""
    folder = tmp_path_factory.mktemp("pki")
    ca = create_network_ca("test network CA")
    save_certificate(folder / "ca.crt", ca.certificate)
    client = issue_party_client_certificate(ca, PARTY)
    stranger = issue_party_client_certificate(create_network_ca("another CA"), PARTY)
    return {
        "folder": folder,
        "client_pem": certificate_pem(client.certificate),
        "stranger_pem": certificate_pem(stranger.certificate),
    }


def _registry_config(folder: Path, trusted: list[str]) -> Path:
    path = folder / f"registry-{len(trusted)}.yaml"
    path.write_text(
        json.dumps(
            {
                "tls": {"network_ca": str(folder / "ca.crt"), "trusted_proxies": trusted},
                "database_url": f"sqlite:///{folder}/registry.db",
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def served(network: dict[str, object]) -> Iterator[tuple[str, Path]]:
    """The registry under Gunicorn as the image runs it, and the file its stdout goes to."""
    folder = network["folder"]
    assert isinstance(folder, Path)
    port = _free_port()
    env = {
        **os.environ,
        "MAHIRU_SERVICE": "registry",
        "MAHIRU_CONFIG_FILE": str(_registry_config(folder, ["127.0.0.1"])),
        "MAHIRU_BIND": f"127.0.0.1:{port}",
        # Short deadlines, for the test of slow callers (the others are quick).
        "MAHIRU_CONFIG__CALLERS__HEAD_TIMEOUT_SECONDS": str(SLOW_HEAD_SECONDS),
        "MAHIRU_CONFIG__CALLERS__BODY_IDLE_TIMEOUT_SECONDS": "1",
        "MAHIRU_CONFIG__CALLERS__BODY_MIN_BYTES_PER_SECOND": "200",
        "MAHIRU_CONFIG__CALLERS__REFUSED_BURST": str(REFUSED_BURST),
        "MAHIRU_CONFIG__CALLERS__REFUSED_PER_SECOND": "0.001",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    stdout = folder / "gunicorn.out"
    with stdout.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                # One request waits for the worker to boot: each one that timed out would
                # still be answered later, a refusal counted against the burst below.
                httpx.get(f"{url}/health", timeout=30)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(stdout.read_text()) from None
                time.sleep(0.1)
        yield url, stdout
    finally:
        process.terminate()
        process.wait(timeout=20)


def _as_proxy(pem: str, verify: str = "SUCCESS") -> dict[str, str]:
    """The headers nginx sets: $ssl_client_escaped_cert and $ssl_client_verify."""
    return {"X-Mahiru-Client-Cert": quote(pem, safe=""), "X-Mahiru-Client-Verify": verify}


def test_the_proxy_passes_on_a_verified_certificate(
    served: tuple[str, Path], network: dict[str, object]
) -> None:
    """A certificate of the network CA, forwarded by the trusted proxy, is let in."""
    url, _ = served
    response = httpx.get(f"{url}/health", headers=_as_proxy(str(network["client_pem"])))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("what", "headers"),
    [
        ("no certificate", {}),
        ("a certificate nginx could not verify", "FAILED:certificate has expired"),
        ("a certificate of another CA", "stranger"),
    ],
)
def test_callers_without_a_good_certificate_are_refused(
    served: tuple[str, Path], network: dict[str, object], what: str, headers: object
) -> None:
    """No certificate, a failed verification or a foreign CA: 401 in the one error shape."""
    url, _ = served
    if headers == "stranger":
        sent = _as_proxy(str(network["stranger_pem"]))
    elif isinstance(headers, str):
        sent = _as_proxy(str(network["client_pem"]), verify=headers)
    else:
        sent = {}
    response = httpx.get(f"{url}/health", headers=sent)
    assert response.status_code == 401, what
    assert set(response.json()["error"]) == {"type", "message", "details"}


@pytest.mark.parametrize("what", ["a head that never ends", "a trickled body"])
def test_the_worker_sheds_slow_callers_at_the_deadlines(
    served: tuple[str, Path], network: dict[str, object], what: str
) -> None:
    """Under Gunicorn too, a head or body trickled in is cut (a body with 408), not held."""
    if what == "a trickled body":  # from a caller the proxy vouches for, to a route that reads
        proxied = "".join(f"{k}: {v}\r\n" for k, v in _as_proxy(str(network["client_pem"])).items())
        start = (
            "POST /registrations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"{proxied}Content-Length: 100000\r\n\r\n{{"
        ).encode()
        piece = b" "
    else:
        start, piece = b"GET /health HTTP/1.1\r\nHost: x\r\n", b"X-a: b\r\n"
    url, _ = served
    host, port = url.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=1) as sock:
        sock.sendall(start)
        deadline = time.monotonic() + SLOW_HEAD_SECONDS + 15
        while time.monotonic() < deadline:
            try:
                sock.sendall(piece)
                chunk = sock.recv(65536)  # waits at most the socket's timeout
            except TimeoutError:
                continue
            except OSError:
                break  # the worker cut the connection
            if not chunk:
                break
            answer += chunk
        else:
            raise AssertionError(f"{what}: still open after {SLOW_HEAD_SECONDS + 15} s")
    if what == "a trickled body":
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    else:
        assert answer == b"", answer[:200]


def test_an_identity_refused_too_often_is_answered_429(served: tuple[str, Path]) -> None:
    """The registry answers 429 with Retry-After to a refused certificate beyond its burst;
    another refused certificate still gets its own 401."""
    url, _ = served
    flood, other = (
        certificate_pem(issue_party_client_certificate(create_network_ca(name), PARTY).certificate)
        for name in ("flood CA", "other CA")
    )
    answers = [httpx.get(f"{url}/health", headers=_as_proxy(flood)) for _ in range(8)]
    assert [a.status_code for a in answers[:REFUSED_BURST]] == [401] * REFUSED_BURST
    for answer in answers[REFUSED_BURST:]:
        assert answer.status_code == 429 and int(answer.headers["Retry-After"]) >= 1
        assert answer.json()["error"]["type"] == "RateLimited"
    assert httpx.get(f"{url}/health", headers=_as_proxy(other)).status_code == 401


def test_every_log_line_is_json(served: tuple[str, Path]) -> None:
    """Gunicorn's own lines and the app's are JSON objects on stdout, none repeated."""
    _, stdout = served
    lines = [line for line in stdout.read_text().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]
    assert any(event["logger"].startswith("gunicorn") for event in events)
    assert any(event["logger"] == "mahiru.access" for event in events)
    assert not any(event["logger"] == "uvicorn.access" for event in events)
    assert len(set(lines)) == len(lines)


def test_the_factory_needs_the_config_file_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without MAHIRU_CONFIG_FILE the factory says which variable to set."""
    monkeypatch.delenv("MAHIRU_CONFIG_FILE", raising=False)
    with pytest.raises(InvalidInput, match="MAHIRU_CONFIG_FILE"):
        registry()


def test_the_factory_refuses_a_config_without_trusted_proxies(
    monkeypatch: pytest.MonkeyPatch, network: dict[str, object]
) -> None:
    """Behind Gunicorn nobody could be authenticated without a trusted proxy: refused."""
    folder = network["folder"]
    assert isinstance(folder, Path)
    monkeypatch.setenv("MAHIRU_CONFIG_FILE", str(_registry_config(folder, [])))
    with pytest.raises(InvalidInput, match="trusted_proxies"):
        registry()
