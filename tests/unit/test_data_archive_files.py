"""Listing and reading single `/data` files of an image archive, as a reviewer inspects a
result: the same files `extract_data_files` writes, nothing outside `/data`."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from tests.support.images import add_file, add_link, image_bytes, tar_bytes

from mahiru.data_archives import (
    extract_data_files,
    list_data_files,
    pack_data_files,
    read_data_file,
)
from mahiru.errors import NotFound


def _layer(archive: tarfile.TarFile) -> None:
    add_file(archive, "data/counts.csv", b"n\n3\n")
    add_file(archive, "data/sub/big.bin", b"x" * 200_000)
    add_link(archive, "data/again.csv", "data/counts.csv", hard=True)
    add_link(archive, "data/escape", "/etc/passwd")
    add_file(archive, "etc/secret", b"not data")


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "image.tar"
    path.write_bytes(image_bytes(tar_bytes(_layer)))
    return path


def test_the_listing_names_each_regular_data_file_with_its_size(
    archive: Path, tmp_path: Path
) -> None:
    """Hard links count with their target's size; symbolic links and files outside /data
    are not data; the listing is what extraction writes."""
    listed = list_data_files(archive)
    assert listed == [("again.csv", 4), ("counts.csv", 4), ("sub/big.bin", 200_000)]
    written = extract_data_files(archive, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        path for path, _ in listed
    ]


def test_one_file_is_read_whole_in_chunks(archive: Path) -> None:
    assert b"".join(read_data_file(archive, "counts.csv")) == b"n\n3\n"
    assert b"".join(read_data_file(archive, "/again.csv")) == b"n\n3\n"
    chunks = list(read_data_file(archive, "sub/big.bin"))
    assert len(chunks) > 1 and b"".join(chunks) == b"x" * 200_000


@pytest.mark.parametrize("path", ["escape", "sub", "missing.csv", "../etc/secret", "etc/secret"])
def test_anything_but_a_listed_file_is_not_found(archive: Path, path: str) -> None:
    with pytest.raises(NotFound, match="has no file"):
        b"".join(read_data_file(archive, path))


def test_the_packed_archive_holds_what_extraction_writes_under_one_folder(
    archive: Path, tmp_path: Path
) -> None:
    """A download's `.tar.gz`: each regular /data file (a hard link with its target's
    bytes) under the folder, with its bytes, size and a plain mode; nothing else."""
    packed = tmp_path / "files.tar.gz"
    with packed.open("wb") as out:
        assert pack_data_files(archive, out, "job-out") == 3
    extracted = tmp_path / "out"
    extract_data_files(archive, extracted)
    with tarfile.open(packed, mode="r:gz") as files:
        members = {m.name: m for m in files.getmembers()}
        assert sorted(members) == ["job-out/again.csv", "job-out/counts.csv", "job-out/sub/big.bin"]
        for name, member in members.items():
            content = files.extractfile(member)
            assert content is not None
            expected = (extracted / name.removeprefix("job-out/")).read_bytes()
            assert content.read() == expected and member.size == len(expected)
            assert member.isfile() and member.mode == 0o644 and member.uid == 0
