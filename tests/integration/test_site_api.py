"""The site's internal and external APIs over real mutual TLS: assets, rules, policy, callers."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.images import (
    Members,
    add_file,
    add_link,
    image_bytes,
    tar_bytes,
    write_image,
)
from tests.support.sites import (
    DATABASE_PARAMS,
    DatabaseUrls,
    Network,
    SiteServer,
    database_urls,
    may_access,
    may_use,
    network,
)

from mahiru import pki
from mahiru.client.http import CLIENT_HEADER, TlsIdentity
from mahiru.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId
from mahiru.policy.signing import Revocation, sign_revocation
from mahiru.services.images import receive_image
from mahiru.storage import AuditQuery, BlobStore
from mahiru.storage.image_check import ImageCheck

pytestmark = pytest.mark.integration


@pytest.fixture(params=DATABASE_PARAMS)
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseUrls]:
    """Fresh databases on each backend in turn."""
    with database_urls(request, tmp_path_factory) as urls:
        yield urls


@pytest.fixture
def net(tmp_path: Path, databases: DatabaseUrls) -> Iterator[Network]:
    """A registry and the sites of p1, p2 and p3, registered and replicated once."""
    with network(tmp_path, databases) as running:
        running.replicate_all()
        yield running


def _asset_id(site: str, name: str) -> AssetId:
    _, namespace, site_name = site.split(":")
    return AssetId.parse(f"asset:{namespace}:{name}:{namespace}:{site_name}")


def _image(path: Path, size: int) -> Path:
    return write_image(path, size)


def _raw(identity: TlsIdentity) -> httpx.Client:
    """A plain httpx client marked as our clients are, so only the request decides the answer."""
    headers = {CLIENT_HEADER: "1"}
    return httpx.Client(verify=identity.ssl_context(), timeout=30, headers=headers)


def _blob_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "blobs").rglob("*") if p.is_file()]


def test_assets_and_rules_survive_a_restart(net: Network, tmp_path: Path) -> None:
    """Upload, list, show, download; a new app on the same database and folder has it all."""
    site = net.sites["p1"]
    asset_id = _asset_id(site.id, "data1")
    image = _image(tmp_path / "data1.tar", 3_000_000)
    rule = site.party.sign(may_access("site:p2.org:site", str(asset_id)))
    use = site.party.sign(may_use(site.party.id, str(asset_id)))
    asset = Asset(asset_id, AssetKind.DATA, {"purpose": "test"})
    with site.admin() as admin:
        record = admin.upload_asset(asset, image)
        assert record.asset.image_digest == hashlib.sha256(image.read_bytes()).hexdigest()
        assert record.size == image.stat().st_size
        assert admin.upload_asset(asset, image) == record  # again: nothing changes
        assert admin.add_rule(rule)["changed"] is True
        admin.add_rule(use)
    site.stop()
    site.start()
    with site.client(site.party.user) as user:
        assert [r.asset.id for r in user.list_assets()] == [asset_id]
        assert user.get_asset(asset_id) == record
        info = user.download_image(asset_id, tmp_path / "copy.tar")
        assert [entry["rule_id"] for entry in user.list_rules()] == [rule.rule_id, use.rule_id]
    assert (tmp_path / "copy.tar").read_bytes() == image.read_bytes()
    assert info.digest == record.asset.image_digest
    assert not list(tmp_path.glob(".copy.tar*"))  # no partial file left behind
    with site.peer(net.sites["p2"].identity) as peer:
        assert peer.get_asset(asset_id) == record  # the policy came back too


def test_an_image_with_the_wrong_digest_is_not_stored(net: Network, tmp_path: Path) -> None:
    """The site hashes while it writes and keeps nothing if the announced digest differs."""
    site = net.sites["p1"]
    asset_id = _asset_id(site.id, "data1")
    with site.admin() as admin:
        admin.create_asset(Asset(asset_id, AssetKind.DATA))
    with _raw(site.party.admin) as raw:
        response = raw.put(
            f"{site.internal_url}/assets/{asset_id}/image",
            content=write_image(tmp_path / "sound.tar", 100_000).read_bytes(),
            headers={"X-Mahiru-Digest": "sha256:" + "0" * 64},
        )
        assert response.status_code == 400
        assert "was expected" in response.json()["error"]["message"]
        missing = raw.put(f"{site.internal_url}/assets/{asset_id}/image", content=b"x")
        assert missing.status_code == 400  # no digest header at all
    with site.admin() as admin:
        assert admin.get_asset(asset_id).asset.image_digest is None
    assert _blob_files(site.config.data_dir) == []


def test_asset_mistakes_are_refused_with_the_reason(net: Network, tmp_path: Path) -> None:
    """Another site's asset id, changed metadata, unknown ids and deleted assets."""
    site = net.sites["p1"]
    asset_id = _asset_id(site.id, "data1")
    image = _image(tmp_path / "data1.tar", 1000)
    with site.admin() as admin:
        with pytest.raises(InvalidInput, match=r"names site site:p2\.org:site"):
            admin.create_asset(Asset(_asset_id("site:p2.org:site", "x"), AssetKind.DATA))
        admin.upload_asset(Asset(asset_id, AssetKind.DATA, {"v": 1}), image)
        with pytest.raises(Conflict):
            admin.create_asset(Asset(asset_id, AssetKind.DATA, {"v": 2}))
        with pytest.raises(Conflict, match="another image"):
            admin.upload_asset(Asset(asset_id, AssetKind.DATA, {"v": 1}), _image(image, 1000))
        with pytest.raises(NotFound):
            admin.get_asset(_asset_id(site.id, "nothing"))
        assert _blob_files(site.config.data_dir) != []
        admin.delete_asset(asset_id)
        with pytest.raises(NotFound):
            admin.get_asset(asset_id)
        with pytest.raises(NotFound):
            admin.delete_asset(asset_id)
    assert _blob_files(site.config.data_dir) == []  # the image went with its only asset


def test_rules_are_verified_stored_listed_and_revoked(net: Network) -> None:
    """Only the namespace owner's signature counts; a revocation is final."""
    site = net.sites["p1"]
    p1, p2 = net.parties["p1"], net.parties["p2"]
    data = may_access("site:p2.org:site", "asset_collection:p1.org:public")
    with site.admin() as admin:
        good = p1.sign(data)
        assert admin.add_rule(good)["changed"] is True
        assert admin.add_rule(good)["changed"] is False
        with pytest.raises(InvalidInput, match="signed by the wrong party"):
            admin.add_rule(p2.sign({**data, "asset": "asset_collection:p1.org:other"}))
        with pytest.raises(PermissionDenied, match="stores only rules of"):
            admin.add_rule(p1.sign({**data, "asset": "asset_collection:p9.org:x"}))
        with pytest.raises(InvalidInput, match="wrong party"):
            admin.revoke(sign_revocation(good.rule, p2.main_key))
        # p2 may sign for its own namespace, but that cannot revoke p1's rule.
        unsigned = Revocation(good.rule_id, p2.namespace, b"")
        foreign = Revocation(
            good.rule_id, p2.namespace, p2.main_key.sign(unsigned.canonical_bytes())
        )
        with pytest.raises(InvalidInput, match="cannot revoke it"):
            admin.revoke(foreign)
        assert admin.revoke(sign_revocation(good.rule, p1.main_key))["changed"] is True
        assert admin.list_rules() == []
        with pytest.raises(Conflict, match="revoked"):
            admin.add_rule(good)


def test_peers_get_assets_only_as_policy_allows(net: Network, tmp_path: Path) -> None:
    """The serving site's own policy decides; a denial carries the explanation."""
    site1, site2, site3 = (net.sites[name] for name in ("p1", "p2", "p3"))
    asset_id = _asset_id(site1.id, "data1")
    image = _image(tmp_path / "data1.tar", 2_500_000)
    with site1.admin() as admin:
        admin.upload_asset(Asset(asset_id, AssetKind.DATA), image)
        admin.add_rule(site1.party.sign(may_access(site2.id, str(asset_id))))
    with site1.peer(site2.identity) as peer:
        assert peer.get_asset(asset_id).size == image.stat().st_size
        # A partial file from an interrupted download is resumed from where it stopped.
        digest = hashlib.sha256(image.read_bytes()).hexdigest()
        partial = tmp_path / f".got.tar.{digest[:16]}.partial"
        partial.write_bytes(image.read_bytes()[:1_000_000])
        seen: list[int] = []
        info = peer.download_image(
            asset_id, tmp_path / "got.tar", progress=lambda p, d, t: seen.append(d)
        )
        assert (tmp_path / "got.tar").read_bytes() == image.read_bytes()
        assert seen[0] > 1_000_000 and not partial.exists()
        blobs = BlobStore(tmp_path / "site2-blobs")
        fetched = peer.fetch_image(asset_id, expected_digest=digest)
        assert receive_image(blobs, fetched, str(asset_id), expected_digest=digest) == info
        assert blobs.has(digest)
    with site1.peer(site3.identity) as peer:
        with pytest.raises(PermissionDenied) as denied:
            peer.get_asset(asset_id)
        assert f"{site3.id} may not access {asset_id}: no MayAccess" in denied.value.message
        assert denied.value.details["allowed"] is False
        with pytest.raises(PermissionDenied):
            peer.download_image(asset_id, tmp_path / "stolen.tar")
    assert not (tmp_path / "stolen.tar").exists()


def test_the_internal_api_is_for_the_owner_party_users(net: Network, tmp_path: Path) -> None:
    """Site certificates and other parties' users are refused; plain users may only read."""
    site = net.sites["p1"]
    with _raw(net.sites["p2"].identity) as raw:  # a registered site: known, but no user
        response = raw.get(f"{site.internal_url}/assets")
        assert response.status_code == 403
        assert response.json()["error"]["type"] == "PermissionDenied"
    with _raw(net.parties["p2"].admin) as raw, pytest.raises(httpx.TransportError):
        raw.get(f"{site.internal_url}/assets")  # not even the TLS handshake succeeds
    site.stop()
    site.start(extra_client_cas=(net.parties["p2"].user_ca,))  # now TLS lets it through
    with _raw(net.parties["p2"].admin) as raw:
        response = raw.get(f"{site.internal_url}/assets")
        assert response.status_code == 401
        assert "user CA" in response.json()["error"]["message"]
    with site.client(site.party.user) as user:
        assert user.list_assets() == []
        assert user.status()["site"] == site.id
        asset = Asset(_asset_id(site.id, "d"), AssetKind.DATA)
        with pytest.raises(PermissionDenied, match="not an admin"):
            user.create_asset(asset)
        with pytest.raises(PermissionDenied, match="not an admin"):
            user.add_rule(site.party.sign(may_access(site.id, str(asset.id))))
        with pytest.raises(PermissionDenied, match="not an admin"):
            user.delete_asset(asset.id)
    with _raw(site.party.user) as raw:
        response = raw.put(
            f"{site.internal_url}/assets/{asset.id}/image",
            content=b"data",
            headers={"X-Mahiru-Digest": "sha256:" + hashlib.sha256(b"data").hexdigest()},
        )
        assert response.status_code == 403


def test_the_external_api_is_for_registered_sites(net: Network, tmp_path: Path) -> None:
    """Users, unregistered sites and impostors with another key are refused."""
    site = net.sites["p1"]
    url = f"{site.external_url}/rules/changes?since=0"
    with _raw(site.party.admin) as raw:  # a user of the site's own party: known, but no site
        response = raw.get(url)
        assert response.status_code == 403
        assert "internal API" in response.json()["error"]["message"]
    unregistered = net.certs.site("site:p9.org:site")
    with _raw(unregistered) as raw:
        response = raw.get(url)
        assert response.status_code == 403
        assert "not a registered site" in response.json()["error"]["message"]
    impostor = net.certs.identity(
        "impostor", pki.issue_site_certificate(net.certs._ca, net.sites["p2"].id)
    )
    with _raw(impostor) as raw:
        response = raw.get(url)
        assert response.status_code == 401
        assert "does not match" in response.json()["error"]["message"]
    with site.peer(net.sites["p2"].identity) as peer:
        assert peer.rule_changes(0).version == 0


def test_bad_requests_get_the_error_shape(net: Network) -> None:
    """Unknown fields, oversized bodies and bad ids are 400/413 with the JSON error shape."""
    site = net.sites["p1"]
    asset = {"id": str(_asset_id(site.id, "d")), "kind": "data"}
    with _raw(site.party.admin) as raw:
        response = raw.post(f"{site.internal_url}/assets", json={**asset, "colour": "red"})
        assert response.status_code == 400
        assert "colour" in response.json()["error"]["message"]
        response = raw.post(
            f"{site.internal_url}/assets", json={**asset, "metadata": {"x": "y" * 2_000_000}}
        )
        assert response.status_code == 413
        # The same body without a Content-Length (chunked): still 413, in the error shape.
        big = json.dumps({**asset, "metadata": {"x": "y" * 2_000_000}}).encode()
        chunked = raw.post(
            f"{site.internal_url}/assets",
            content=(big[i : i + 65536] for i in range(0, len(big), 65536)),
            headers={"content-type": "application/json"},
        )
        assert chunked.status_code == 413, chunked.text
        assert chunked.json()["error"]["type"] == "InvalidInput"
        assert "larger than" in chunked.json()["error"]["message"]
        response = raw.get(f"{site.internal_url}/assets/asset:nope")
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "InvalidInput"
        response = raw.get(f"{site.internal_url}/nothing-here")
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "NotFound"


def test_the_openapi_document_describes_both_apis(net: Network) -> None:
    """Served to known callers only, with both prefixes and their certificate schemes."""
    site = net.sites["p1"]
    with _raw(site.party.user) as raw:
        document = raw.get(f"https://127.0.0.1:{site.port}/openapi.json").json()
    paths = document["paths"]
    assert "/internal/assets/{asset_id}/image" in paths
    assert "/external/rules/changes" in paths
    assert paths["/external/assets/{asset_id}"]["get"]["security"] == [{"networkCertificate": []}]
    assert paths["/internal/rules"]["post"]["security"] == [{"userCertificate": []}]
    unregistered = net.certs.site("site:p9.org:site")
    with _raw(unregistered) as raw:
        assert raw.get(f"https://127.0.0.1:{site.port}/openapi.json").status_code == 200


def _one_step_job(site: SiteServer, data: AssetId) -> dict[str, Any]:
    """A job of `site`'s party running its script on `data`, as the explain API takes it."""
    return {
        "submitter": site.party.id,
        "workflow": {
            "inputs": ["input"],
            "outputs": {"result": "compute.output0"},
            "steps": [
                {
                    "name": "compute",
                    "compute_asset": str(_asset_id(site.id, "script")),
                    "inputs": {"input0": "input"},
                    "outputs": {"output0": None},
                }
            ],
        },
        "inputs": {"input": str(data)},
    }


def test_policy_explanations_come_from_the_site(net: Network) -> None:
    """The site explains a decision for one item of a job from its own rules."""
    site = net.sites["p1"]
    data = _asset_id(site.id, "data1")
    job = _one_step_job(site, data)
    with site.admin() as admin:
        denied = admin.explain(job, "input", site="site:p2.org:site")
        assert denied["allowed"] is False
        assert "no MayAccess" in denied["requirements"][0]["explanation"]
        admin.add_rule(site.party.sign(may_access("site:p2.org:site", str(data))))
        allowed = admin.explain(job, "input", site="site:p2.org:site")
        assert allowed["allowed"] is True
        with pytest.raises(InvalidInput, match="exactly one"):
            admin.explain(job, "input")
        with pytest.raises(InvalidInput):
            admin.explain(job, "nothing", party=site.party.id)


def test_explanations_and_the_dashboard_s_policy_pages_write_no_audit_record(
    net: Network,
) -> None:
    """Asking why, or who may access or use the assets, is an answer, not an act: the API's
    explanations and the dashboard's assets and "Why?" pages add nothing to the audit log."""
    site = net.sites["p1"]
    data = _asset_id(site.id, "data1")
    job = _one_step_job(site, data)
    with site.admin() as admin:
        admin.add_rule(site.party.sign(may_access("site:p2.org:site", str(data))))
    audit = site.services.oversight.audit
    before = audit.page(AuditQuery(), 1000).records
    base = site.internal_url.removesuffix("/internal")
    with (
        site.admin() as admin,
        httpx.Client(base_url=base, verify=site.party.admin.ssl_context(), timeout=30) as ui,
    ):
        for grantee in ("site:p2.org:site", "site:p3.org:site"):
            admin.explain(job, "input", site=grantee)
        admin.explain(job, "compute.output0", party=site.party.id)
        for page in ("/internal/ui/assets", "/internal/ui/why"):
            assert ui.get(page).status_code == 200, page
    assert audit.page(AuditQuery(), 1000).records == before


def _bad_archives(tmp_path: Path) -> dict[str, bytes]:
    """Uploads that must never be stored, by what is wrong with them."""

    def outer(*members: Members) -> bytes:
        return tar_bytes(lambda archive: [add(archive) for add in members])

    def below_symlink(archive: tarfile.TarFile) -> None:
        add_link(archive, "etc", "/etc")
        add_file(archive, "etc/passwd", b"root::0:0")

    zeros = tar_bytes(lambda a: add_file(a, "data/zeros", bytes(200 * 1024 * 1024)))
    return {
        "random bytes": os.urandom(200_000),
        "dot-dot member": outer(lambda a: add_file(a, "../../../../tmp/x", b"x")),
        "absolute member": outer(lambda a: add_file(a, "/tmp/x", b"x")),
        "member below a symlink": image_bytes(tar_bytes(below_symlink)),
        "hard link to /etc/shadow": outer(lambda a: add_link(a, "s", "/etc/shadow", hard=True)),
        "gzip bomb": gzip.compress(bytes(200 * 1024 * 1024), compresslevel=1),
        "gzip bomb layer": image_bytes(zeros, compress=True),
        "no manifest": outer(lambda a: add_file(a, "hello", b"hi")),
    }


def test_unsound_uploads_are_refused_and_nothing_is_stored(net: Network, tmp_path: Path) -> None:
    """Each is a 400 naming the problem; no blob, no temporary file, the record unchanged."""
    site = net.sites["p1"]
    asset_id = _asset_id(site.id, "data1")
    with site.admin() as admin:
        before = admin.create_asset(Asset(asset_id, AssetKind.DATA))
    with _raw(site.party.admin) as raw:
        for problem, body in _bad_archives(tmp_path).items():
            response = raw.put(
                f"{site.internal_url}/assets/{asset_id}/image",
                content=body,
                headers={"X-Mahiru-Digest": "sha256:" + hashlib.sha256(body).hexdigest()},
            )
            assert response.status_code == 400, (problem, response.text)
            error = response.json()["error"]
            assert error["type"] == "InvalidInput", problem
            assert "image archive" in error["message"], (problem, error["message"])
    with site.admin() as admin:
        assert admin.get_asset(asset_id) == before
    assert _blob_files(site.config.data_dir) == []


def test_a_site_given_an_unchecked_blob_store_still_refuses_unsound_uploads(
    net: Network, tmp_path: Path
) -> None:
    """An injected store without the ingress check gets it added: every unsound upload is a 400
    and the injected store holds nothing."""
    site = net.sites["p1"]
    injected = BlobStore(tmp_path / "injected-blobs")  # no check of its own
    site.stop()
    site.start(blobs=injected)
    asset_id = _asset_id(site.id, "data1")
    with site.admin() as admin:
        admin.create_asset(Asset(asset_id, AssetKind.DATA))
    with _raw(site.party.admin) as raw:
        for problem, body in _bad_archives(tmp_path).items():
            response = raw.put(
                f"{site.internal_url}/assets/{asset_id}/image",
                content=body,
                headers={"X-Mahiru-Digest": "sha256:" + hashlib.sha256(body).hexdigest()},
            )
            assert response.status_code == 400, (problem, response.text)
            assert "image archive" in response.json()["error"]["message"], problem
    assert list(injected.digests()) == []
    assert list((tmp_path / "injected-blobs" / "tmp").iterdir()) == []


def test_an_unsound_image_from_a_peer_is_not_stored(net: Network, tmp_path: Path) -> None:
    """A hostile peer serving a broken archive gets nothing into a site's image store."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    asset_id = _asset_id(site1.id, "data1")
    body = _bad_archives(tmp_path)["dot-dot member"]
    services = site1.services
    services.assets.add(Asset(asset_id, AssetKind.DATA))
    # Stored behind the gate's back, as a hostile site would hold it.
    info = BlobStore(site1.config.data_dir / "blobs").write_bytes(body)
    services.assets.attach_image(asset_id, info)
    with site1.admin() as admin:
        admin.add_rule(site1.party.sign(may_access(site2.id, str(asset_id))))
    receiving = BlobStore(tmp_path / "site2-blobs", check=ImageCheck)
    with site1.peer(site2.identity) as peer, pytest.raises(InvalidInput, match="leads out"):
        receive_image(receiving, peer.fetch_image(asset_id), str(asset_id))
    assert list(receiving.digests()) == []


def test_a_damaged_or_missing_image_is_never_served(net: Network, tmp_path: Path) -> None:
    """Four bytes overwritten: the stream is cut before it ends, the blob set aside, and the
    next download is a clear 404, to users and peers alike; a removed blob is the same."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    asset_id = _asset_id(site1.id, "data1")
    image = write_image(tmp_path / "data1.tar", 3_000_000)
    with site1.admin() as admin:
        record = admin.upload_asset(Asset(asset_id, AssetKind.DATA), image)
        admin.add_rule(site1.party.sign(may_use(site1.party.id, str(asset_id))))
        admin.add_rule(site1.party.sign(may_access(site2.id, str(asset_id))))
    digest = record.asset.image_digest
    assert digest is not None
    stored = BlobStore(site1.config.data_dir / "blobs").path(digest)
    stored.chmod(0o644)
    with stored.open("r+b") as file:
        file.seek(1_500_000)
        file.write(b"\xde\xad\xbe\xef")
    with _raw(site1.party.admin) as raw:
        url = f"{site1.internal_url}/assets/{asset_id}/image"
        # Cut off before its end: never a complete 200.
        with pytest.raises(httpx.HTTPError), raw.stream("GET", url) as response:
            for _ in response.iter_bytes():
                pass
        again = raw.get(f"{site1.internal_url}/assets/{asset_id}/image")
        assert again.status_code == 404
        assert "missing or damaged" in again.json()["error"]["message"]
    assert not stored.exists()
    assert (site1.config.data_dir / "blobs" / "damaged" / digest).is_file()
    receiving = BlobStore(tmp_path / "site2-blobs", check=ImageCheck)
    with site1.peer(site2.identity) as peer, pytest.raises(NotFound, match="missing or damaged"):
        receive_image(receiving, peer.fetch_image(asset_id), str(asset_id))
    with site1.admin() as admin, pytest.raises(NotFound, match="missing or damaged"):
        admin.download_image(asset_id, tmp_path / "copy.tar")
    assert not (tmp_path / "copy.tar").exists()
    assert list(receiving.digests()) == []


def test_an_owner_fetches_its_own_asset_from_its_own_site_audited(
    net: Network, tmp_path: Path
) -> None:
    """Admins and plain users of the owner download its asset (whole and a range) with no
    MayUse, each through an allowing "release to party" decision and a recorded transfer."""
    site = net.sites["p1"]
    asset_id = _asset_id(site.id, "data1")
    image = write_image(tmp_path / "d.tar", 40_000)
    with site.admin() as admin:
        admin.upload_asset(Asset(asset_id, AssetKind.DATA, {"live_access": True}), image)
    for identity in (site.party.admin, site.party.user):
        copy = tmp_path / f"{identity.cert.stem}.tar"
        with site.client(identity) as client:
            client.download_image(asset_id, copy)
        assert copy.read_bytes() == image.read_bytes()
    with _raw(site.party.user) as raw:
        ranged = raw.get(
            f"{site.internal_url}/assets/{asset_id}/image", headers={"Range": "bytes=5-9"}
        )
    assert ranged.status_code == 206 and ranged.content == image.read_bytes()[5:10]
    with site.admin() as admin:
        records = admin.audit_records(limit=500, asset=str(asset_id))["records"]
    decisions = [r for r in records if r["action"] == "release to party"]
    assert len(decisions) == 3
    for decision in decisions:
        assert (decision["outcome"], decision["party"]) == ("allowed", site.party.id)
        assert "may use" in decision["details"]["decision"]
        assert "the asset is its own" in decision["details"]["explanation"]
    sent = [r for r in records if r["kind"] == "transfer" and r["action"] == "send"]
    assert len(sent) == 3 and {r["details"]["to"] for r in sent} == {site.party.id}
    assert sorted(r["details"]["bytes"] for r in sent) == [
        5,
        image.stat().st_size,
        image.stat().st_size,
    ]
    # Another party's site still gets nothing without a MayAccess: the owner's right is its own.
    with site.peer(net.sites["p2"].identity) as peer, pytest.raises(PermissionDenied):
        peer.download_image(asset_id, tmp_path / "stolen.tar")
    with site.client(site.party.user) as user, pytest.raises(PermissionDenied, match="admin"):
        user.replicate_now()


def test_asset_ids_cannot_be_squatted_or_given_new_content(net: Network, tmp_path: Path) -> None:
    """Another party's namespace is refused (403); delete-then-upload keeps an id's bytes."""
    site = net.sites["p1"]
    squatted = AssetId.parse("asset:p2.org:fake:p1.org:site")
    with site.admin() as admin:
        with pytest.raises(PermissionDenied, match=r"only assets of party:p1\.org:p1"):
            admin.create_asset(Asset(squatted, AssetKind.COMPUTE))
        with pytest.raises(PermissionDenied):
            admin.upload_asset(Asset(squatted, AssetKind.DATA), write_image(tmp_path / "s.tar"))
        asset_id = _asset_id(site.id, "script")
        first = write_image(tmp_path / "first.tar", 2000)
        record = admin.upload_asset(Asset(asset_id, AssetKind.COMPUTE), first)
        admin.delete_asset(asset_id)
        with pytest.raises(Conflict, match="content never changes"):
            admin.upload_asset(Asset(asset_id, AssetKind.COMPUTE), write_image(tmp_path / "b.tar"))
        again = admin.upload_asset(Asset(asset_id, AssetKind.COMPUTE), first)
        assert again.asset == record.asset
    with site.client(site.party.admin) as admin:
        assert [r.asset.id for r in admin.list_assets()] == [asset_id]
    # The pin outlives a restart.
    site.stop()
    site.start()
    with site.admin() as admin:
        admin.delete_asset(asset_id)
        with pytest.raises(Conflict, match="content never changes"):
            admin.upload_asset(Asset(asset_id, AssetKind.COMPUTE), write_image(tmp_path / "c.tar"))
