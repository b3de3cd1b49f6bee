"""Writing a job's crate as a zip, and reading a crate back (a zip or a folder).

Used at the edges: the site writes the crate `model/crates` built, with the
images it may release, into a zip; `mahiru results verify` reads one to check
it offline. Documents are deflated; images (archives already) are stored as
they are, streamed in chunks, so a crate of large outputs is never held in
memory. A path read from a crate must stay inside it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any

from mahiru.errors import InvalidInput
from mahiru.model.crates import METADATA_FILE, JobCrate

_CHUNK = 1024 * 1024


def write_crate(
    out: IO[bytes], crate: JobCrate, images: Mapping[str, Callable[[], Iterable[bytes]]]
) -> None:
    """Write `crate` as a zip into `out`: metadata, documents, then each image of
    `crate.images`, read in chunks from `images[path]()`."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(METADATA_FILE, crate.metadata_bytes())
        for path, data in crate.documents.items():
            archive.writestr(path, data)
        for image in crate.images:
            info = zipfile.ZipInfo(image.path)
            info.compress_type = zipfile.ZIP_STORED
            with archive.open(info, "w", force_zip64=True) as entry:
                for chunk in images[image.path]():
                    entry.write(chunk)


def _safe(path: str) -> str:
    """`path` if it names a file inside the crate; InvalidInput otherwise."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path or ":" in path:
        raise InvalidInput(f"{path!r} is not a path inside the crate", {"file": path})
    return str(pure)


class CrateFiles:
    """The files of a crate on disk: a zip (`mahiru jobs crate`'s) or its unpacked folder."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self._zip: zipfile.ZipFile | None = None
        if location.is_dir():
            return
        if not zipfile.is_zipfile(location):
            raise InvalidInput(f"{location}: neither a crate folder nor a zip")
        self._zip = zipfile.ZipFile(location)

    @staticmethod
    def is_crate(location: Path) -> bool:
        """Whether `location` looks like a crate: a folder with the metadata, or a zip."""
        if location.is_dir():
            return (location / METADATA_FILE).is_file()
        return zipfile.is_zipfile(location)

    def close(self) -> None:
        """Close the zip, if one is open."""
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> CrateFiles:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _chunks(self, path: str) -> Iterable[bytes] | None:
        name = _safe(path)
        if self._zip is not None:
            try:
                entry = self._zip.open(name)
            except KeyError:
                return None
            return _read(entry)
        file = self.location / name
        if not file.is_file():
            return None
        return _read(file.open("rb"))

    def digest(self, path: str) -> str | None:
        """The hex sha256 of a file of the crate; None if it is not there."""
        chunks = self._chunks(path)
        if chunks is None:
            return None
        hasher = hashlib.sha256()
        for chunk in chunks:
            hasher.update(chunk)
        return hasher.hexdigest()

    def document(self, path: str) -> Any:
        """A JSON file of the crate, parsed; InvalidInput if missing or not JSON."""
        chunks = self._chunks(path)
        if chunks is None:
            raise InvalidInput(f"{path} is not in the crate {self.location}", {"file": path})
        try:
            return json.loads(b"".join(chunks))
        except ValueError as error:
            raise InvalidInput(f"{path}: not JSON: {error}", {"file": path}) from None

    def names(self) -> list[str]:
        """The paths of every file of the crate."""
        if self._zip is not None:
            return [info.filename for info in self._zip.infolist() if not info.is_dir()]
        return sorted(
            path.relative_to(self.location).as_posix()
            for path in self.location.rglob("*")
            if path.is_file()
        )

    def metadata(self) -> Any:
        """The crate's `ro-crate-metadata.json`, parsed."""
        return self.document(METADATA_FILE)


def _read(stream: IO[bytes]) -> Iterable[bytes]:
    with stream:
        while chunk := stream.read(_CHUNK):
            yield chunk
