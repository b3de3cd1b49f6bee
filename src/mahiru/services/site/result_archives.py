"""The files of a released result, packed for a person to download: the `/data` files of its
image as one gzipped tar.

The image comes from the egress gate (`Egress.to_party`), released by the policy's
decision and recorded as a transfer as it is read. The image is copied into a temporary
folder of the site's work folder and packed there; the copy goes as soon as the archive
is made, and the archive once it has been sent (or dropped).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from mahiru.data_archives import pack_data_files
from mahiru.services.site.assets import ImageFile

#: The bytes handed out at a time.
CHUNK = 1024 * 1024


class ResultArchives:
    """Packs the `/data` files of released images, in `work_dir`."""

    def __init__(self, work_dir: Path) -> None:
        self._work_dir = work_dir

    def gzipped(self, image: ImageFile, folder: str) -> tuple[int, Iterator[bytes]]:
        """The size and bytes of a gzipped tar of `image`'s `/data` files, under `folder/`.

        The archive is made before this returns, so a damaged or unusable image is
        raised here, before any byte is handed out.
        """
        chunks = self._packing(image, folder)
        size = next(chunks)  # copies the image and packs it, or raises
        assert isinstance(size, int)  # what `_packing` yields first; bytes follow
        return size, cast(Iterator[bytes], chunks)

    def _packing(self, image: ImageFile, folder: str) -> Iterator[int | bytes]:
        """The archive's size, then its bytes."""
        self._work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="result-", dir=self._work_dir) as temp:
            copy, packed = Path(temp) / "image.tar", Path(temp) / "files.tar.gz"
            with copy.open("wb") as file:
                for chunk in image.read():
                    file.write(chunk)
            with packed.open("wb") as file:
                pack_data_files(copy, file, folder)
            copy.unlink()
            yield packed.stat().st_size
            with packed.open("rb") as file:
                while chunk := file.read(CHUNK):
                    yield chunk
