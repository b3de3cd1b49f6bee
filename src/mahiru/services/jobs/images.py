"""The image archives this site has loaded into its container engine, by blob digest."""

from __future__ import annotations

import threading

from mahiru.errors import NotFound, Unavailable
from mahiru.runtime.protocol import ImageEngine
from mahiru.storage import BlobStore


class LoadedImages:
    """Loads each stored image archive into the engine once, and remembers its image id.

    Steps of many jobs share images; loading one takes seconds, so the id is
    kept (in memory) and checked against the engine before each use: an
    image removed from the engine since is loaded, or fetched, again.
    """

    def __init__(self, runtime: ImageEngine, blobs: BlobStore) -> None:
        self._runtime = runtime
        self._blobs = blobs
        self._lock = threading.Lock()
        self._images: dict[str, str] = {}

    def image(self, digest: str) -> str | None:
        """The engine image id remembered for archive `digest`, if any."""
        with self._lock:
            return self._images.get(digest)

    def on_engine(self, digest: str) -> bool:
        """Whether the engine still has the image of archive `digest`; forgets it if not."""
        with self._lock:
            image = self._images.get(digest)
            if image is None:
                return False
            if self._runtime.has_image(image):
                return True
            del self._images[digest]  # removed from the engine: fetch it again
            return False

    def load(self, digest: str) -> str:
        """The engine's image id for the stored archive `digest`, loading it the first time.

        NotFound if the archive is not stored here; Unavailable if it was not
        fetched because the engine had it, and the engine lost it since (the
        step's retry fetches it again).
        """
        with self._lock:
            image = self._images.get(digest)
            if image is not None and self._runtime.has_image(image):
                return image
            path = self._blobs.path(digest)
            if not path.is_file():
                if self._images.pop(digest, None) is not None:
                    raise Unavailable(f"image sha256:{digest} was removed from the engine")
                raise NotFound(f"image sha256:{digest} is not in the blob store")
            image = self._runtime.load_image(path)
            self._images[digest] = image
            return image
