"""The HTTP helper of the clients: transport failures become Unavailable with a clean URL."""

from __future__ import annotations

import httpx
import pytest
from tests.support.servers import free_port

from mahiru.client.http import request
from mahiru.errors import Unavailable


def test_a_refused_connection_is_unavailable_and_names_the_url() -> None:
    port = free_port()  # nothing listens there
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}/internal", timeout=5)
    with client, pytest.raises(Unavailable) as raised:
        request(client, "GET", "/jobs")
    assert raised.value.message.startswith(f"http://127.0.0.1:{port}/internal/jobs: ConnectError")
