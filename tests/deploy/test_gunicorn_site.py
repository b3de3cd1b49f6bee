"""A site under the images' Gunicorn configuration with MAHIRU_WORKERS=2: two web workers
loading `mahiru.asgi:site_web()` and one loops process beside them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml

from tests.support.db import sqlite_urls
from tests.support.sites import may_access, network, registered_elsewhere

pytest.importorskip("gunicorn")
pytest.importorskip("uvicorn_worker")

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "deploy" / "service" / "gunicorn.conf.py"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_site_with_two_workers_runs_its_loops_once_beside_them(tmp_path: Path) -> None:
    """The loops process replicates the registry; a rule added through one worker is
    listed by the other; metrics add up both; SIGTERM stops every process."""
    urls = sqlite_urls(tmp_path)
    with network(tmp_path, urls, names=("p2",)) as net:
        site = registered_elsewhere(net, tmp_path, urls)
        party = site.party
        config = site.config.model_dump(mode="json", exclude_none=True)
        config["tls"]["trusted_proxies"] = ["127.0.0.1"]
        config_path = tmp_path / "site.yaml"
        config_path.write_text(yaml.safe_dump(config))
        port = _free_port()
        env = {
            **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
            "MAHIRU_SERVICE": "site",
            "MAHIRU_WORKERS": "2",
            "MAHIRU_CONFIG_FILE": str(config_path),
            "MAHIRU_BIND": f"127.0.0.1:{port}",
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        }
        out = tmp_path / "gunicorn.out"
        with out.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        url = f"http://127.0.0.1:{port}/internal"
        admin = {
            "X-Mahiru-Client-Cert": quote(party.admin.cert.read_text(), safe=""),
            "X-Mahiru-Client-Verify": "SUCCESS",
        }
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, out.read_text()[-3000:]
                assert time.monotonic() < deadline, out.read_text()[-3000:]
                try:
                    status = httpx.get(f"{url}/status", headers=admin, timeout=5)
                    sources = {s["source"]: s for s in status.json().get("replication", [])}
                    if sources.get("registry", {}).get("version", 0) > 0:
                        break
                except (httpx.TransportError, json.JSONDecodeError):
                    pass
                time.sleep(0.2)
            rule = party.sign(may_access("site:p2.org:site", "asset:p1.org:g:p1.org:site"))
            added = httpx.post(f"{url}/rules", json=rule.to_dict(), headers=admin, timeout=10)
            assert added.status_code == 200, added.text
            for _ in range(8):  # each a new connection: both workers answer some
                listed = httpx.get(f"{url}/rules", headers=admin, timeout=10).json()
                assert rule.rule_id in {entry["rule_id"] for entry in listed["rules"]}
            metric_files = list((tmp_path / "data-p1" / "run" / "metrics").glob("counter_*.db"))
            assert len(metric_files) >= 2
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        text = out.read_text()
        assert text.count('"site loops running"') == 1, text[-3000:]
        assert text.count('"job services started"') == 1, text[-3000:]  # not in the workers
        assert '"site loops stopped"' in text, text[-3000:]
