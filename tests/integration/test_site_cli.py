"""`mahiru serve site` as a real process, used through `mahiru assets` and `mahiru rules`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.db import sqlite_urls
from tests.support.images import write_image
from tests.support.sites import (
    Network,
    SiteServer,
    may_access,
    may_use,
    network,
    registered_elsewhere,
)
from tests.support.waiting import wait_until

from mahiru.client.site import SiteClient
from mahiru.errors import MahiruError
from mahiru.model.identifiers import AssetId
from mahiru.storage import BlobStore

pytestmark = pytest.mark.integration

MAHIRU = str(Path(sys.executable).parent / "mahiru")


@pytest.fixture
def served_site(tmp_path: Path) -> Iterator[tuple[Network, SiteServer]]:
    """A registry and p2's site in-process, and p1's site as a `mahiru serve site` process."""
    urls = sqlite_urls(tmp_path)
    with network(tmp_path, urls, names=("p2",)) as net:
        site = registered_elsewhere(net, tmp_path, urls)
        config = site.config.model_dump(mode="json", exclude_none=True)
        config_path = tmp_path / "site.yaml"
        config_path.write_text(yaml.safe_dump(config))
        log = (tmp_path / "site.log").open("w")
        process = subprocess.Popen(
            [MAHIRU, "serve", "site", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_synced(site, process, tmp_path / "site.log")
            yield net, site
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, (tmp_path / "site.log").read_text()[-3000:]
            log.close()


def _wait_until_synced(site: SiteServer, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the site process serves and has replicated the registry once."""
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        try:
            with site.client(site.party.user) as user:
                sources = {s["source"]: s for s in user.status()["replication"]}
            if sources.get("registry", {}).get("version", 0) > 0:
                return
        except MahiruError:
            pass
        time.sleep(0.2)


def _access_lines(log: Path) -> list[dict[str, Any]]:
    """The access lines the site process has written (whole lines only) to `log` so far."""
    text = log.read_text()
    whole = text[: text.rfind("\n") + 1].splitlines()
    return [e for e in map(json.loads, whole) if e.get("logger") == "mahiru.access"]


def _run(site: SiteServer, *args: str, tls_key_flag: str = "--key") -> tuple[int, Any, str]:
    """Run `mahiru ARGS --json` as the site's admin; return exit code, JSON output, stderr."""
    identity = site.party.admin
    env = {**os.environ, "MAHIRU_SITE_URL": site.internal_url, "MAHIRU_CA": str(identity.ca)}
    command = [MAHIRU, *args, "--cert", str(identity.cert), tls_key_flag, str(identity.key)]
    done = subprocess.run(
        [*command, "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    output = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, output, done.stderr


def test_the_cli_serves_a_site_and_manages_its_assets_and_rules(
    served_site: tuple[Network, SiteServer], tmp_path: Path
) -> None:
    """Upload and download an asset, publish rules (one rejected), list and revoke them."""
    net, site = served_site
    asset_id = "asset:p1.org:data1:p1.org:site"
    image = tmp_path / "data1.tar"
    write_image(image, 5_000_000)
    metadata = tmp_path / "meta.yaml"
    metadata.write_text("purpose: testing\n")

    code, record, _ = _run(
        site, "assets", "upload", asset_id, str(image), "--metadata", str(metadata)
    )
    assert code == 0
    assert record["size"] == image.stat().st_size and record["metadata"] == {"purpose": "testing"}
    code, listing, _ = _run(site, "assets", "list")
    assert [a["id"] for a in listing["assets"]] == [asset_id]
    # The asset is p1's own: its users take it back from its site without a MayUse.
    code, own, _ = _run(site, "assets", "download", asset_id, "--out", str(tmp_path / "own.tar"))
    assert code == 0 and own["digest"] == record["image_digest"]
    code, error, _ = _run(site, "assets", "show", "asset:p1.org:nothing:p1.org:site")
    assert code == 2 and error["error"]["type"] == "NotFound"

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "rules": [
                    may_access(net.sites["p2"].id, asset_id),
                    # p2's namespace is not p1's site's to publish: rejected, the others stored.
                    may_access(site.id, "asset:p2.org:data:p2.org:site"),
                    may_access("site:p1.org:other", asset_id),
                    may_use(site.party.id, asset_id),
                ]
            }
        )
    )
    key = str(site.party.key_path)
    code, added, _ = _run(
        site, "rules", "add", str(rules), "--signing-key", key, tls_key_flag="--tls-key"
    )
    assert code == 3
    assert [r["status"] for r in added["results"]] == ["added", "rejected", "added", "added"]
    assert "stores only rules of party:p1.org:p1" in added["results"][1]["error"]["message"]
    # The old name of --signing-key still works, with a note.
    code, again, note = _run(
        site, "rules", "add", str(rules), "--key", key, tls_key_flag="--tls-key"
    )
    assert "--key is now --signing-key" in note
    assert [r["status"] for r in again["results"]] == [
        "unchanged",
        "rejected",
        "unchanged",
        "unchanged",
    ]
    code, copy, _ = _run(site, "assets", "download", asset_id, "--out", str(tmp_path / "copy.tar"))
    assert code == 0 and copy["digest"] == record["image_digest"]
    assert (tmp_path / "copy.tar").read_bytes() == image.read_bytes()

    code, listing, _ = _run(site, "rules", "list")
    assert code == 0 and len(listing["rules"]) == 3
    first = added["results"][0]["rule_id"]
    code, revoked, _ = _run(
        site, "rules", "revoke", first[:12], "--signing-key", key, tls_key_flag="--tls-key"
    )
    assert code == 0 and revoked["changed"] is True
    code, listing, _ = _run(site, "rules", "list")
    assert [r["rule_id"] for r in listing["rules"]] == [
        added["results"][2]["rule_id"],
        added["results"][3]["rule_id"],
    ]

    code, deleted, _ = _run(site, "assets", "delete", asset_id)
    assert code == 0 and deleted["id"] == asset_id


def test_the_cli_refuses_a_user_without_the_admin_role(
    served_site: tuple[Network, SiteServer], tmp_path: Path
) -> None:
    """A plain user may list but not upload: exit 3 with the reason."""
    _, site = served_site
    identity = site.party.user
    env = {**os.environ, "MAHIRU_SITE_URL": site.internal_url, "MAHIRU_CERT": str(identity.cert)}
    env.update(MAHIRU_KEY=str(identity.key), MAHIRU_CA=str(identity.ca))
    listing = subprocess.run([MAHIRU, "assets", "list"], env=env, capture_output=True, text=True)
    assert listing.returncode == 0 and "no assets" in listing.stdout
    image = tmp_path / "x.tar"
    write_image(image)
    upload = subprocess.run(
        [MAHIRU, "assets", "upload", "asset:p1.org:x:p1.org:site", str(image)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert upload.returncode == 3
    assert "not an admin" in upload.stderr


def test_blobs_verify_finds_damaged_and_missing_images(
    served_site: tuple[Network, SiteServer], tmp_path: Path
) -> None:
    """Four bytes overwritten and a removed file: both found, exit 1; sound stores exit 0."""
    _, site = served_site
    ids = [f"asset:p1.org:{name}:p1.org:site" for name in ("one", "two", "three")]
    for number, asset_id in enumerate(ids):
        image = write_image(tmp_path / f"{number}.tar", 50_000 + number)
        code, _, _ = _run(site, "assets", "upload", asset_id, str(image))
        assert code == 0
    verify = [MAHIRU, "blobs", "verify", "--config", str(tmp_path / "site.yaml"), "--json"]
    done = subprocess.run(verify, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"checked": 3, "damaged": [], "missing": []}
    blobs = BlobStore(site.config.data_dir / "blobs")
    with SiteClient(site.internal_url, site.party.admin) as admin:
        digests = [admin.get_asset(AssetId.parse(i)).asset.image_digest or "" for i in ids]
    damaged = blobs.path(digests[0])
    damaged.chmod(0o644)
    with damaged.open("r+b") as file:
        file.seek(10_000)
        file.write(b"\x00\x01\x02\x03")
    blobs.path(digests[1]).unlink()
    done = subprocess.run(verify, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"checked": 3, "damaged": [ids[0]], "missing": [ids[1]]}
    human = subprocess.run(verify[:-1], capture_output=True, text=True, timeout=60)
    assert human.returncode == 1
    assert f"missing: {ids[0]}" in human.stdout  # set aside by the first check


def test_assets_pack_makes_an_image_a_site_takes(
    served_site: tuple[Network, SiteServer], tmp_path: Path
) -> None:
    """Files and a folder packed without an engine: a sound image, uploaded as is."""
    _, site = served_site
    (tmp_path / "numbers.json").write_text("[1, 2, 3]")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "notes.txt").write_text("notes")
    out = tmp_path / "packed.tar"
    pack = [MAHIRU, "assets", "pack", str(tmp_path / "numbers.json"), str(tmp_path / "more")]
    done = subprocess.run([*pack, "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with tarfile.open(out) as archive:
        (layer,) = [m for m in archive.getnames() if m.endswith("layer.tar")]
        inner = archive.extractfile(layer)
        assert inner is not None
        with tarfile.open(fileobj=inner) as files:
            assert {"data/numbers.json", "data/more/notes.txt"} <= set(files.getnames())
    code, record, _ = _run(site, "assets", "upload", "asset:p1.org:packed:p1.org:site", str(out))
    assert code == 0 and record["size"] == out.stat().st_size
    again = subprocess.run([*pack, "--out", str(out)], capture_output=True, text=True)
    assert again.returncode != 0 and "--overwrite" in again.stderr


def test_an_idle_site_logs_nothing_per_poll_and_each_request_once(
    served_site: tuple[Network, SiteServer], tmp_path: Path
) -> None:
    """With replication every 0.5 s, 4 s of idling add no line; 3 requests add 3 lines,
    none from the HTTP libraries and none with terminal colour codes."""
    net, site = served_site
    net.replicate_all()  # so that p2's site knows p1's, and answers its polls
    log = tmp_path / "site.log"
    # Let start-up and the first good rounds finish their lines: wait for 1.5 s without
    # a new line (at most 30 s), then make the site build its policy once.
    deadline, count, quiet_since = time.monotonic() + 30, -1, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 1.5:
        now_count = len(log.read_text().splitlines())
        if now_count != count:
            count, quiet_since = now_count, time.monotonic()
        time.sleep(0.1)
    answered = len(_access_lines(log))
    with site.client(site.party.user) as user:
        user.status()
    # A request's lines are all written by the time its access line is (just after the answer).
    wait_until(lambda: len(_access_lines(log)) > answered, 30, "the status request's access line")
    before = len(log.read_text().splitlines())
    time.sleep(4.0)  # the idling under test: eight replication rounds
    idle = log.read_text().splitlines()[before:]
    assert idle == []
    with site.client(site.party.user) as user:
        for _ in range(3):
            user.status()
    wait_until(lambda: len(_access_lines(log)) >= answered + 4, 30, "three more access lines")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert not [e for e in lines if e["logger"] in ("httpx", "httpcore", "uvicorn.access")]
    assert not [e for e in lines if "color_message" in e]
    requests = [e for e in lines[before:] if e["logger"] == "mahiru.access"]
    assert len(requests) == 3 and len(lines) - before == 3, lines[before:]


def test_a_refused_certificate_is_logged_once_with_its_reason(
    served_site: tuple[Network, SiteServer], tmp_path: Path
) -> None:
    """A user certificate of another party fails the handshake: the caller hears why
    (exit 2), the site's log says why once, however often it happens within a minute."""
    net, site = served_site
    stranger = net.certs.party("p3").user
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAHIRU_")}
    args = ["assets", "list", "--site", site.internal_url, "--cert", str(stranger.cert)]
    args += ["--key", str(stranger.key), "--ca", str(stranger.ca)]
    for _ in range(3):
        done = subprocess.run([MAHIRU, *args], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 2 and "refused your certificate" in done.stderr, done.stderr
    # The site handled those handshakes before a later request: once that request's access
    # line is written, any line they caused is too.
    log = tmp_path / "site.log"
    answered = len(_access_lines(log))
    with site.client(site.party.user) as user:
        user.status()
    wait_until(lambda: len(_access_lines(log)) > answered, 30, "a later request's access line")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    refused = [
        e for e in lines if e["event"] == "refused a client certificate during the TLS handshake"
    ]
    assert len(refused) == 1, refused
    assert refused[0]["level"] == "warning" and "certificate" in refused[0]["reason"]
