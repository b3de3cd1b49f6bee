"""A crate written as a zip reads back the same, zipped or unpacked; no path leaves it."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from tests.unit.test_crate_builder import OUTPUT_IMAGE, _source

from mahiru.crate_archives import CrateFiles, write_crate
from mahiru.errors import InvalidInput
from mahiru.model.crates import METADATA_FILE, build_crate

IMAGE = b"image bytes " * 1000


def _write(tmp_path: Path) -> Path:
    crate = build_crate(_source())
    out = tmp_path / "job.zip"
    with out.open("wb") as file:
        write_crate(file, crate, {OUTPUT_IMAGE.path: lambda: iter([IMAGE[:5000], IMAGE[5000:]])})
    return out


def test_the_zip_holds_metadata_documents_and_the_image_as_streamed(tmp_path: Path) -> None:
    """Every document and the image, whose bytes are what the reader gave, stored as is."""
    out = _write(tmp_path)
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        assert archive.read(OUTPUT_IMAGE.path) == IMAGE
        assert archive.getinfo(OUTPUT_IMAGE.path).compress_type == zipfile.ZIP_STORED
    assert {METADATA_FILE, "workflow.json", "provenance.json", "receipts/result.json"} <= names


def test_a_crate_reads_back_alike_zipped_and_unpacked(tmp_path: Path) -> None:
    """Digests and documents are the same from the zip and from its folder."""
    out = _write(tmp_path)
    with zipfile.ZipFile(out) as archive:
        archive.extractall(tmp_path / "crate")
    expected = hashlib.sha256(IMAGE).hexdigest()
    for location in (out, tmp_path / "crate"):
        assert CrateFiles.is_crate(location)
        with CrateFiles(location) as files:
            assert files.digest(OUTPUT_IMAGE.path) == expected
            assert files.digest("outputs/absent.tar") is None
            assert files.metadata()["@graph"][0]["@id"] == METADATA_FILE


@pytest.mark.parametrize("path", ["../secret", "/etc/passwd", "a/../../b", "C:\\x"])
def test_no_path_outside_the_crate_is_read(tmp_path: Path, path: str) -> None:
    """A crate's metadata cannot make the verifier read files beside it."""
    (tmp_path / "secret").write_text("not part of the crate")
    (tmp_path / "crate").mkdir()
    with CrateFiles(tmp_path / "crate") as files, pytest.raises(InvalidInput):
        files.digest(path)


def test_a_plain_json_file_is_no_crate(tmp_path: Path) -> None:
    """A result's record is told apart from a crate."""
    record = tmp_path / "result.json"
    record.write_text("{}")
    assert not CrateFiles.is_crate(record)
    assert not CrateFiles.is_crate(tmp_path)  # a folder without the metadata
