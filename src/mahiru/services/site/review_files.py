"""The files of a result under review, read out of its image for the reviewer.

The image comes from the egress gate (`Egress.to_reviewer`), released by the policy's
decision and recorded as a transfer as it is read: each read copies the verified image
into a temporary folder of the site's work folder, takes out what was asked for (the
listing of `/data`, or one file's bytes) and removes the copy.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from mahiru.data_archives import list_data_files, read_data_file
from mahiru.errors import NotFound
from mahiru.services.site.assets import ImageFile


class ReviewFiles:
    """Lists and reads the `/data` files of released result images, in `work_dir`."""

    def __init__(self, work_dir: Path) -> None:
        self._work_dir = work_dir

    def listing(self, image: ImageFile) -> list[dict[str, object]]:
        """The regular files under `/data` of `image`: `{path, size}` each, by path."""
        with self._copied(image) as archive:
            return [{"path": path, "size": size} for path, size in list_data_files(archive)]

    def read(self, image: ImageFile, path: str) -> tuple[int, Iterator[bytes]]:
        """The size and bytes of the file `/data/<path>` of `image`.

        NotFound (raised here, before any byte is handed out) if there is no such file;
        the copy of the image is removed once the bytes are read or dropped.
        """
        chunks = self._reading(image, path)
        size = next(chunks)  # copies the image and finds the file, or raises
        assert isinstance(size, int)  # what `_reading` yields first; bytes follow
        return size, cast(Iterator[bytes], chunks)

    def _reading(self, image: ImageFile, path: str) -> Iterator[int | bytes]:
        """The file's size, then its bytes, all from one copy of the image."""
        with self._copied(image) as archive:
            wanted = path.strip("/")
            sizes = dict(list_data_files(archive))
            if wanted not in sizes:
                raise NotFound(f"the result has no file /data/{wanted}", {"path": path})
            yield sizes[wanted]
            yield from read_data_file(archive, wanted)

    @contextmanager
    def _copied(self, image: ImageFile) -> Iterator[Path]:
        """A verified copy of `image` in a temporary folder, removed after the block."""
        self._work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="review-", dir=self._work_dir) as folder:
            archive = Path(folder) / "image.tar"
            with archive.open("wb") as file:
                for chunk in image.read():
                    file.write(chunk)
            yield archive
