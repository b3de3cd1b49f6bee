"""The review queue of one's own site, for its reviewers (internal API): list, show,
approve, reject, and the files of a result under review."""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import httpx

from mahiru.client.http import ApiClient, check, request, unreachable
from mahiru.errors import Conflict, InvalidInput
from mahiru.model.reviews import Review, ReviewState

#: The bytes written at a time when a file is downloaded.
CHUNK = 64 * 1024


def _path(review_id: str, *rest: str) -> str:
    return "/".join([f"/reviews/{quote(review_id, safe='')}", *rest])


class ReviewsClient(ApiClient):
    """Reviews one's party is to decide at one's own site; ids may be unique prefixes."""

    def list(
        self, state: ReviewState | None = None, *, offset: int = 0, limit: int = 50
    ) -> tuple[builtins.list[Review], int]:
        """One page of the reviews (in `state`, if given), newest first, and the total."""
        params: dict[str, str | int] = {"offset": offset, "limit": limit}
        if state is not None:
            params["state"] = state.value
        data = request(self._http, "GET", "/reviews", params=params).json()
        if not isinstance(data, Mapping) or not isinstance(data.get("reviews"), builtins.list):
            raise InvalidInput("the review list is not a JSON object with a list of reviews")
        return [Review.from_dict(item) for item in data["reviews"]], int(data["total"])

    def get(self, review_id: str) -> Review:
        """The review with this id or unique id prefix."""
        return Review.from_dict(request(self._http, "GET", _path(review_id)).json())

    def approve(self, review_id: str, reason: str, *, override: bool = False) -> Review:
        """Release the result for `reason`; over a failed check only with `override`."""
        body = {"reason": reason, "override": override}
        response = request(self._http, "POST", _path(review_id, "approve"), json=body)
        return Review.from_dict(response.json())

    def reject(self, review_id: str, reason: str) -> Review:
        """Hold the result back for good, for `reason`."""
        response = request(self._http, "POST", _path(review_id, "reject"), json={"reason": reason})
        return Review.from_dict(response.json())

    def files(self, review_id: str) -> builtins.list[dict[str, Any]]:
        """The files under `/data` of the result under review: `{path, size}` each."""
        data = request(self._http, "GET", _path(review_id, "files")).json()
        files = data.get("files") if isinstance(data, Mapping) else None
        if not isinstance(files, builtins.list):
            raise InvalidInput("the file listing is not a JSON object with a list of files")
        return files

    def download(self, review_id: str, dest_dir: Path) -> builtins.list[Path]:
        """Write every file of the result under review into `dest_dir` (under its path
        there); Conflict, before anything is written, if one of them exists already."""
        listing = self.files(review_id)
        targets = [(str(f["path"]), _target(dest_dir, str(f["path"]))) for f in listing]
        existing = [str(target) for _, target in targets if target.exists()]
        if existing:
            raise Conflict(
                f"{existing[0]} exists already: choose another --out folder (nothing was"
                " overwritten)",
                {"existing": existing},
            )
        written = []
        for path, target in targets:
            self._download_file(_path(review_id, "files", quote(path)), target)
            written.append(target)
        return written

    def _download_file(self, url: str, target: Path) -> None:
        """The answer to GET `url` into `target`, which appears only once whole."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")
        try:
            with self._http.stream("GET", url) as response:
                check(response)
                with partial.open("wb") as file:
                    for chunk in response.iter_bytes(CHUNK):
                        file.write(chunk)
            os.replace(partial, target)
        except httpx.TransportError as error:
            where = f"{str(self._http.base_url).rstrip('/')}/{url.lstrip('/')}"
            raise unreachable(error, where) from None
        finally:
            partial.unlink(missing_ok=True)


def _target(dest_dir: Path, path: str) -> Path:
    """Where the file `path` of a result goes in `dest_dir`; InvalidInput if outside it."""
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise InvalidInput(f"the site named a file outside the result: {path!r}")
    return dest_dir.joinpath(*relative.parts)
