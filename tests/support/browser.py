"""Headless Chromium presenting a user certificate, for the dashboard tests.

Chromium reads client certificates from `$HOME/.pki/nssdb`, so each browser
gets a home of its own holding the user's PKCS#12 bundle and the network CA,
and a profile that picks the certificate for the site's origin without
asking. Chromium exits 0 even when a page fails to load, and waits forever
for a certificate picker it never shows: every run is bounded by a timeout
and its output checked for network errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mahiru.client.http import TlsIdentity
from mahiru.pki import load_certified_key, save_pkcs12

#: Seconds one page may take, start to finish.
#: How often a page load dropped for a network change is tried.
NETWORK_CHANGE_ATTEMPTS = 3
PAGE_TIMEOUT = 60


def chromium() -> str | None:
    """The Chromium executable, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """A headless Chromium that presents `identity` to the origin of `url`."""

    def __init__(self, root: Path, identity: TlsIdentity, url: str) -> None:
        executable = chromium()
        if executable is None:
            raise RuntimeError("chromium is not installed (scripts/ensure-chromium.sh installs it)")
        self._chromium = executable
        self.home = root / "home"
        self.profile = root / "profile"
        nssdb = self.home / ".pki" / "nssdb"
        nssdb.mkdir(parents=True)
        bundle = save_pkcs12(
            root / "user.p12", load_certified_key(identity.cert, identity.key), name="user"
        )
        database = f"sql:{nssdb}"
        _run(["certutil", "-d", database, "-N", "--empty-password"])
        _run(["pk12util", "-d", database, "-i", str(bundle), "-W", ""])
        _run(
            [
                "certutil",
                "-d",
                database,
                "-A",
                "-n",
                "mahiru-ca",
                "-t",
                "C,,",
                "-i",
                str(identity.ca),
            ]
        )
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc},*"
        preferences = {
            "profile": {
                "content_settings": {
                    "exceptions": {
                        "auto_select_certificate": {origin: {"setting": {"filters": [{}]}}}
                    }
                }
            }
        }
        (self.profile / "Default").mkdir(parents=True)
        (self.profile / "Default" / "Preferences").write_text(json.dumps(preferences))

    def _command(self, *arguments: str) -> list[str]:
        return [
            self._chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={self.profile}",
            *arguments,
        ]

    def start(self, *arguments: str, **options: Any) -> subprocess.Popen[bytes]:
        """Chromium started with `arguments` (and this browser's profile and home); the
        caller stops it. `options` go to `subprocess.Popen`."""
        env = {**os.environ, "HOME": str(self.home)}
        return subprocess.Popen(self._command(*arguments), env=env, **options)

    def _run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        for _ in range(NETWORK_CHANGE_ATTEMPTS):
            done = subprocess.run(
                self._command(*arguments),
                env={**os.environ, "HOME": str(self.home)},
                capture_output=True,
                text=True,
                timeout=PAGE_TIMEOUT,
                check=False,
            )
            # Chromium drops a page load when the host's interfaces change (a container
            # network made or removed by another test at that moment); that says nothing
            # of the page, so the load is tried again.
            if "net::ERR_NETWORK_CHANGED" not in done.stderr:
                break
        if "net::ERR_" in done.stderr:
            errors = [line for line in done.stderr.splitlines() if "net::ERR_" in line]
            raise AssertionError(f"chromium could not load the page: {errors}")
        return done

    def dom(self, url: str, *options: str) -> str:
        """The page at `url` as Chromium rendered it (its DOM, serialised), with Chromium's
        command-line `options`."""
        done = self._run(*options, "--dump-dom", url)
        if done.returncode != 0 or "<html" not in done.stdout:
            raise AssertionError(
                f"chromium failed on {url} (exit {done.returncode}): {done.stderr[-2000:]}"
            )
        return done.stdout

    def screenshot(self, url: str, path: Path, size: str = "1280,900") -> Path:
        """A PNG of the page at `url`."""
        done = self._run(f"--screenshot={path}", f"--window-size={size}", url)
        if done.returncode != 0 or not path.exists():
            raise AssertionError(f"no screenshot of {url}: {done.stderr[-2000:]}")
        return path


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=60)
