"""`mahiru demo`: the compute-to-data scenario end to end, as a user runs it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from mahiru import pki
from mahiru.client.http import TlsIdentity
from mahiru.runtime import DockerRuntime

MAHIRU = str(Path(sys.executable).parent / "mahiru")


@pytest.mark.e2e
def test_demo_runs_the_step_at_site2_and_prints_the_result(
    container_runtime: DockerRuntime, scenario_archives: dict[str, Path], tmp_path: Path
) -> None:
    """The demo plans the step at site2, runs it in a container, and gets exactly [1, 34];
    without --keep or --workdir it leaves neither services nor its workspace behind."""
    assets = next(iter(scenario_archives.values())).parent
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    result = subprocess.run(
        [MAHIRU, "demo", "--assets", str(assets)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TMPDIR": str(temporary)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "plan: step compute runs at site:party2.mahiru.example.org:site2" in out
    assert "compute" in out and "succeeded" in out
    assert "result: [1, 34]" in out
    # Nothing keeps running after the demo: the service processes are gone.
    leftovers = subprocess.run(
        ["pgrep", "-f", f"serve .* --config {tmp_path}"], capture_output=True, text=True
    )
    assert leftovers.stdout == ""
    # The workspace it made (keys, the CA's private key too) is gone, and it says so.
    assert list(temporary.iterdir()) == []
    assert f"removed the workspace {temporary}" in out


@pytest.mark.e2e
def test_demo_without_engine_says_how_to_get_one(tmp_path: Path) -> None:
    """With no engine reachable the demo exits 4 with a hint, not a traceback."""
    result = subprocess.run(
        [MAHIRU, "demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 4
    assert "no container engine answers" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_demo_keep_leaves_profiles_that_reach_both_sites_and_the_registry(
    container_runtime: DockerRuntime, scenario_archives: dict[str, Path], tmp_path: Path
) -> None:
    """`mahiru demo --keep` writes profiles for both admins and prints how to use them: with
    MAHIRU_CONFIG alone, site and registry commands work, and --profile picks the party."""
    assets = next(iter(scenario_archives.values())).parent
    workdir = tmp_path / "work"
    result = subprocess.run(
        [MAHIRU, "demo", "--keep", "--workdir", str(workdir), "--assets", str(assets)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    pids = [
        int(pid)
        for line in result.stdout.splitlines()
        if line.startswith("Stop them with: kill")
        for pid in line.split("kill", 1)[1].split()
    ]
    try:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        profiles = workdir / "profiles.toml"
        assert f"export MAHIRU_CONFIG={profiles}" in result.stdout
        # The workspace stays for the services, and the demo says how to remove it.
        assert f"remove it with: rm -rf {workdir}" in result.stdout
        # The dashboard's address, and a certificate bundle a browser can import.
        dashboard = re.search(
            r"Dashboard of site1: (https://127\.0\.0\.1:\d+/internal/ui/)", result.stdout
        )
        assert dashboard is not None, result.stdout
        bundle = re.search(r"import (\S+\.p12) \(no password\)", result.stdout)
        assert bundle is not None and Path(bundle.group(1)).is_file()
        loaded = pkcs12.load_pkcs12(Path(bundle.group(1)).read_bytes(), None)
        assert loaded.cert is not None and loaded.key is not None
        trusted = re.search(r"trust (\S+\.crt) for websites", result.stdout)
        assert trusted is not None
        ca = Path(trusted.group(1))
        with tempfile.TemporaryDirectory() as scratch:
            key = Path(scratch) / "key.pem"
            cert = Path(scratch) / "cert.pem"
            key.write_bytes(pki.private_key_pem(loaded.key))  # type: ignore[arg-type]
            cert.write_text(pki.certificate_pem(loaded.cert.certificate))
            identity = TlsIdentity(cert, key, ca)
            with httpx.Client(verify=identity.ssl_context(), timeout=30) as browser_like:
                page = browser_like.get(dashboard.group(1), follow_redirects=True)
        assert page.status_code == 200 and "succeeded" in page.text
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MAHIRU_")}
        env = {**clean, "MAHIRU_CONFIG": str(profiles)}

        def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [MAHIRU, *args], capture_output=True, text=True, timeout=60, env={**env, **extra}
            )

        jobs = cli("jobs", "list")
        assert jobs.returncode == 0 and "succeeded" in jobs.stdout, jobs.stderr
        registry = cli("register", "show")
        assert (
            registry.returncode == 0 and "site:party2.mahiru.example.org:site2" in registry.stdout
        )
        assets2 = cli("--profile", "party2-admin", "assets", "list")
        assert assets2.returncode == 0 and ":input:" in assets2.stdout, assets2.stderr
        # The environment still wins over the profile.
        moved = cli("assets", "list", MAHIRU_SITE_URL="https://127.0.0.1:1/internal")
        assert moved.returncode == 4, moved.stderr
        unknown = cli("--profile", "nobody", "jobs", "list")
        assert unknown.returncode == 2 and "no profile 'nobody'" in unknown.stderr
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
