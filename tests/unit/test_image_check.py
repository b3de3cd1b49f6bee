"""The ingress gate's archive check: sound images pass, every kind of broken one is refused."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile

import pytest
from tests.support.images import add_file, add_link, data_layer, image_bytes, tar_bytes

from mahiru.errors import InvalidInput
from mahiru.storage.image_check import ImageCheck, ImageLimits


def check(data: bytes, *, chunk: int = 4096, limits: ImageLimits | None = None) -> None:
    """Feed `data` to a check in pieces of `chunk` bytes, then finish it."""
    gate = ImageCheck(limits)
    for start in range(0, len(data), chunk):
        gate.feed(data[start : start + chunk])
    gate.finish()


@pytest.mark.parametrize("chunk", [1, 511, 512, 513, 65536])
def test_a_sound_image_passes_in_chunks_of_any_size(chunk: int) -> None:
    check(image_bytes(data_layer(os.urandom(3000))), chunk=chunk)


def test_a_gzip_layer_and_linked_duplicate_layers_pass() -> None:
    """docker save links a layer seen twice; gzip layers (OCI) are read through."""
    layer = data_layer(b"x" * 10_000)

    def duplicate(archive: tarfile.TarFile) -> None:
        add_link(archive, "other/layer.tar", "../" + _layer_name(layer, compress=True))

    data = image_bytes(layer, compress=True, extra=duplicate)
    check(data)


def _layer_name(layer: bytes, *, compress: bool) -> str:
    body = gzip.compress(layer, compresslevel=1) if compress else layer
    return f"{hashlib.sha256(body).hexdigest()}/layer.tar"


def test_layers_may_hold_absolute_symlinks_and_devices() -> None:
    """An image's own file system links to /etc/alternatives and has /dev nodes."""

    def members(archive: tarfile.TarFile) -> None:
        add_link(archive, "usr/bin/awk", "/etc/alternatives/awk")
        add_link(archive, "bin", "usr/bin")
        add_file(archive, "usr/lib/x", b"1")
        add_link(archive, "usr/lib/y", "usr/lib/x", hard=True)
        device = tarfile.TarInfo("dev/null")
        device.type = tarfile.CHRTYPE
        archive.addfile(device)

    check(image_bytes(tar_bytes(members)))


def _refused(data: bytes, match: str, limits: ImageLimits | None = None) -> None:
    with pytest.raises(InvalidInput, match=match):
        check(data, limits=limits)


def test_random_bytes_and_empty_uploads_are_refused() -> None:
    _refused(os.urandom(100_000), "bad checksum")
    _refused(b"", "empty")
    _refused(b"this is not an archive", "middle of a member")


def test_a_tar_without_a_manifest_is_refused() -> None:
    _refused(tar_bytes(lambda a: add_file(a, "hello.txt", b"hi")), "no manifest.json")


@pytest.mark.parametrize("layer", [False, True])
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../../../../tmp/x", "leads out"),
        ("a/../../x", "leads out"),
        ("/etc/passwd", "absolute"),
    ],
)
def test_unsafe_member_names_are_refused(name: str, problem: str, layer: bool) -> None:
    """In the archive itself and inside a layer."""
    bad = tar_bytes(lambda a: add_file(a, name, b"owned"))
    data = (
        image_bytes(bad)
        if layer
        else image_bytes(data_layer(b"x"), extra=lambda a: add_file(a, name, b"x"))
    )
    _refused(data, problem)


def test_a_long_pax_name_with_dot_dot_is_refused() -> None:
    name = "a/" * 80 + "../" * 82 + "escape"
    _refused(image_bytes(tar_bytes(lambda a: add_file(a, name, b"x"))), "leads out")


@pytest.mark.parametrize("layer", [False, True])
def test_a_member_below_a_symlink_is_refused(layer: bool) -> None:
    def members(archive: tarfile.TarFile) -> None:
        add_link(archive, "etc", "/etc" if layer else "sub")
        add_file(archive, "etc/passwd", b"root::0:0")

    data = (
        image_bytes(tar_bytes(members)) if layer else image_bytes(data_layer(b"x"), extra=members)
    )
    _refused(data, "below the symbolic link")


@pytest.mark.parametrize("target", ["/etc/shadow", "../../etc/shadow", "not/there"])
@pytest.mark.parametrize("layer", [False, True])
def test_hard_links_to_anything_but_an_earlier_member_are_refused(target: str, layer: bool) -> None:
    def members(archive: tarfile.TarFile) -> None:
        add_link(archive, "shadow", target, hard=True)

    data = (
        image_bytes(tar_bytes(members)) if layer else image_bytes(data_layer(b"x"), extra=members)
    )
    _refused(data, "hard link")


@pytest.mark.parametrize("target", ["/etc/passwd", "../../x"])
def test_archive_symlinks_that_leave_the_archive_are_refused(target: str) -> None:
    data = image_bytes(data_layer(b"x"), extra=lambda a: add_link(a, "link", target))
    _refused(data, "symbolic link")


def test_a_gzip_bomb_layer_is_stopped_early() -> None:
    """200 MB of zeros, compressed: stopped once it expands past the ratio."""
    zeros = tar_bytes(lambda a: add_file(a, "data/zeros", bytes(200 * 1024 * 1024)))
    limits = ImageLimits(max_ratio=100, ratio_floor=1024 * 1024)
    _refused(image_bytes(zeros, compress=True), "decompression bomb", limits)


def test_a_gzip_bomb_uploaded_as_the_archive_is_refused() -> None:
    _refused(gzip.compress(bytes(10 * 1024 * 1024)), "bad checksum")


def test_missing_layers_and_configs_are_refused() -> None:
    manifest = [{"Config": "c.json", "Layers": ["l/layer.tar"]}]

    def members(archive: tarfile.TarFile) -> None:
        add_file(archive, "c.json", b"{}")
        add_file(archive, "manifest.json", json.dumps(manifest).encode())

    _refused(tar_bytes(members), "not in the archive")


def test_a_layer_that_is_not_a_tar_is_refused() -> None:
    manifest = [{"Config": "c.json", "Layers": ["layer"]}]

    def members(archive: tarfile.TarFile) -> None:
        add_file(archive, "c.json", b"{}")
        add_file(archive, "layer", b"{" + b"x" * 1000)
        add_file(archive, "manifest.json", json.dumps(manifest).encode())

    _refused(tar_bytes(members), "is not a tar archive")


@pytest.mark.parametrize("manifest", [b"not json", b"{}", b"[]", b'[{"Config": 1}]'])
def test_malformed_manifests_are_refused(manifest: bytes) -> None:
    _refused(tar_bytes(lambda a: add_file(a, "manifest.json", manifest)), "manifest.json")


def test_a_truncated_archive_is_refused() -> None:
    data = image_bytes(data_layer(os.urandom(5000)))
    _refused(data[: len(data) // 2], "middle of a member|no manifest")


def test_a_truncated_gzip_layer_is_refused() -> None:
    layer = gzip.compress(data_layer(os.urandom(5000)))[:-20]

    def members(archive: tarfile.TarFile) -> None:
        add_file(archive, "l.tar.gz", layer)
        add_file(archive, "c.json", b"{}")
        manifest = [{"Config": "c.json", "Layers": ["l.tar.gz"]}]
        add_file(archive, "manifest.json", json.dumps(manifest).encode())

    _refused(tar_bytes(members), "ends early|broken gzip|middle")


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_every_tar_format_is_read(fmt: int) -> None:
    """Long names as GNU long-name headers, pax records, or ustar's prefix field."""
    name = "data/" + "long/" * 20 + "file"
    check(image_bytes(tar_bytes(lambda a: add_file(a, name, b"x"), fmt=fmt)))
