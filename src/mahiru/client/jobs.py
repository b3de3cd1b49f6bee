"""Clients for jobs: `JobsClient` for users (internal API), `PeerJobsClient` for sites.

`extract_data_files` reads the `/data` files out of a result's `docker save`
archive in pure Python, so users need no container engine to see results.
"""

from __future__ import annotations

import builtins
import codecs
import contextlib
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from mahiru.client.downloads import download_to_file, open_image
from mahiru.client.http import ApiClient, check, error_from_response, request, request_json
from mahiru.client.site import PeerClient
from mahiru.data_archives import extract_data_files
from mahiru.errors import InvalidInput, Unavailable
from mahiru.model.digests import BlobInfo, ImageStream
from mahiru.model.identifiers import ResultId
from mahiru.model.jobs import JobStatus, StepAssignment, StepStatus
from mahiru.model.live import LiveAnswer, LiveGrantRequest, LiveReader
from mahiru.model.review_exchange import SignedDecision, report_body
from mahiru.model.reviews import Review
from mahiru.model.serialization import job_to_dict
from mahiru.model.workflow import Job

#: A live token's characters (URL-safe base64), and the chunk size of live reads.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
LIVE_CHUNK = 64 * 1024

#: Called as `progress(status)` each time `wait` polls a job.
JobProgress = Callable[["JobView"], None]


class JobView:
    """A job as the internal API shows it: its status and its steps' statuses."""

    def __init__(self, status: JobStatus, steps: list[StepStatus]) -> None:
        self.status = status
        self.steps = steps

    @classmethod
    def from_json(cls, data: Any) -> JobView:
        """Parse `{"job": JobStatus, "steps": [StepStatus, ...]}` strictly."""
        if not isinstance(data, Mapping) or set(data) != {"job", "steps"}:
            raise InvalidInput("a job view must have exactly the fields job and steps")
        return cls(
            JobStatus.from_dict(data["job"]), [StepStatus.from_dict(s) for s in data["steps"]]
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form, as the API sends it."""
        return {"job": self.status.to_dict(), "steps": [s.to_dict() for s in self.steps]}


class JobsClient(ApiClient):
    """Jobs at one's own site: submit, list, show, wait for, cancel, fetch outputs."""

    def submit(self, job: Job) -> JobView:
        """Submit a job; PermissionDenied (with the planner's explanation) if none may run."""
        return JobView.from_json(
            request(self._http, "POST", "/jobs", json={"job": job_to_dict(job)}).json()
        )

    def status(self, job_id: str) -> JobView:
        """A job's status, plan and step states."""
        return JobView.from_json(request(self._http, "GET", f"/jobs/{quote(job_id)}").json())

    def list(self) -> list[JobStatus]:
        """The jobs of one's own party submitted at this site, oldest first."""
        data = request(self._http, "GET", "/jobs").json()
        return [JobStatus.from_dict(item) for item in data["jobs"]]

    def provenance(self, job_id: str) -> dict[str, Any]:
        """How a job made its results, as a W3C PROV-JSON document."""
        document: dict[str, Any] = request(
            self._http, "GET", f"/jobs/{quote(job_id)}/provenance"
        ).json()
        return document

    def cancel(self, job_id: str) -> JobView:
        """Cancel a job that has not finished."""
        path = f"/jobs/{quote(job_id)}/cancel"
        return JobView.from_json(request(self._http, "POST", path).json())

    def wait(
        self,
        job_id: str,
        timeout: float,
        progress: JobProgress | None = None,
        *,
        interval: float = 0.5,
    ) -> JobView:
        """Poll until the job is finished (or `timeout` seconds pass); its last view."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.status(job_id)
            if progress is not None:
                progress(view)
            if view.status.state.terminal or time.monotonic() >= deadline:
                return view
            time.sleep(min(interval, max(deadline - time.monotonic(), 0.01)))

    def download_output_archive(self, job_id: str, name: str, dest: Path) -> BlobInfo:
        """Download a workflow output's image archive to `dest` (digest checked)."""
        path = f"/jobs/{quote(job_id)}/outputs/{quote(name)}/image"
        return download_to_file(
            self._images, path, dest, None, resume=False, progress=None, clock=self._clock
        )

    def download_crate(self, job_id: str, dest: Path) -> int:
        """Download a job's RO-Crate (a zip) to `dest`, written whole or not at all; its
        size in bytes."""
        if not dest.parent.is_dir():
            raise InvalidInput(f"{dest.parent}: no such directory")
        url = f"/jobs/{quote(job_id)}/crate"
        partial = dest.with_name(f".{dest.name}.partial")
        size = 0
        try:
            with self._http.stream("GET", url) as response, partial.open("wb") as out:
                check(response)
                for chunk in response.iter_bytes(1024 * 1024):
                    out.write(chunk)
                    size += len(chunk)
        except httpx.TransportError as error:
            partial.unlink(missing_ok=True)
            raise Unavailable(f"{url}: {type(error).__name__}: {error}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(dest)
        return size

    def download_output(self, job_id: str, name: str, dest_dir: Path) -> builtins.list[Path]:
        """Extract the `/data` files of a workflow output into `dest_dir`; the files written."""
        dest_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".mahiru-result-", dir=dest_dir) as temp:
            archive = Path(temp) / "image.tar"
            self.download_output_archive(job_id, name, archive)
            return extract_data_files(archive, dest_dir)

    def follow_log(self, job_id: str, step: str, seconds: float = 3600.0) -> Iterator[str]:
        """The log of `step` of a job as it is written, in pieces as they arrive, until the
        step ends or `seconds` pass (whole at once for a step that ended). The site's
        refusals (PermissionDenied, NotFound) are raised before the first piece."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for chunk in streamed_log(self._http, f"/jobs/{quote(job_id)}", step, seconds):
            text = decoder.decode(chunk)
            if text:
                yield text
        rest = decoder.decode(b"", final=True)
        if rest:
            yield rest


def streamed_log(http: httpx.Client, job_path: str, step: str, seconds: float) -> Iterator[bytes]:
    """GET `{job_path}/steps/{step}/log`: a step's log as the site sends it, as it arrives."""
    path = f"{job_path}/steps/{quote(step)}/log"
    # Quiet while the step is: a read may wait as long as the site follows it.
    timeout = httpx.Timeout(30.0, read=seconds + 30.0)
    try:
        with http.stream("GET", path, params={"seconds": seconds}, timeout=timeout) as response:
            check(response)
            yield from response.iter_bytes()
    except httpx.TransportError as error:
        raise Unavailable(f"{path}: {type(error).__name__}: {error}") from None


class PeerJobsClient(PeerClient):
    """Another site's external API for jobs: hand over steps, ask status, fetch results."""

    def assign(self, assignment: StepAssignment) -> list[StepStatus]:
        """Hand the peer its steps; their statuses there."""
        path = f"/jobs/{quote(assignment.job_id)}/assignment"
        data = request(self._http, "POST", path, json=assignment.to_dict()).json()
        return [StepStatus.from_dict(item) for item in data["steps"]]

    def follow_log(self, job_id: str, step: str, seconds: float) -> Iterator[bytes]:
        """The log of a step the peer runs, as it is written, until the step ends."""
        return streamed_log(self._http, f"/jobs/{quote(job_id)}", step, seconds)

    def step_statuses(self, job_id: str) -> list[StepStatus]:
        """The statuses of the steps of a job the peer runs."""
        data = request(self._http, "GET", f"/jobs/{quote(job_id)}/steps").json()
        return [StepStatus.from_dict(item) for item in data["steps"]]

    def step_changes(
        self, job_id: str, version: str | None, seconds: float
    ) -> tuple[list[StepStatus], str]:
        """The statuses of the steps of a job the peer runs and their version, once that
        differs from `version`, waiting at most `seconds` there."""
        params: dict[str, str | float] = {"wait": seconds}
        if version is not None:
            params["after"] = version
        usual = self._http.timeout
        # The answer may take `seconds` to come: only reading waits that much longer.
        timeout = httpx.Timeout(
            connect=usual.connect,
            read=None if usual.read is None else usual.read + seconds,
            write=usual.write,
            pool=usual.pool,
        )
        path = f"/jobs/{quote(job_id)}/steps"
        data = request(self._http, "GET", path, params=params, timeout=timeout).json()
        return [StepStatus.from_dict(item) for item in data["steps"]], str(data["version"])

    def cancel(self, job_id: str) -> list[StepStatus]:
        """Cancel the peer's unfinished steps of a job."""
        data = request(self._http, "POST", f"/jobs/{quote(job_id)}/cancel").json()
        return [StepStatus.from_dict(item) for item in data["steps"]]

    def live_grant(self, grant: LiveGrantRequest) -> str:
        """A live access token from the data's site, for one input of one step."""
        answer = request(self._http, "POST", "/live/grants", json=grant.to_dict()).json()
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise InvalidInput("the live grant was answered without a usable token")
        return token

    def live_revoke(self, token: str) -> None:
        """End a live grant early."""
        request(self._http, "DELETE", f"/live/{quote(token)}")

    @contextlib.contextmanager
    def live_file(self, token: str, path: str) -> Iterator[LiveAnswer]:
        """Read the granted data's file listing (`path` "") or one file, streaming."""
        url = f"/live/{quote(token)}/files" + (f"/{quote(path)}" if path else "")
        try:
            with self._http.stream("GET", url) as response:
                if not response.is_success:
                    response.read()
                    error = error_from_response(response)
                    yield LiveAnswer(
                        response.status_code, "text/plain", None, iter(()), error.message
                    )
                    return
                yield LiveAnswer(
                    200,
                    response.headers.get("content-type", "application/octet-stream"),
                    response.headers.get("content-length"),
                    response.iter_bytes(LIVE_CHUNK),
                )
        except httpx.HTTPError as error:
            raise Unavailable(
                f"the data's site cannot be reached: {type(error).__name__}"
            ) from None

    def readers(self, job_id: str, job_digest: str) -> list[LiveReader]:
        """The unfinished steps of the job with that digest, submitted at the peer, that
        read data stored at this site, and where they run."""
        data = request(
            self._http, "GET", f"/jobs/{quote(job_id)}/readers", params={"job_digest": job_digest}
        ).json()
        readers = data.get("readers") if isinstance(data, dict) else None
        if not isinstance(readers, list):
            raise InvalidInput(f"the answer about job {job_id} has no list of readers")
        return [LiveReader.from_dict(item) for item in readers]

    def fetch_result(self, result: ResultId) -> AbstractContextManager[ImageStream]:
        """A result's image as a stream, resumed after dropped connections (a context manager).

        The stream carries the digest the peer announced; the receiver stores
        the bytes only if they have it.
        """
        path = f"/results/{quote(str(result))}/image"
        return open_image(
            self._images, path, expected_digest=None, progress=None, clock=self._clock
        )

    def offer_review(self, review: Review) -> None:
        """Offer `review`, held at this site, to the peer, a site of its reviewer party."""
        request_json(self._http, "POST", "/reviews", json={"review": review.to_dict()})

    def review_files(self, review_id: str) -> builtins.list[dict[str, object]]:
        """The files of the result of review `review_id` held at the peer: `{path, size}`."""
        data = request_json(self._http, "GET", f"/reviews/{quote(review_id)}/files")
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, builtins.list) or not all(
            isinstance(f, dict)
            and isinstance(f.get("path"), str)
            and isinstance(f.get("size"), int)
            and set(f) == {"path", "size"}
            for f in files
        ):
            raise InvalidInput(f"the files of review {review_id} were answered without a list")
        return [{"path": f["path"], "size": f["size"]} for f in files]

    def review_file(self, review_id: str, path: str) -> tuple[int, Iterator[bytes]]:
        """The size and bytes of the file `/data/<path>` of the result of review
        `review_id` held at the peer; the connection closes once they are read or dropped."""
        url = f"/reviews/{quote(review_id)}/files/{quote(path)}"
        stack = contextlib.ExitStack()
        try:
            response = stack.enter_context(self._http.stream("GET", url))
            if not response.is_success:
                response.read()
                raise error_from_response(response)
            size = int(response.headers.get("content-length", "-1"))
        except httpx.HTTPError as error:
            stack.close()
            raise Unavailable(
                f"the result's site cannot be reached: {type(error).__name__}"
            ) from None
        except BaseException:
            stack.close()
            raise
        if size < 0:
            stack.close()
            raise InvalidInput(f"the file {path} of review {review_id} came without its size")

        def chunks() -> Iterator[bytes]:
            with stack:
                read = 0
                for chunk in response.iter_bytes(LIVE_CHUNK):
                    read += len(chunk)
                    if read > size:
                        raise InvalidInput(f"the file {path} is larger than announced")
                    yield chunk

        return size, chunks()

    def report_review(self, review: Review, signed: SignedDecision | None) -> None:
        """Report the decision on review `review`, held at the peer, with its signed
        approval or rejection."""
        url = f"/reviews/{quote(review.review_id)}/decision"
        request_json(self._http, "POST", url, json=report_body(review, signed))
